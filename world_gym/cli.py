"""The ``world-gym`` command line.

Each subcommand lives in a module with ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed arguments, returning an exit code). Only the module of the
subcommand being run is imported, so ``world-gym --help`` and ``world-gym <command> --help`` do not
load torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from world_gym import __version__

DESCRIPTION = (
    "Trained robot world models as Gymnasium environments: list the envs, roll a policy out, evaluate "
    "policies against the real simulator, collect data and train world models and reward heads."
)

#: subcommand -> (module defining ``register(subparsers)``, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "envs": ("world_gym.commands.envs", "list the registered env ids, their default models and measured figures"),
    "rollout": ("world_gym.commands.rollout", "roll a random policy out in a world-model env and write a video"),
    "evaluate": ("world_gym.evaluation.command", "evaluate policies in a world model and its ground truth, compared"),
    "generate": ("world_gym.commands.generate", "roll a policy out in a world model and write a LeRobotDataset"),
    "teleop": ("world_gym.commands.teleop", "drive a world model live in a pygame window, recording episodes"),
    "collect": ("world_gym.data.collect", "record ground-truth episodes into a local LeRobotDataset"),
    "generate": ("world_gym.commands.generate", "roll a policy out in a world model and write a LeRobotDataset"),
    "teleop": ("world_gym.commands.teleop", "drive a world model live in a pygame window, recording episodes"),
    "replay": ("world_gym.data.replay", "pack episodes as replay manifests (seed + actions), or check one"),
    "train": ("world_gym.commands.train", "train a world model, stage by stage (Hydra configs)"),
    "train-reward-head": ("world_gym.commands.train_reward_head", "train the resnet_iou Push-T coverage head"),
    "zoo": ("world_gym.commands.zoo", "train the Push-T policy zoo (BC checkpoints, expert replays)"),
    "start-encodings": ("world_gym.commands.start_encodings",
                        "precompute a model's encodings of an env's start frames (faster resets)"),
    "convert-irasim": ("world_gym.commands.convert_irasim",
                       "convert an official IRASim checkpoint to a world-model directory"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only ``command``'s module is imported to build its full parser.

    Args:
        command: the subcommand to build completely, or None for the overview (``--help``).

    Returns:
        A parser whose other subcommands are listed with their help line only.
    """
    parser = argparse.ArgumentParser(
        prog="world-gym", description=DESCRIPTION,
        epilog="Run 'world-gym <command> --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"world-gym {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for name, (module, help_text) in COMMANDS.items():
        if name == command:
            importlib.import_module(module).register(subparsers)
        else:
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
