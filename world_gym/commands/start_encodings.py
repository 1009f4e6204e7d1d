"""``world-gym start-encodings``: precompute a model's encodings of an env's start frames
(:mod:`world_gym.start_encodings`), so that resets from them skip the codec."""

from __future__ import annotations

import argparse
import logging

import numpy as np


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``start-encodings`` to the ``world-gym`` command line."""
    p = subparsers.add_parser(
        "start-encodings", help="write a model directory's start_encodings.safetensors for an env's start frames",
        description="Encode every frame of an env's initial-state source (or of an .npz file's 'frames' array) "
        "with the world model in MODEL_DIR, one frame at a time on CPU, and write the latents there as "
        "start_encodings.safetensors. Envs on that model then reset from those frames without encoding them.",
    )
    p.add_argument("model_dir", help="the world-model directory to write into")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--env", help="an env id whose family's initial-state source holds the frames "
                        "(e.g. IRASim-PushT-v0)")
    source.add_argument("--frames", help="an .npz file with a uint8 'frames' array (N, H, W, 3)")
    p.set_defaults(func=run)


def env_start_frames(env_id: str) -> np.ndarray:
    """The frames of env ``env_id``'s default initial-state source, ``(N, H, W, 3)`` uint8.

    Raises:
        ValueError: the env's family has no initial-state source.
    """
    import gymnasium as gym

    import world_gym  # noqa: F401  (registers the ids)
    from world_gym.registration import get_family

    family = get_family(gym.spec(env_id).kwargs["family"])
    if family.initial_states is None:
        raise ValueError(f"{env_id} has no initial-state source; pass --frames")
    states = family.initial_states()
    return np.stack([states.get(i).frame for i in range(len(states))])


def run(args: argparse.Namespace) -> int:
    """Write the file and report its size."""
    import torch

    from world_gym.start_encodings import write_start_encodings

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.env:
        frames = env_start_frames(args.env)
    else:
        with np.load(args.frames) as data:
            frames = data["frames"]
    torch.set_num_threads(1)  # as one env's reset encodes on one thread
    path = write_start_encodings(args.model_dir, frames)
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(frames)} frames)")
    return 0
