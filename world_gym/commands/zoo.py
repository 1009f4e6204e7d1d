"""``world-gym zoo``: the parser; :mod:`world_gym.policies.train_zoo` (torch) runs it."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``zoo`` to the ``world-gym`` command line."""
    p = subparsers.add_parser("zoo", help="train the Push-T policy zoo (BC checkpoints, expert replays)")
    p.add_argument("--data", default=None, help="LeRobotDataset root of expert data (omit: no BC policies)")
    p.add_argument("--out", default="runs/zoo")
    p.add_argument("--steps", default="250,1000,2000,4000", help="BC checkpoints, comma-separated steps")
    p.add_argument("--data-fraction", type=float, default=0.1, help="episodes of the small-data BC run")
    p.add_argument("--data-steps", type=int, default=2000, help="steps of the small-data BC run")
    p.add_argument("--behaviors", default="0", help="behaviour codes used for BC (0 expert, 1 noisy expert; 'all': every row)")
    p.add_argument("--replay-seeds", default="0:50", help="evaluation seeds to record expert replays for, lo:hi")
    p.add_argument("--replay-noise", default="0,3,8,15,40", help="action noise levels (px) of the replay policies")
    p.add_argument("--pixel-expert-noise", default="0,10,20,35",
                   help="noise levels (px) of the pixel-reading scripted experts ('': none)")
    p.add_argument("--act-steps", type=int, default=800, help="steps of the small LeRobot ACT policy (0: none)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train the zoo as ``args`` say."""
    from world_gym.policies.train_zoo import run as train_zoo

    return train_zoo(args)
