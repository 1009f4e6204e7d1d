"""``world-gym train-reward-head``: the parser; :mod:`world_gym.reward_models.train_resnet_iou` (torch) runs it."""

from __future__ import annotations

import argparse

DESCRIPTION = """Train the ``resnet_iou`` reward head: regress gym-pusht coverage from 96x96 frames.

Two sources of labelled frames, mixed per batch:

* **Push-T datasets** (LeRobotDataset roots written by the Push-T collector) with columns
  ``observation.image`` (96, 96, 3) and ``observation.coverage`` (1,). Their coverage is skewed
  toward 0 (the block is rarely near the goal), so frames are drawn with weights inversely
  proportional to the frequency of their coverage bin.
* **Rendered states**: block poses drawn around the goal at many scales (and uniformly, as
  gym-pusht's reset does), rendered and labelled by gym-pusht itself. Fresh frames every batch,
  dense near the 0.95 success boundary, where the head's precision and recall are decided.

Run ``world-gym train-reward-head --help``. The loop checkpoints to ``--out`` and resumes from it;
``--export`` writes the fp16 safetensors that the ``resnet_iou`` head loads.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train-reward-head`` to the ``world-gym`` CLI."""
    p = subparsers.add_parser("train-reward-head", help="train the resnet_iou Push-T coverage head",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/resnet_iou", help="run directory (checkpoint, log, last weights); resumed if present")
    p.add_argument("--train-root", action="append", default=[], help="LeRobotDataset root with coverage labels (repeatable)")
    p.add_argument("--heldout-root", default=None, help="LeRobotDataset root to evaluate on")
    p.add_argument("--rendered-fraction", type=float, default=0.5,
                   help="share of each batch rendered from random states (1.0 without --train-root)")
    p.add_argument("--boundary-fraction", type=float, default=0.0,
                   help="share of rendered frames drawn with coverage within 0.02 of the success threshold")
    p.add_argument("--boundary-weight", type=float, default=0.0,
                   help="extra loss weight of frames near the success threshold (0: plain smooth L1)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--augment-fraction", type=float, default=0.5,
                   help="share of training frames blurred and noised (the refiner needs sharp frames more)")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-frames", type=int, default=2000)
    p.add_argument("--checkpoint-every", type=int, default=25)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="train in fp32 (bf16 autocast by default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export", default=None, help="write the final weights (fp16 safetensors) here at the end")
    p.add_argument("--bn-recalibrate", type=int, default=0, metavar="N",
                   help="before each evaluation and the export, set batch-norm statistics to their "
                        "average over N training batches (0: keep the running averages)")
    p.add_argument("--refine-from", default=None, metavar="WEIGHTS",
                   help="train the goal-crop refiner on top of these whole-frame weights (kept frozen); "
                        "the export holds both")
    p.add_argument("--eval-only", default=None, metavar="WEIGHTS",
                   help="only evaluate these weights on --heldout-root and print JSON")
    p.add_argument("--world-model", default=None,
                   help="with --eval-only: also score frames this world model imagines for held-out actions")
    p.add_argument("--wm-episodes", type=int, default=16, help="held-out episodes for --world-model")
    p.add_argument("--sweep", type=float, nargs="+", default=(),
                   help="with --eval-only: precision/recall also at these decision thresholds")
    p.add_argument("--no-render-fit", dest="render_fit", action="store_false",
                   help="with --eval-only: the networks alone, without re-rendering exact gym-pusht frames "
                        "near the threshold (which the resnet_iou head does by default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train or evaluate the head as ``args`` say."""
    from world_gym.reward_models.train_resnet_iou import _run

    return _run(args)
