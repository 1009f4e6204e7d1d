"""``world-gym evaluate``: policies in a world model and in its ground truth, compared.

    world-gym evaluate --policy zoo:zoo --episodes 50 --num-envs 10 --out outputs/eval_pusht \\
        --model runs/pusht_wm --reward-model resnet_iou

Interrupt and re-run the same command to resume: finished (policy, side) results are read from
``<out>/results/``.
"""

from __future__ import annotations

import argparse
import json
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate policies in a world model and its ground truth, compared")
    p.add_argument("--policy", action="append", required=True,
                   help="[name=]kind[:path][,key=value...]; kinds: random, cnn_bc, lerobot, sb3, replay, pixel_expert, "
                        "expert_proposal, novel (novel:greedy: unlike the training mix), "
                        "plan (a planner: plan:ranking,k=16,proposal=expert_proposal+chunk_size=8), "
                        "zoo (repeatable)")
    p.add_argument("--env", default="IRASim-PushT-v0", help="registered world-model env id")
    p.add_argument("--model", default=None, help="world-model directory (default: the env's)")
    p.add_argument("--reward-model", default=None, help="reward head name (default: the env's; Push-T: pusht_pose_coverage on pose tokens, resnet_iou otherwise)")
    p.add_argument("--reward-model-kwargs", default="{}", help="JSON arguments of the reward head")
    p.add_argument("--episodes", type=int, default=50, help="episodes per policy and side")
    p.add_argument("--seed-start", type=int, default=0, help="first start seed (gym-pusht reset seed)")
    p.add_argument("--num-envs", type=int, default=10, help="envs run at once on each side")
    p.add_argument("--max-frames", type=int, default=300, help="episode limit in primitive actions")
    p.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the model's)")
    p.add_argument("--sampler", default=None, help="sampler override (ddim, dpm_solver, ...)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="world-model precision, backbone and codec (default: the model's; "
                   "bfloat16 runs ~3x faster on CPUs with AVX512-BF16)")
    p.add_argument("--decoder", default=None, choices=["fast", "vae", "render"],
                   help="decoder (default: a pose codec's sprite renderer if it has one, else the fast "
                        "decoder if there is one, else the VAE)")
    p.add_argument("--no-ground-truth", action="store_true", help="world model only")
    p.add_argument("--no-world-model", action="store_true", help="ground truth only (grade a policy zoo)")
    p.add_argument("--videos", type=int, default=2, help="side-by-side videos per policy (first seeds)")
    p.add_argument("--out", default="outputs/evaluation", help="results folder (cache, report, plot, videos)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from world_gym.evaluation.harness import EvaluationConfig, _finite, evaluate_policies
    from world_gym.evaluation.report import MIN_POLICIES_FOR_CORRELATION, write_report
    from world_gym.policies.zoo import parse_policy_spec

    specs = [spec for text in args.policy for spec in parse_policy_spec(text)]
    dtype = getattr(torch, args.dtype) if args.dtype else None  # backbone and codec alike
    env_kwargs = {k: v for k, v in {"model": args.model, "num_inference_steps": args.steps, "sampler": args.sampler,
                                    "device": args.device, "dtype": dtype, "codec_dtype": dtype,
                                    "decoder": args.decoder}.items()
                  if v is not None}
    seeds = list(range(args.seed_start, args.seed_start + args.episodes))
    config = EvaluationConfig(
        env_id=args.env, seeds=seeds, num_envs=min(args.num_envs, args.episodes), max_episode_frames=args.max_frames,
        env_kwargs=env_kwargs, reward_model=args.reward_model, reward_model_kwargs=json.loads(args.reward_model_kwargs),
        ground_truth_id="" if args.no_ground_truth else None, video_seeds=seeds[: args.videos], out_dir=args.out,
        world_model=not args.no_world_model,
    )
    start = time.perf_counter()
    summary = evaluate_policies(specs, config, progress=not args.quiet)
    paths = write_report(summary, args.out)
    rows = {name: {side: {"success_rate": r["summary"]["success_rate"],
                          "mean_max_coverage": r["summary"]["mean_max_coverage"]} for side, r in sides.items()}
            for name, sides in summary["policies"].items()}
    comparison = {key: c if c["policies"] >= MIN_POLICIES_FOR_CORRELATION else
                  {**c, "pearson": None, "spearman": None,
                   "note": f"correlations need >= {MIN_POLICIES_FOR_CORRELATION} policies"}
                  for key, c in summary["comparison"].items()}
    print(json.dumps(_finite({"report": paths["report"], "plot": paths["plot"], "reward_head": summary["reward_head"],
                      "policies": rows, "comparison": comparison,
                      "seconds": round(time.perf_counter() - start, 1)}), default=str))
    return 0
