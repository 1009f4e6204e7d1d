"""The ``world-gym`` command line: one subcommand per module listed in ``COMMAND_MODULES``.

Each module has ``register(subparsers)``, which adds its parser and sets ``func`` (called with the
parsed arguments, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES: list[str] = [
    "world_gym.commands.rollout",
    "world_gym.convert_irasim",
    "world_gym.data.collect",
    "world_gym.data.replay",
    "world_gym.commands.train",
    "world_gym.reward_models.train_resnet_iou",
    "world_gym.evaluation.command",
    "world_gym.policies.train_zoo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="world-gym", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
