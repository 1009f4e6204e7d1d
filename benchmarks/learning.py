"""Learning in the world model, graded in gym-pusht: synthetic demonstrations and DAgger.

    python benchmarks/learning.py                       # every arm; cached and resumable in --out
    python benchmarks/learning.py --arms bc-real,bc-wm  # some arms
    python benchmarks/learning.py --demos 10 --starts 10 --dagger-iterations 1 --out outputs/learning_smoke

The learner is :class:`~world_gym.policies.pusht_state_bc.PushTStateBC` (an MLP on the state read
off each frame: it learns Push-T from 100 demonstrations in seconds of CPU; a CNN from pixels does
not within this budget). The expert is
:class:`~world_gym.policies.pusht_expert_proposal.PushTExpertProposal` with ``--expert-noise``
(the scripted pusher reading the state off the frame, memoryless), in gym-pusht and in the world
model alike. Every arm fits the same learner with the same budget (``--fit-steps``) and is graded
in gym-pusht (``gym_pusht/PushT-v0``, 96 x 96, 300 steps) from ``--starts`` held-out starts (seeds
``0 .. starts - 1``; demonstrations and DAgger rollouts use seeds from 300000 up), over
``--fit-seeds`` runs (each DAgger run rolls its learner out from its own seeds, 400000 + 10000 x run).

Arms:
Demonstrations are used at the expert's frames of decision (every ``--chunk``-th frame, where the
label is the chunk the expert chose from that frame; labels of frames inside a chunk were chosen
from an earlier frame, and training on them measurably hurts this learner).

- data parity: ``bc-real`` (``--demos`` demonstrations in gym-pusht), ``bc-wm`` (as many generated
  in the world model ``--model`` from the same starts), ``bc-mix`` (half of each);
- DAgger: ``bc-small`` (the first ``--dagger-demos`` real demonstrations), ``dagger-wm`` (then
  DAgger with the learner rolled out and labelled in the world model), ``dagger-real`` (the same in
  gym-pusht), with the same number of iterations and expert labels.

Per arm: success rate (Clopper-Pearson 95%), mean max coverage (bootstrap 95% over starts and
fit seeds), expert labels used. Prints a markdown table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from world_gym.evaluation.metrics import bootstrap_ci, clopper_pearson
from world_gym.learning import (DAggerConfig, Demonstrations, demonstrations, episode_summary, make_backend,
                                roll_out, run_dagger)
from world_gym.policies.pusht_expert_proposal import PushTExpertProposal
from world_gym.policies.pusht_state_bc import PushTStateBC, PushTStateBCConfig, PushTStateNearest

LEARNERS = {"mlp": PushTStateBC, "nearest": PushTStateNearest}

ARMS = ("expert", "bc-real", "bc-small", "dagger-real", "bc-wm", "bc-mix", "dagger-wm")
#: arms that never touch the world model: their results do not depend on --model / --reward-model
REAL_ARMS = ("expert", "bc-real", "bc-small", "dagger-real")
DEMO_SEED = 300_000  # demonstrations' starts (held-out grading uses 0 .. starts - 1)
DAGGER_SEED = 400_000  # DAgger rollouts' starts
logger = logging.getLogger("learning_benchmark")


def collect(args: argparse.Namespace, side: str, learner: PushTStateBC) -> tuple[Demonstrations, dict[str, Any]]:
    """``--demos`` expert demonstrations in gym-pusht (``real``) or the world model (``wm``), cached
    in blocks of 10 episodes so an interrupted collection resumes."""
    out = Path(args.out) / (f"demos-{side}" if side == "real" else f"demos-wm-{world_model_tag(args)}")
    out.mkdir(parents=True, exist_ok=True)
    backend = None
    parts, summaries = [], []
    for block in range(0, args.demos, 10):
        path = out / f"block-{block:04d}.npz"
        seeds = list(range(DEMO_SEED + block, DEMO_SEED + min(block + 10, args.demos)))
        if not path.is_file():
            if backend is None:
                backend = make_backend(args.model, args.num_envs, args.chunk, real=side == "real",
                                       env_kwargs=wm_kwargs(args))
            t0 = time.perf_counter()
            episodes = roll_out(backend, lambda: PushTExpertProposal(args.expert_noise, args.chunk), seeds,
                                name=f"expert ({side})")
            # episode ids apart between the sides, so a mix keeps every episode its own
            demo = demonstrations(episodes, learner, args.chunk, source=side,
                                  first_episode=block + (0 if side == "real" else 1_000_000))
            demo.save(path)
            path.with_suffix(".json").write_text(json.dumps({**episode_summary(episodes),
                                                             "seconds": time.perf_counter() - t0}))
            logger.info("%s demos %d-%d: %s", side, seeds[0], seeds[-1], episode_summary(episodes))
        parts.append(Demonstrations.load(path))
        summaries.append(json.loads(path.with_suffix(".json").read_text()))
    demos = Demonstrations.join(parts)
    frames = sum(s["frames"] for s in summaries)
    summary = {"episodes": sum(s["episodes"] for s in summaries), "frames": frames,
               "success_rate": float(np.average([s["success_rate"] for s in summaries],
                                                weights=[s["episodes"] for s in summaries])),
               "mean_max_coverage": float(np.average([s["mean_max_coverage"] for s in summaries],
                                                     weights=[s["episodes"] for s in summaries])),
               "seconds": sum(s["seconds"] for s in summaries)}
    return demos, summary


def wm_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``gym.make`` arguments of the world model."""
    return {"reward_model": args.reward_model} if args.reward_model else {}


def world_model_tag(args: argparse.Namespace) -> str:
    """The world model and its reward head, for cache names."""
    return args.model + (f"+{args.reward_model}" if args.reward_model else "")


def arm_name(arm: str, args: argparse.Namespace) -> str:
    """An arm's cache name: arms that use the world model carry its tag, other learners than the MLP theirs."""
    name = arm if arm in REAL_ARMS else f"{arm}-{world_model_tag(args)}"
    name = name if args.learner == "mlp" or arm == "expert" else f"{name}-{args.learner}"
    return f"{name}-stride{args.label_stride}" if args.label_stride != 1 and arm.startswith("dagger") else name


def arm_settings(arm: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings an arm's result depends on."""
    drop = (("model", "reward_model") if arm in REAL_ARMS else ()) + (() if arm.startswith("dagger") else ("label_stride",))
    return {k: v for k, v in settings.items() if k not in drop}


def grade(args: argparse.Namespace, policy: Any, name: str) -> list[dict[str, Any]]:
    """Episodes of ``policy`` in gym-pusht from the held-out starts."""
    from world_gym.evaluation.rollouts import run_episodes

    backend = make_backend(args.model, args.num_envs, args.chunk, real=True)
    stats = run_episodes(backend, lambda: policy, list(range(args.starts)), name=name)
    return [r.to_dict() for r in stats.episodes]


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    cov = np.array([r["max_coverage"] for r in rows], np.float64)
    wins = int(sum(r["success"] for r in rows))
    lo, hi = clopper_pearson(wins, len(rows))
    clo, chi = bootstrap_ci(cov, np.mean, seed=0)
    return {"episodes": len(rows), "successes": wins, "success_rate": wins / len(rows), "success_ci": [lo, hi],
            "mean_max_coverage": float(cov.mean()), "coverage_ci": [float(clo), float(chi)]}


def run_arm(arm: str, args: argparse.Namespace, fit_seed: int, cache: dict[str, Any]) -> dict[str, Any]:
    """Train (or not, for ``expert``) and grade one arm with one fit seed."""
    config = PushTStateBCConfig(chunk_size=args.chunk, steps=args.fit_steps)
    learner = LEARNERS[args.learner](config)
    if arm == "expert":
        return {"episodes": grade(args, PushTExpertProposal(args.expert_noise, args.chunk), arm), "labels": 0}
    if "real" not in cache and arm != "bc-wm":
        cache["real"] = collect(args, "real", learner)
    if arm in ("bc-wm", "bc-mix") and "wm" not in cache:
        cache["wm"] = collect(args, "wm", learner)
    if arm == "bc-real":
        data = cache["real"][0]
    elif arm == "bc-wm":
        data = cache["wm"][0]
    elif arm == "bc-mix":
        half = args.demos // 2
        data = cache["real"][0].first_episodes(half).concat(cache["wm"][0].first_episodes(args.demos - half))
    else:
        data = cache["real"][0].first_episodes(args.dagger_demos)
    # the expert acts in chunks: its frames of decision carry the chunk it chose from them
    data = data.every(args.chunk)
    if arm.startswith("dagger"):
        dagger = DAggerConfig(iterations=args.dagger_iterations, episodes_per_iteration=args.dagger_episodes,
                              labels_per_iteration=args.dagger_labels, chunk_size=args.chunk,
                              first_seed=DAGGER_SEED + 10_000 * fit_seed, seed=fit_seed,
                              label_stride=args.label_stride)
        backend = make_backend(args.model, args.num_envs, args.chunk, real=arm == "dagger-real",
                               env_kwargs=wm_kwargs(args))
        result = run_dagger(learner, PushTExpertProposal(args.label_noise, args.chunk), backend, data, dagger,
                            out_dir=Path(args.out) / "dagger" / f"{arm_name(arm, args)}-seed{fit_seed}")
        learner, history = result.learner, result.history
        labels = len(result.data)
    else:
        learner.fit(data.features, data.labels, seed=fit_seed)
        history, labels = [], len(data)
    return {"episodes": grade(args, learner, arm), "labels": labels, "demo_episodes": data.num_episodes,
            "history": history}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {','.join(ARMS)}")
    parser.add_argument("--model", default="IRASim-PushT-v0", help="world-model env id")
    parser.add_argument("--reward-model", default=None, help="the world model's reward head (default: the env's)")
    parser.add_argument("--learner", default="mlp", choices=sorted(LEARNERS),
                        help="PushTStateBC (mlp) or PushTStateNearest (nearest neighbour)")
    parser.add_argument("--demos", type=int, default=100, help="demonstrations per data-parity arm")
    parser.add_argument("--starts", type=int, default=100, help="held-out gym-pusht starts each arm is graded on")
    parser.add_argument("--fit-seeds", type=int, default=2, help="training seeds per arm")
    parser.add_argument("--fit-steps", type=int, default=4000, help="optimizer steps of every fit")
    parser.add_argument("--chunk", type=int, default=8, help="actions per chunk (learner and expert)")
    parser.add_argument("--expert-noise", type=float, default=5.0, help="the demonstrator's noise (pixels)")
    parser.add_argument("--label-noise", type=float, default=0.0, help="the DAgger labeller's noise (pixels)")
    parser.add_argument("--dagger-demos", type=int, default=20, help="demonstrations DAgger starts from")
    parser.add_argument("--dagger-iterations", type=int, default=4)
    parser.add_argument("--dagger-episodes", type=int, default=8, help="learner episodes per DAgger iteration")
    parser.add_argument("--dagger-labels", type=int, default=600, help="expert labels per DAgger iteration")
    parser.add_argument("--label-stride", type=int, default=1,
                        help="DAgger labels only every k-th frame (the chunk size: the learner's frames of decision)")
    parser.add_argument("--num-envs", type=int, default=8, help="episodes run at once")
    parser.add_argument("--out", default="outputs/learning_bench", help="cache folder (resumable)")
    parser.add_argument("--report-only", action="store_true", help="run nothing: the table of what the cache holds")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    arms = [a for a in args.arms.split(",") if a]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        parser.error(f"unknown arms {unknown}; known: {list(ARMS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(args, k) for k in ("model", "reward_model", "demos", "starts", "fit_steps", "chunk", "expert_noise",
                                              "label_noise", "dagger_demos", "dagger_iterations", "dagger_episodes",
                                              "dagger_labels")}
    if args.learner != "mlp":
        settings["learner"] = args.learner
    if args.label_stride != 1:
        settings["label_stride"] = args.label_stride
    cache: dict[str, Any] = {}
    results: dict[str, Any] = {}
    for arm in arms:
        rows, labels, extra = [], [], []
        for fit_seed in range(1 if arm == "expert" else args.fit_seeds):
            path = out / "arms" / f"{arm_name(arm, args)}-seed{fit_seed}.json"
            stored = json.loads(path.read_text()) if path.is_file() else None
            wanted = arm_settings(arm, settings)
            if args.report_only and (stored is None or arm_settings(arm, stored["settings"]) != wanted):
                continue
            if stored is None or arm_settings(arm, stored["settings"]) != wanted:
                t0 = time.perf_counter()
                stored = {"settings": wanted, **run_arm(arm, args, fit_seed, cache),
                          "seconds": time.perf_counter() - t0}
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(stored))
            rows += stored["episodes"]
            labels.append(stored["labels"])
            extra.append({k: stored.get(k) for k in ("history", "demo_episodes", "seconds")})
            logger.info("%s seed %d: %s", arm, fit_seed, summarize(stored["episodes"]))
        if rows:
            results[arm] = {**summarize(rows), "labels": int(np.mean(labels)), "fits": extra}
    demo_info = {side: json.loads(p.read_text()) for side, name in (("real", "demos-real"),
                                                                    ("wm", f"demos-wm-{world_model_tag(args)}"))
                 for p in [out / name / "block-0000.json"] if p.is_file()}

    print(f"\nLearning Push-T, graded in gym-pusht from {args.starts} held-out starts x {args.fit_seeds} fit seeds; "
          f"learner {LEARNERS[args.learner].__name__} ({args.fit_steps} steps); world model {world_model_tag(args)}; CPU threads 1 "
          f"({os.cpu_count()} cores)\n")
    print("| arm | success | mean max coverage | expert labels |")
    print("| --- | ---: | ---: | ---: |")
    for arm, r in results.items():
        print(f"| {arm} | {r['successes']}/{r['episodes']} [{r['success_ci'][0]:.2f}, {r['success_ci'][1]:.2f}] | "
              f"{r['mean_max_coverage']:.3f} [{r['coverage_ci'][0]:.3f}, {r['coverage_ci'][1]:.3f}] | {r['labels']} |")
    ratios = {}
    if "bc-real" in results and "bc-wm" in results:
        real, wm = results["bc-real"], results["bc-wm"]
        ratios["parity_coverage"] = wm["mean_max_coverage"] / real["mean_max_coverage"]
        ratios["parity_success"] = wm["success_rate"] / real["success_rate"] if real["success_rate"] else None
    if all(a in results for a in ("bc-small", "dagger-wm", "dagger-real")):
        base = results["bc-small"]["mean_max_coverage"]
        gain_real = results["dagger-real"]["mean_max_coverage"] - base
        gain_wm = results["dagger-wm"]["mean_max_coverage"] - base
        ratios["dagger_gain_real"], ratios["dagger_gain_wm"] = gain_real, gain_wm
        # a share of the real simulator's gain means something only when there is a gain
        ratios["dagger_recovered_coverage"] = gain_wm / gain_real if gain_real > 0 else None
    if ratios:
        print("\n" + ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} -" for k, v in ratios.items()))
    report = {"benchmark": "learning", **settings, "fit_seeds": args.fit_seeds, "arms": results, "ratios": ratios,
              "demo_collection_first_block": demo_info}
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
