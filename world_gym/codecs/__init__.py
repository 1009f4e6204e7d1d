"""Codecs: frames <-> the latents a backbone works on, found by the ``kind`` of a model's codec config.

A world model's ``config.json`` stores its codec as one entry, ``{"kind": name, ...}``; the rest of
the entry is the codec's own. :data:`CODECS` maps each kind to a factory ``(entry) -> LatentCodec``:
``"vae"`` (:func:`~world_gym.codecs.vae.make_vae_codec`) is built in, and packages add kinds
through the ``world_gym.codecs`` entry-point group (the Push-T pose codec is one).
"""

from __future__ import annotations

from typing import Any, Callable

from world_gym.codecs.vae import FastDecoder, LatentCodec, make_vae_codec, tiny_vae_config
from world_gym.registry import Registry

CodecFactory = Callable[[dict[str, Any]], LatentCodec]
#: Codec factories by kind: registered ones and the entry points of the ``world_gym.codecs`` group.
CODECS: Registry[CodecFactory] = Registry("codec kind", "world_gym.codecs")


def register_codec(kind: str, factory: CodecFactory) -> None:
    """Make codec config entries of ``kind`` build ``factory(entry)`` (the entry without ``kind``)."""
    CODECS.register(kind, factory)


def codec_kind(config: dict[str, Any]) -> str:
    """The kind of a codec config entry.

    Configs written before codecs had kinds carry none: an entry with a ``pose`` reader is then of
    kind ``"pose"``, any other of kind ``"vae"`` (so every shipped ``config.json`` loads unchanged).
    """
    if "kind" in config:
        return str(config["kind"])
    return "pose" if "pose" in config else "vae"


def codec_from_config(config: dict[str, Any]) -> LatentCodec:
    """The codec a world-model config's ``codec`` entry describes, built by its kind's factory.

    Raises:
        ValueError: the entry is not a dict, or its kind is not registered nor declared as an
            entry point (the message lists the known kinds).
    """
    if not isinstance(config, dict):
        raise ValueError(f"a codec config is a JSON object, got {type(config).__name__}")
    factory = CODECS.get(codec_kind(config))
    return factory({k: v for k, v in config.items() if k != "kind"})


register_codec("vae", make_vae_codec)

__all__ = ["CODECS", "CodecFactory", "FastDecoder", "LatentCodec", "codec_from_config", "codec_kind",
           "register_codec", "tiny_vae_config"]
