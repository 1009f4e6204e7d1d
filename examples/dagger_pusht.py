"""DAgger in the Push-T world model: the learner practises in imagination, the expert corrects it.

    python examples/dagger_pusht.py --demos 20 --iterations 4 --out outputs/dagger_pusht

1. The scripted expert (reading the state off the frame) demonstrates ``demos`` episodes in gym-pusht.
2. A small learner (the nearest demonstrated state, read off each frame) is fitted to them: plain
   behaviour cloning.
3. DAgger: the learner acts in the world model (``env_id``, vectorized: one batched model call per chunk),
   the expert labels the imagined frames where the learner chose its chunks, the labels join the data,
   the learner is refitted. No gym-pusht step is taken after the demonstrations.
4. Both learners are graded in gym-pusht from held-out starts.

Re-running with the same ``--out`` continues an interrupted run after its last finished iteration.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch

from world_gym.evaluation.rollouts import run_episodes
from world_gym.learning import DAggerConfig, demonstrations, make_backend, roll_out, run_dagger
from world_gym.policies.pusht_expert_proposal import PushTExpertProposal
from world_gym.policies.pusht_state_bc import PushTStateBCConfig, PushTStateNearest


@dataclass
class Args:
    env_id: str = "IRASim-PushT-v0"  # the world model DAgger runs in
    model: str = ""  # another model for it (a directory or shipped name; empty: the env's own)
    demos: int = 20  # expert demonstrations in gym-pusht
    iterations: int = 4  # DAgger rounds
    episodes: int = 8  # learner episodes per round (in the world model)
    labels: int = 300  # expert labels per round (at most one per learner decision)
    starts: int = 20  # held-out gym-pusht starts for the grade (seeds 0 ..)
    num_envs: int = 8
    max_frames: int = 300  # episode limit (gym-pusht's)
    out: str = "outputs/dagger_pusht"


def grade(policy, args: Args) -> str:
    """Success and mean max coverage in gym-pusht from seeds ``0 .. starts - 1``."""
    backend = make_backend(args.env_id, args.num_envs, 8, real=True, max_episode_frames=args.max_frames)
    starts = args.starts
    episodes = run_episodes(backend, lambda: policy, list(range(starts))).episodes
    return (f"success {sum(e.success for e in episodes)}/{starts}, "
            f"mean max coverage {np.mean([e.max_coverage for e in episodes]):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in vars(Args()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    args = Args(**vars(parser.parse_args()))
    torch.set_num_threads(1)

    expert = lambda: PushTExpertProposal(noise=5.0, chunk_size=8)  # noqa: E731
    learner = PushTStateNearest(PushTStateBCConfig(chunk_size=8))

    # 1. demonstrations in the real simulator; keep the frames where the expert chose its chunk
    real = make_backend(args.env_id, args.num_envs, 8, real=True, max_episode_frames=args.max_frames)
    episodes = roll_out(real, expert, range(300_000, 300_000 + args.demos), name="expert")
    demos = demonstrations(episodes, learner, chunk_size=8).every(8)

    # 2. behaviour cloning alone
    learner.fit(demos.features, demos.labels)
    print(f"BC on {args.demos} demos ({len(demos)} samples), in gym-pusht: {grade(learner, args)}")

    # 3. DAgger in the world model
    imagined = make_backend(args.env_id, args.num_envs, 8, max_episode_frames=args.max_frames,
                            env_kwargs={"model": args.model} if args.model else None)
    # the expert labels the frames where the learner chose a chunk (every 8th)
    config = DAggerConfig(iterations=args.iterations, episodes_per_iteration=args.episodes,
                          labels_per_iteration=args.labels, chunk_size=8, label_stride=8)
    result = run_dagger(learner, PushTExpertProposal(noise=0.0, chunk_size=8), imagined, demos, config,
                        out_dir=args.out)
    for row in result.history[1:]:
        print(f"iteration {row['iteration']}: the learner in {args.env_id}: success "
              f"{row['rollout_success_rate']:.2f}, coverage {row['rollout_mean_max_coverage']:.3f}; "
              f"{row['labels_added']} labels added")

    # 4. the grade that counts: gym-pusht
    print(f"DAgger in {args.env_id} ({len(result.data)} samples), in gym-pusht: "
          f"{grade(result.learner, args)}")
    print(f"checkpoints: {args.out}")


if __name__ == "__main__":
    main()
