"""``world-gym convert-irasim``: the parser; :mod:`world_gym.convert_irasim` (torch, diffusers) runs it."""

from __future__ import annotations

import argparse

#: the release's datasets and variants, as :mod:`world_gym.convert_irasim` knows them
DATASETS = ("bridge", "languagetable", "rt1")
VARIANTS = ("frame_ada", "video_ada")
SDXL_VAE_HUB_ID = "stabilityai/stable-diffusion-xl-base-1.0"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``convert-irasim`` options."""
    parser.add_argument("checkpoint", help="official .pt file, e.g. languagetable/checkpoints/frame_ada/0300000.pt")
    parser.add_argument("--dataset", required=True, choices=list(DATASETS))
    parser.add_argument("--variant", choices=list(VARIANTS), help="default: read from the weights")
    parser.add_argument("--vae", default=SDXL_VAE_HUB_ID, help="SDXL VAE: diffusers folder or Hub id (%(default)s)")
    parser.add_argument("--out", required=True, help="world-model directory to write")
    parser.add_argument("--weights", choices=["ema", "model"], default="ema",
                        help="which weights (%(default)s, as the authors)")
    parser.add_argument("--num-heads", type=int, default=None, help="attention heads, for non-standard model sizes")
    parser.add_argument(
        "--trust-pickle", action="store_true",
        help="unpickle without the safe allow-list (can run code from the file; only for files from the authors)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``convert-irasim`` to the ``world-gym`` command line."""
    parser = subparsers.add_parser("convert-irasim", help="convert an official IRASim checkpoint to a world-model dir")
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert the checkpoint named in ``args``."""
    from world_gym.convert_irasim import run as convert_run

    return convert_run(args)
