"""The files of a world-model directory: where a model name points, and reading its config and weights.

Every error names the file (and the tensor) at fault. Weights are safetensors only: nothing here
unpickles. A directory holds ``config.json``, ``model.safetensors`` and, optionally,
``start_encodings.safetensors`` (precomputed start-frame encodings: :mod:`world_gym.start_encodings`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
START_ENCODINGS_NAME = "start_encodings.safetensors"  # optional: world_gym.start_encodings

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def resolve_model_dir(name_or_path: str | os.PathLike) -> Path:
    """Where a world model lives, in the order diffusers' ``from_pretrained`` looks.

    1. an existing local directory (it must hold ``config.json``);
    2. a shipped model's name (:func:`~world_gym.assets.shipped_models`, e.g. ``"tiny-pusht"``);
    3. a Hub repo id ``"org/name"``, downloaded with ``huggingface_hub``.

    A string that is a path (absolute, ``./``, ``../``, ``~``, more than one ``/``) and does not
    exist is reported as missing without a Hub lookup.

    Raises:
        FileNotFoundError: none of the above.
    """
    from world_gym.assets import shipped_models

    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"a world model is named by a str or path, got {type(name_or_path).__name__}")
    name = os.fspath(name_or_path)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{path} is not a world-model directory: no {CONFIG_NAME}")
        return path
    if path.exists():
        raise FileNotFoundError(f"{path} is a file; a world model is a directory with {CONFIG_NAME} and {WEIGHTS_NAME}")
    if isinstance(name_or_path, str) and name in shipped_models():
        from world_gym.assets import bundled_model_path

        return bundled_model_path(name)
    if isinstance(name_or_path, str) and _HUB_ID.match(name) and ".." not in name:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=name, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, START_ENCODINGS_NAME]))
    raise FileNotFoundError(
        f"no such directory: {name!r} is not a local world-model directory, a shipped model "
        f"({shipped_models()}) or a Hub repo id ('org/name')"
    )


def read_model_weights(name_or_path: str | os.PathLike, prefix: str = "") -> dict[str, torch.Tensor]:
    """The weights of a world model (directory or shipped name, :func:`resolve_model_dir`) whose names
    start with ``prefix``, the prefix cut off (``"backbone."``: the backbone's own state dict)."""
    state = read_weights(resolve_model_dir(name_or_path) / WEIGHTS_NAME)
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file, refusing a missing, truncated or non-finite one (the error names the file)."""
    from safetensors import SafetensorError

    if not path.is_file():
        raise FileNotFoundError(f"no weights file {path}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupt?): {err}") from err
    check_finite_weights(state, str(path))
    return state


def check_finite_weights(state: dict[str, torch.Tensor], source: str) -> None:
    """Raise ``ValueError`` naming ``source`` and the tensors that hold NaN or infinity."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(f"weights in {source} hold NaN or infinite values in {len(bad)} tensor(s): "
                         f"{', '.join(sorted(bad)[:20])}")


def check_finite_latents(latents: torch.Tensor) -> torch.Tensor:
    """Return ``latents``, or raise ``FloatingPointError`` if the model produced NaN or infinity."""
    if not bool(torch.isfinite(latents).all()):
        raise FloatingPointError(
            "the world model produced non-finite latents (NaN or infinity): its weights or the precision "
            "it runs in (dtype=float16 overflows more easily than bfloat16 or float32) are broken"
        )
    return latents


def read_json(path: Path) -> Any:
    """Parse a JSON file; a missing file, invalid JSON or non-UTF-8 text raise an error naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"no file {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 JSON text: {err}") from err


def load_state_dict_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` that names every missing, unexpected and mis-shaped key in its error."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
        for k in sorted(set(own) & set(state))
        if own[k].shape != state[k].shape
    ]
    if missing or unexpected or shapes:
        lines = [f"weights in {source} do not match the model:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing[:20])}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
        if shapes:
            lines.append(f"  mis-shaped ({len(shapes)}): {'; '.join(shapes[:20])}")
        raise ValueError("\n".join(lines))
    module.load_state_dict(state, strict=True)


# --- start_encodings.safetensors: precomputed start-frame encodings (world_gym.start_encodings) ---

START_ENCODINGS_FORMAT = "world_gym.start_encodings.v1"
DIGEST_SIZE = 20


def frame_digest(frame: np.ndarray) -> bytes:
    """The key of one frame: a 20-byte BLAKE2b digest of its shape, dtype and bytes."""
    digest = hashlib.blake2b(f"{frame.shape}{frame.dtype}".encode(), digest_size=DIGEST_SIZE)
    digest.update(np.ascontiguousarray(frame).tobytes())
    return digest.digest()


def codec_digest(model: nn.Module) -> str:
    """A hex digest of what a :class:`~world_gym.world_model.WorldModel`'s ``encode`` depends on: the
    codec's config entry, the frame size, and the name, dtype, shape and bytes of every tensor of the
    codec's state (about 20 ms for the
    10 MB Push-T pose codec on one CPU thread)."""
    header = json.dumps({"codec": model.config.codec, "frame_size": list(model.config.frame_size)}, sort_keys=True)
    digest = hashlib.blake2b(header.encode(), digest_size=DIGEST_SIZE)
    for name, tensor in sorted(model.codec.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}{value.dtype}{tuple(value.shape)}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass
class StartEncodings:
    """Latents of frames as ``model.encode`` gave them, keyed by :func:`frame_digest`.

    Attributes:
        digests: ``(N, 20)`` uint8, one frame digest per row.
        latents: ``(N, C, h, w)`` float32, what ``model.encode`` gave for each frame alone.
        codec_digest: :func:`codec_digest` of the model they were computed with.
        device_type: the device type they were computed on (``"cpu"``).
        source: where they were read from (for messages).
    """

    digests: torch.Tensor
    latents: torch.Tensor
    codec_digest: str
    device_type: str = "cpu"
    source: str = "<memory>"

    def __len__(self) -> int:
        return len(self.latents)

    def mismatch(self, model: nn.Module) -> str | None:
        """Why these encodings are not what ``model.encode`` gives now, or None when they are."""
        shape = (model.codec.latent_channels, *model.backbone.config.latent_size)
        if tuple(self.latents.shape[1:]) != shape:
            return f"they hold latents of shape {tuple(self.latents.shape[1:])}, the model's are {shape}"
        if model.device.type != self.device_type or model.codec.device.type != self.device_type:
            return f"they were computed on {self.device_type}, the model runs on {model.codec.device.type}"
        if codec_digest(model) != self.codec_digest:
            return "the model's codec (config, weights or dtype) is not the one they were computed with"
        return None

    def entries(self, model: nn.Module) -> dict[bytes, torch.Tensor]:
        """``{frame digest: latent}`` on the model's device in its dtype (as ``model.encode`` casts)."""
        latents = self.latents.to(model.device, model.dtype)
        return {bytes(d.tolist()): latent for d, latent in zip(self.digests, latents)}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the safetensors file (tensors ``digests``, ``latents``; the rest as metadata)."""
        path = Path(path)
        save_file({"digests": self.digests.contiguous(), "latents": self.latents.contiguous()}, str(path),
                  metadata={"format": START_ENCODINGS_FORMAT, "codec_digest": self.codec_digest,
                            "device_type": self.device_type, "torch": torch.__version__})
        return path


def read_start_encodings(path: str | os.PathLike) -> StartEncodings:
    """Read and check a start-encodings file.

    Raises:
        ValueError: the file is not readable safetensors, not of this format, or its tensors are
            not ``digests`` ``(N, 20)`` uint8 and finite ``latents`` ``(N, C, h, w)`` float32 (the
            message names the file).
    """
    from safetensors import safe_open

    path = Path(path)
    state = read_weights(path)  # readable, finite
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    problems = []
    if metadata.get("format") != START_ENCODINGS_FORMAT:
        problems.append(f"metadata format is {metadata.get('format')!r}, expected {START_ENCODINGS_FORMAT!r}")
    if not metadata.get("codec_digest"):
        problems.append("no codec_digest in its metadata")
    if sorted(state) != ["digests", "latents"]:
        problems.append(f"tensors are {sorted(state)}, expected ['digests', 'latents']")
    else:
        digests, latents = state["digests"], state["latents"]
        if digests.dtype != torch.uint8 or digests.dim() != 2 or digests.shape[1] != DIGEST_SIZE:
            problems.append(f"digests must be uint8 (N, {DIGEST_SIZE}), got {digests.dtype} {tuple(digests.shape)}")
        if latents.dtype != torch.float32 or latents.dim() != 4 or len(latents) != len(digests):
            problems.append(f"latents must be float32 (N, C, h, w) with N = {len(digests)} digests, "
                            f"got {latents.dtype} {tuple(latents.shape)}")
    if problems:
        raise ValueError(f"{path} is not a start-encodings file: " + "; ".join(problems))
    return StartEncodings(state["digests"], state["latents"], metadata["codec_digest"],
                          metadata.get("device_type", "cpu"), str(path))


def load_start_encodings(directory: str | os.PathLike, model: nn.Module) -> StartEncodings | None:
    """The start encodings of a model directory, or None when it has none or they are stale.

    Raises:
        ValueError: the file exists but is malformed (:func:`read_start_encodings`).
    """
    path = Path(directory) / START_ENCODINGS_NAME
    if not path.is_file():
        return None
    encodings = read_start_encodings(path)
    problem = encodings.mismatch(model)
    if problem:
        warnings.warn(f"ignoring {path}: {problem}; start frames will be encoded at reset. Rewrite it with "
                      f"world_gym.start_encodings.write_start_encodings", stacklevel=3)
        return None
    return encodings
