"""Precomputed encodings of start frames, shipped in a world-model directory.

Encoding a start frame can be the costliest part of ``reset`` (a pose codec refines the pose it reads
with 100 gradient steps through its decoder, 0.2-0.35 s on one CPU thread). A model directory may
therefore hold ``start_encodings.safetensors``: the latents ``model.encode`` gives for a list of
frames (one frame per call, on CPU), keyed by each frame's digest (:func:`frame_digest`), and a
digest of the codec they were computed with (:func:`codec_digest`: its config, the frame size and
every codec tensor). :meth:`~world_gym.world_model.WorldModel.from_pretrained` reads the file (a
malformed one raises an error naming it; one computed with another codec is ignored with a warning),
and every env on the model starts from those frames without encoding them
(:class:`~world_gym.simulator.EncodingCache`), as long as its codec is still the one they were computed
with (same weights, dtype and device type).

Write the file with :func:`write_start_encodings` (or ``world-gym start-encodings``)::

    write_start_encodings("path/to/model", frames)  # frames: uint8 (N, H, W, 3), e.g. an env's start bank
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from world_gym.model_files import (  # noqa: F401  (re-exported: the file's format lives with the other model files)
    DIGEST_SIZE,
    START_ENCODINGS_NAME,
    StartEncodings,
    codec_digest,
    frame_digest,
    load_start_encodings,
    read_start_encodings,
)
from world_gym.world_model import WorldModel

logger = logging.getLogger(__name__)


def usable_start_encodings(model: WorldModel) -> dict[bytes, torch.Tensor]:
    """The model's start encodings (``model.start_encodings``) as cache entries, or ``{}`` when it has
    none or its codec has changed since they were computed (logged: a ``codec_dtype`` or a device
    other than the one they were computed on)."""
    encodings: StartEncodings | None = getattr(model, "start_encodings", None)
    if encodings is None:
        return {}
    problem = encodings.mismatch(model)
    if problem:
        logger.info("not using the %d start encodings of %s: %s", len(encodings), encodings.source, problem)
        return {}
    return encodings.entries(model)


@torch.no_grad()
def compute_start_encodings(model: WorldModel, frames: np.ndarray, progress: bool = True) -> StartEncodings:
    """Encode each distinct frame of ``frames`` ``(N, H, W, 3)`` uint8 alone with ``model`` (on CPU,
    in float32, as a one-env reset encodes it).

    Raises:
        ValueError: the model is not on CPU in float32, or ``frames`` are not uint8 of its frame size.
    """
    if model.device.type != "cpu" or model.dtype != torch.float32:
        raise ValueError(f"start encodings are computed on CPU in float32, the model is {model.device} {model.dtype}")
    frames = np.asarray(frames)
    expected = (*model.config.frame_size, 3)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != expected:
        raise ValueError(f"frames must be uint8 (N, {expected[0]}, {expected[1]}, 3), "
                         f"got {frames.dtype} {frames.shape}")
    unique = {frame_digest(frame): frame for frame in frames}
    latents = [model.encode(frame[None])[0].float()
               for frame in tqdm(unique.values(), desc="encoding start frames", disable=not progress)]
    digests = torch.tensor(np.frombuffer(b"".join(unique), np.uint8).reshape(len(unique), DIGEST_SIZE))
    return StartEncodings(digests, torch.stack(latents), codec_digest(model), "cpu")


def write_start_encodings(model_dir: str | os.PathLike, frames: np.ndarray, progress: bool = True) -> Path:
    """Compute the encodings of ``frames`` with the model in ``model_dir`` (loaded on CPU, float32)
    and write them there as ``start_encodings.safetensors``, replacing any earlier file.

    Floating-point sums depend on the thread count (and batch), so the latents equal a cold
    ``model.encode`` of one frame bit for bit under the thread count they were written with: the
    ``world-gym start-encodings`` command writes them on one thread (more threads differ by ~1e-6).

    Args:
        model_dir: a world-model directory.
        frames: uint8 ``(N, H, W, 3)``, e.g. the frames of an env's initial-state bank.
        progress: show a progress bar.

    Returns:
        The path of the file written.
    """
    path = Path(model_dir) / START_ENCODINGS_NAME
    model = WorldModel.from_pretrained(model_dir, device="cpu", start_encodings=False)  # an earlier file is replaced
    encodings = compute_start_encodings(model, frames, progress)
    encodings.save(path)
    logger.info("wrote %d start encodings (%d bytes) to %s", len(encodings), path.stat().st_size, path)
    return path
