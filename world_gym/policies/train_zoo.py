"""``world-gym zoo``: train the Push-T policy zoo (policies of graded quality) from expert data.

The zoo is a folder with a manifest ``zoo.json`` (read by :func:`world_gym.policies.zoo.load_zoo`):

- ``random``: uniform targets (no artifact);
- ``bc_*``: :class:`~world_gym.policies.cnn_bc.CNNBCPolicy` checkpoints of one training run saved
  at several steps, plus a run on a fraction of the episodes (graded by training and data);
- ``act_*``: a small LeRobot ACT policy (frame + agent position), run through
  :class:`~world_gym.policies.lerobot_policy.LeRobotPolicy` (in the world model the agent position
  is estimated from the imagined frame);
- ``replay_*``: open-loop replays of the scripted expert (:class:`~world_gym.policies.pusht_expert.PushTExpert`)
  from the evaluation seeds, clean and with action noise (graded by noise; high success);
- ``pixel_expert_*``: the scripted expert closed-loop on the state read off each frame
  (:class:`~world_gym.policies.pusht_pixel_expert.PixelPushTExpert`), graded by its noise level: the
  image policies that succeed (no artifact).

Every stage skips what already exists, so an interrupted run resumes where it stopped::

    world-gym zoo --data data/pusht/train --out runs/zoo --steps 250,1000,2000,4000 --replay-seeds 0:50
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from world_gym.data.episodes import chunk_targets, load_episodes
from world_gym.policies.cnn_bc import CNNBCConfig, CNNBCNet
from world_gym.policies.replay import ActionReplayPolicy
from world_gym.policies.zoo import MANIFEST


def _shift(frames: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    # random-shift augmentation (DrQ): pad by replication, crop back at a random offset
    b, h, w, _ = frames.shape
    padded = torch.nn.functional.pad(frames.permute(0, 3, 1, 2).float(), (pad,) * 4, mode="replicate")
    dx, dy = torch.randint(0, 2 * pad + 1, (2,), generator=gen).tolist()
    return padded[:, :, dy : dy + h, dx : dx + w].permute(0, 2, 3, 1)


def train_cnn_bc(
    frames: np.ndarray,
    actions: np.ndarray,
    episode_index: np.ndarray,
    out_dirs: dict[int, Path],
    config: CNNBCConfig | None = None,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    augment_pad: int = 4,
) -> dict[int, float]:
    """Train one :class:`CNNBCNet` and save it at each step named in ``out_dirs``.

    Args:
        frames: ``(N, H, W, 3)`` uint8 frames.
        actions: ``(N, A)`` actions in env units.
        episode_index: ``(N,)`` episode of each row (rows sorted by episode then frame).
        out_dirs: ``{step: directory}``; training runs to the largest step.
        config: network shape (default: small, chunk of 8).
        batch_size, lr, seed, augment_pad: optimisation settings (cosine learning-rate decay).

    Returns:
        ``{step: mean L1 loss over the last 50 steps}``.
    """
    config = config or CNNBCConfig(channels=(32, 64, 64, 64), hidden=128, frame_size=tuple(frames.shape[1:3]))
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = CNNBCNet(config)
    targets = net.normalize(torch.from_numpy(chunk_targets(actions, episode_index, config.chunk_size)))
    images = torch.from_numpy(np.ascontiguousarray(frames))
    total = max(out_dirs)
    optim = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, total)
    losses: list[float] = []
    saved: dict[int, float] = {}
    net.train()
    for step in tqdm(range(1, total + 1), desc="cnn_bc", unit="step", mininterval=5):
        idx = torch.randint(0, len(images), (batch_size,), generator=gen)
        batch = _shift(images[idx], augment_pad, gen) if augment_pad else images[idx]
        loss = torch.nn.functional.l1_loss(net(batch), targets[idx])
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step in out_dirs:
            saved[step] = float(np.mean(losses[-50:]))
            net.config.metadata = {"steps": step, "rows": len(images), "episodes": int(len(np.unique(episode_index))),
                                   "l1_loss": round(saved[step], 5)}
            net.eval()
            net.save_pretrained(out_dirs[step])
            net.train()
    return saved


def train_lerobot_act(
    frames: np.ndarray,
    actions: np.ndarray,
    states: np.ndarray,
    episode_index: np.ndarray,
    out_dir: Path,
    steps: int = 800,
    batch_size: int = 16,
    lr: float = 3e-4,
    chunk_size: int = 8,
    seed: int = 0,
) -> float:
    """Train a small LeRobot ACT policy (image + agent position -> chunk) and save it LeRobot's way.

    The directory holds ``config.json``, ``model.safetensors`` and the pre/post-processors, so
    ``lerobot-eval --policy.path=<out_dir>`` and :meth:`LeRobotPolicy.from_pretrained` load it.
    ACT here is deliberately small (1-2 layer transformer of width 64; ResNet-18 trained from
    scratch, no downloaded weights) to train on a CPU in minutes.

    Returns:
        Mean L1 loss (normalized units) over the last 50 steps.
    """
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    h, w = frames.shape[1:3]
    config = ACTConfig(
        input_features={"observation.image": PolicyFeature(type=FeatureType.VISUAL, shape=(3, h, w)),
                        "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(2,))},
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(2,))},
        chunk_size=chunk_size, n_action_steps=chunk_size, dim_model=64, n_heads=2, dim_feedforward=128,
        n_encoder_layers=2, n_decoder_layers=1, use_vae=False, pretrained_backbone_weights=None, device="cpu",
    )
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    policy = ACTPolicy(config)
    sample = frames[np.random.default_rng(seed).choice(len(frames), min(2000, len(frames)), replace=False)] / 255.0
    stats = {
        "observation.image": {"mean": torch.tensor(sample.mean((0, 1, 2)), dtype=torch.float32).view(3, 1, 1),
                              "std": torch.tensor(sample.std((0, 1, 2)) + 1e-3, dtype=torch.float32).view(3, 1, 1)},
        "observation.state": {"mean": torch.tensor(states.mean(0)), "std": torch.tensor(states.std(0) + 1e-3)},
        "action": {"mean": torch.tensor(actions.mean(0)), "std": torch.tensor(actions.std(0) + 1e-3)},
    }
    pre, post = make_pre_post_processors(config, dataset_stats=stats)
    targets = torch.from_numpy(chunk_targets(actions, episode_index, chunk_size))
    images, state_t = torch.from_numpy(np.ascontiguousarray(frames)), torch.from_numpy(states.astype(np.float32))
    optim = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=1e-4)
    losses: list[float] = []
    policy.train()
    for _ in tqdm(range(steps), desc="lerobot act", unit="step", mininterval=5):
        idx = torch.randint(0, len(images), (batch_size,), generator=gen)
        batch = pre({"observation.image": _shift(images[idx], 4, gen).permute(0, 3, 1, 2) / 255.0,
                     "observation.state": state_t[idx], "action": targets[idx],
                     "action_is_pad": torch.zeros(batch_size, chunk_size, dtype=torch.bool)})
        loss, _ = policy.forward(batch)
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(float(loss.detach()))
    policy.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(out_dir)
    pre.save_pretrained(out_dir)
    post.save_pretrained(out_dir)
    return float(np.mean(losses[-50:]))


def record_expert_replays(seeds: Sequence[int], path: Path, max_steps: int = 300) -> dict[str, Any]:
    """Run the scripted expert in gym-pusht from each seed and save its actions (``seed_<n>`` arrays)."""
    from world_gym.envs.pusht.ground_truth import make_pusht_env
    from world_gym.policies.pusht_expert import PushTExpert

    env, expert = make_pusht_env(max_episode_steps=max_steps), PushTExpert()
    actions: dict[int, np.ndarray] = {}
    successes = 0
    for seed in tqdm(seeds, desc="expert replays", unit="ep"):
        obs, info = env.reset(seed=int(seed))
        expert.reset(seed=int(seed))
        episode = []
        terminated = truncated = False
        while not (terminated or truncated):
            action = expert.act(obs, info)
            episode.append(action)
            obs, _, terminated, truncated, info = env.step(action)
        successes += bool(info.get("is_success", False))
        actions[int(seed)] = np.stack(episode)
    ActionReplayPolicy(actions).save_npz(path)
    return {"episodes": len(seeds), "expert_success_rate": successes / max(1, len(seeds))}


def build_zoo(data: Path | None, out: Path, steps: Sequence[int], data_fraction: float, data_steps: int,
              replay_seeds: Sequence[int], replay_noise: Sequence[float], behaviors: Sequence[int],
              act_steps: int = 0, pixel_expert_noise: Sequence[float] = ()) -> Path:
    """Train/record whatever is missing in ``out`` and write its manifest; returns the manifest path."""
    out.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = [{"name": "random", "kind": "random", "options": {"chunk_size": 8},
                                      "description": "uniform random targets"}]
    if data is not None:
        columns = (("observation.state",) if act_steps else ()) + (("behavior",) if behaviors else ())
        eps = load_episodes(data, columns)
        keep = np.isin(eps.extras["behavior"].reshape(-1), list(behaviors)) if behaviors else np.ones(len(eps), bool)
        frames, actions, ep_idx = eps.frames[keep], eps.actions[keep], eps.episode_index[keep]
        full = {s: out / f"bc_steps{s}" for s in steps}
        todo = {s: d for s, d in full.items() if not (d / "model.safetensors").is_file()}
        if todo:
            train_cnn_bc(np.asarray(frames), actions, ep_idx, {s: full[s] for s in steps if s <= max(todo)} | todo)
        episodes = np.unique(ep_idx)
        for s in steps:
            entries.append({"name": f"bc_steps{s}", "kind": "cnn_bc", "path": f"bc_steps{s}",
                            "description": f"CNN BC, {s} steps, {len(episodes)} episodes"})
        if data_fraction < 1.0:
            few = episodes[: max(1, int(round(len(episodes) * data_fraction)))]
            sub = np.isin(ep_idx, few)
            d = out / f"bc_data{len(few)}"
            if not (d / "model.safetensors").is_file():
                train_cnn_bc(np.asarray(frames)[sub], actions[sub], ep_idx[sub], {data_steps: d}, seed=1)
            entries.append({"name": d.name, "kind": "cnn_bc", "path": d.name,
                            "description": f"CNN BC, {data_steps} steps, {len(few)} episodes"})
        if act_steps:
            d = out / f"act_steps{act_steps}"
            if not (d / "model.safetensors").is_file():
                states = np.asarray(eps.extras["observation.state"], np.float32).reshape(len(eps), -1)[keep]
                train_lerobot_act(np.asarray(frames), actions, states, ep_idx, d, steps=act_steps)
            entries.append({"name": d.name, "kind": "lerobot", "path": d.name, "options": {"chunk_size": 8},
                            "description": f"LeRobot ACT (small, CPU), {act_steps} steps, {len(episodes)} episodes"})
    if replay_seeds:
        path = out / "expert_replays.npz"
        if not path.is_file():
            stats = record_expert_replays(replay_seeds, path)
            (out / "expert_replays.json").write_text(json.dumps(stats, indent=2))
        for noise in replay_noise:
            entries.append({"name": f"replay_noise{noise:g}", "kind": "replay", "path": path.name,
                            "options": {"noise": noise, "chunk_size": 8},
                            "description": f"open-loop expert replay, action noise {noise:g} px"})
    for noise in pixel_expert_noise:
        entries.append({"name": f"pixel_expert_noise{noise:g}", "kind": "pixel_expert",
                        "options": {"noise": noise, "chunk_size": 8},
                        "description": f"scripted expert on the state read off each frame, noise {noise:g}"})
    manifest = out / MANIFEST
    manifest.write_text(json.dumps({"created": time.strftime("%Y-%m-%d %H:%M:%S"), "policies": entries}, indent=2))
    return manifest


def _seed_range(text: str) -> list[int]:
    if not text:
        return []
    lo, _, hi = text.partition(":")
    return list(range(int(lo), int(hi))) if hi else [int(s) for s in text.split("+")]


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    manifest = build_zoo(
        Path(args.data) if args.data else None, Path(args.out), [int(s) for s in args.steps.split(",") if s],
        args.data_fraction, args.data_steps, _seed_range(args.replay_seeds),
        [float(s) for s in args.replay_noise.split(",") if s], [] if args.behaviors == "all" else [int(b) for b in args.behaviors.split(",")], args.act_steps,
        [float(s) for s in args.pixel_expert_noise.split(",") if s],
    )
    print(json.dumps({"manifest": str(manifest), "policies": [e["name"] for e in json.loads(manifest.read_text())["policies"]]}))
    return 0
