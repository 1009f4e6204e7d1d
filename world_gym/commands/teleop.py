"""``world-gym teleop``: drive a world-model env live in a pygame window, optionally recording every episode.

    world-gym teleop IRASim-PushT-v0 --record data/teleop --mirror
    SDL_VIDEODRIVER=dummy world-gym teleop IRASim-PushT-v0 --record DIR --max-frames 24   # headless

Keys and recording format: :mod:`world_gym.teleop.app` (docs/teleop.md). Needs the ``teleop``
extra (pygame); ``--mirror`` needs gym-pusht (the ``pusht`` extra).
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("teleop", help="drive a world model live in a pygame window, recording episodes",
                              description=__doc__.split("\n\n", 1)[0])
    p.add_argument("env_id", metavar="ENV_ID", help="registered world-model env id, e.g. IRASim-PushT-v0")
    p.add_argument("--model", default=None, help="world-model directory, shipped name or hub id (default: the env's)")
    p.add_argument("--record", default=None, metavar="DIR",
                   help="record every episode to this local LeRobotDataset (created or appended to)")
    p.add_argument("--max-frames", type=int, default=None, help="end the session after N imagined frames")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="actions per model call (default: the env's); input is collected at the display rate")
    p.add_argument("--mirror", action="store_true", help="show gym-pusht stepped with the same actions (Push-T)")
    p.add_argument("--scale", type=int, default=None, help="window pixels per frame pixel")
    p.add_argument("--seed", type=int, default=0, help="start seed of the first episode")
    p.add_argument("--reward-model", default=None, help="reward head name (default: the env's)")
    p.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the model's)")
    p.add_argument("--sampler", default=None, help="sampler override (ddim, dpm_solver, ...)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--operator", default="", help="who drives, stored in the dataset's metadata")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import world_gym  # noqa: F401  (registers the env ids)
    from world_gym.teleop import TeleopSession

    kwargs = {k: v for k, v in {"model": args.model, "chunk_size": args.chunk_size, "reward_model": args.reward_model,
                                "num_inference_steps": args.steps, "sampler": args.sampler,
                                "device": args.device}.items() if v is not None}
    env = gym.make(args.env_id, **kwargs)
    mirror = None
    if args.mirror:
        ground_truth = getattr(env.unwrapped.parts, "ground_truth_id", None) or _ground_truth(args.env_id)
        if ground_truth != "gym_pusht/PushT-v0":
            raise SystemExit(f"--mirror needs an env with gym-pusht as ground truth; {args.env_id} has {ground_truth}")
        from world_gym.envs.pusht.ground_truth import make_pusht_env

        mirror = make_pusht_env()
    source = {"model": args.model, "operator": args.operator}
    session = TeleopSession(env, args.env_id, record=args.record, max_frames=args.max_frames, scale=args.scale,
                            mirror=mirror, seed=args.seed, source=source)
    stats = session.run()
    env.close()
    if mirror is not None:
        mirror.close()
    print(json.dumps({"record": args.record, **stats.to_dict()}))
    return 130 if stats.interrupted else 0


def _ground_truth(env_id: str) -> str | None:
    from world_gym.registration import FAMILIES

    return next((f.ground_truth_id for f in FAMILIES.values() if f.env_id == env_id), None)
