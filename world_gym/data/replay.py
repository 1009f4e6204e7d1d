"""Push-T datasets as replay manifests: reset seeds and actions that gym-pusht turns back into the frames.

gym-pusht's physics and drawing are deterministic, so an episode is its reset seed and its actions:
replaying them reproduces every stored frame exactly (checked on the collector's episodes and on
rollouts of learned policies). A manifest of the 530 training episodes is about 1 MB; their frames
are 3.4 GB and their latents 642 MB. That is what lets a machine that takes at most 64 MiB of files
and reaches no network, such as the lent GPU machine, train on the same data.

    world-gym replay pack --root data/pusht/train --root data/pusht/zoo_rollouts --out pusht_train.npz
    world-gym replay check --manifest pusht_train.npz --root data/pusht/train --episodes 5
    world-gym train encode data.replay_manifest=pusht_train.npz ...   # frames from the replay

Manifest arrays: ``seeds (E,)``, ``lengths (E,)`` (frames per episode), ``actions (N, 2)`` float32
(row ``t``'s action leads from frame ``t`` to ``t + 1``; an episode's last action is never stepped),
``final_coverage (E,)`` (gym-pusht's coverage at each episode's last frame: a replay that ends
elsewhere is refused), ``roots`` (the source roots, for the record).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from world_gym.data.episodes import EpisodeArrays


def _read_columns(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeds ``(E,)``, lengths ``(E,)``, actions ``(N, 2)`` and final coverages ``(E,)`` of a
    collector root, in episode order."""
    import pyarrow.parquet as pq

    from world_gym.data.lerobot_io import recover

    recover(root)
    tables = [pq.read_table(p, columns=["episode_index", "frame_index", "action", "episode_seed",
                                        "observation.coverage"])
              for p in sorted((root / "data").glob("*/*.parquet"))]
    if not tables:
        raise FileNotFoundError(f"no parquet files under {root / 'data'}")
    ep = np.concatenate([np.asarray(t.column("episode_index").to_pylist()).reshape(-1) for t in tables])
    fi = np.concatenate([np.asarray(t.column("frame_index").to_pylist()).reshape(-1) for t in tables])
    act = np.concatenate([np.asarray(t.column("action").to_pylist(), np.float32) for t in tables])
    seed = np.concatenate([np.asarray(t.column("episode_seed").to_pylist()).reshape(-1) for t in tables])
    cov = np.concatenate([np.asarray(t.column("observation.coverage").to_pylist(), np.float64).reshape(-1)
                          for t in tables])
    order = np.lexsort((fi, ep))
    ep, fi, act, seed, cov = ep[order], fi[order], act[order], seed[order], cov[order]
    firsts = np.flatnonzero(fi == 0)
    lengths = np.diff(np.append(firsts, len(ep)))
    return seed[firsts].astype(np.int64), lengths.astype(np.int64), act, cov[firsts + lengths - 1]


def pack_manifest(roots: list[str | Path], out: str | Path) -> Path:
    """Write the manifest of every episode of ``roots`` (in order) to ``out`` (``.npz``)."""
    parts = [_read_columns(Path(r)) for r in roots]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, seeds=np.concatenate([p[0] for p in parts]),
                        lengths=np.concatenate([p[1] for p in parts]),
                        actions=np.concatenate([p[2] for p in parts]),
                        final_coverage=np.concatenate([p[3] for p in parts]),
                        roots=np.array([str(r) for r in roots]))
    return out


_ENV: dict = {}  # one gym-pusht env per process, made on its first episode


def _replay_episode(job: tuple[int, np.ndarray]) -> tuple[np.ndarray, float]:
    seed, actions = job
    if "env" not in _ENV:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from world_gym.envs.pusht.ground_truth import make_pusht_env

            _ENV["env"] = make_pusht_env(max_episode_steps=100_000)
    env = _ENV["env"]
    obs, _ = env.reset(seed=int(seed))
    frames = [obs]
    for a in actions[:-1]:
        obs, *_ = env.step(a)
        frames.append(obs)
    return np.stack(frames), float(env.unwrapped._get_coverage())


def replay_manifest(path: str | Path, workers: int = 1, episodes: int | None = None,
                    progress: bool = True) -> EpisodeArrays:
    """The frames of a manifest's episodes, replayed in gym-pusht (``workers`` processes).

    Args:
        path: a manifest from :func:`pack_manifest`.
        workers: replay processes.
        episodes: only the first this many episodes.
        progress: show a progress bar.

    Returns:
        Frames, actions and episode indices as :func:`~world_gym.data.episodes.load_training_episodes`
        returns them for the source roots.
    """
    m = np.load(path)
    seeds, lengths, actions = m["seeds"], m["lengths"], m["actions"]
    if episodes is not None:
        seeds, lengths = seeds[:episodes], lengths[:episodes]
        actions = actions[:int(lengths.sum())]
    bounds = np.append(0, np.cumsum(lengths))
    jobs = [(int(s), actions[bounds[e]:bounds[e + 1]]) for e, s in enumerate(seeds)]
    bar = tqdm(total=len(jobs), desc="replay", unit="episode", disable=not progress)
    frames = []
    if workers > 1:
        with mp.get_context("spawn").Pool(workers) as pool:
            for f in pool.imap(_replay_episode, jobs, chunksize=4):
                frames.append(f)
                bar.update(1)
    else:
        for job in jobs:
            frames.append(_replay_episode(job))
            bar.update(1)
    bar.close()
    final = np.array([c for _, c in frames])
    off = np.flatnonzero(np.abs(final - m["final_coverage"][:len(seeds)]) > 1e-5)
    if len(off):
        e = int(off[0])
        raise RuntimeError(f"{len(off)} replayed episodes end elsewhere than recorded (episode {e}: coverage "
                           f"{final[e]:.6f}, recorded {m['final_coverage'][e]:.6f}); is this the gym-pusht "
                           "that recorded them?")
    return EpisodeArrays(np.concatenate([f for f, _ in frames]), np.asarray(actions, np.float32),
                         np.repeat(np.arange(len(seeds)), lengths).astype(np.int64))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``replay pack`` and ``replay check`` to the ``world-gym`` CLI."""
    p = subparsers.add_parser("replay", help="Push-T datasets as replay manifests (seeds + actions)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="replay_command", required=True)
    pack = sub.add_parser("pack", help="write a manifest of collector roots")
    pack.add_argument("--root", action="append", required=True, help="collector root (repeatable, in order)")
    pack.add_argument("--out", required=True, help="manifest (.npz)")
    check = sub.add_parser("check", help="replay a manifest's first episodes, compare with the stored frames")
    check.add_argument("--manifest", required=True)
    check.add_argument("--root", action="append", required=True,
                       help="the manifest's roots, in order (repeatable; the first alone for a few episodes)")
    check.add_argument("--episodes", type=int, default=5, help="first episodes to replay (0: all)")
    check.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.replay_command == "pack":
        out = pack_manifest(args.root, args.out)
        m = np.load(out)
        size = out.stat().st_size / 1e6
        print(f"{out}: {len(m['seeds'])} episodes, {len(m['actions'])} frames, {size:.2f} MB")
        return 0
    from world_gym.data.episodes import load_training_episodes

    replayed = replay_manifest(args.manifest, args.workers, args.episodes or None)
    stored = load_training_episodes(args.root, progress=False)
    n = replayed.num_episodes
    rows = np.flatnonzero(np.isin(stored.episode_index, np.unique(stored.episode_index)[:n]))
    if len(rows) != len(replayed):
        print(f"mismatch: {len(replayed)} replayed frames, {len(rows)} stored")
        return 1
    differ = 0
    for i in range(0, len(rows), 4096):  # in slices: the stored frames may be a memory map
        unequal = np.asarray(stored.frames[rows[i:i + 4096]]) != replayed.frames[i:i + 4096]
        differ += int(unequal.any(axis=(1, 2, 3)).sum())
    print(f"{n} episodes, {len(rows)} frames replayed; frames that differ from the stored ones: {differ}")
    return 0 if differ == 0 else 1
