"""``world-gym generate``: synthetic demonstrations, a policy rolled out in a world model, as a LeRobotDataset.

    world-gym generate IRASim-PushT-v0 --policy pixel_expert,chunk_size=8 --episodes 100 --out data/wm_demos
    world-gym generate IRASim-PushT-v0 --policy random,chunk_size=8 --episodes 20 --out data/wm_random --keep all

Any policy spec of ``world-gym evaluate`` works (:func:`world_gym.policies.zoo.parse_policy_spec`):
``random,chunk_size=8``, ``replay``, ``pixel_expert``, ``cnn_bc:DIR``, ``lerobot:DIR``, ``plan:...``.
Episodes run ``--num-envs`` at a time in the env's vector twin (one batched model call per chunk).
Episode ``i`` starts from seed ``S + i`` (``reset(seed=S + i, options={"episode": S + i})``, the
same start as in ``world-gym evaluate``). The dataset (row layout and columns:
:mod:`world_gym.data.lerobot_io`, :func:`~world_gym.data.lerobot_io.world_model_features`) stores
the imagined frames, the actions, the reward head's reward and success, and in
``meta/world_gym_source.json`` the env id, model, policy and settings that produced it.

``--episodes`` is the number of episodes wanted in ``--out``: re-running the same command after an
interruption (Ctrl-C saves what was finished; an episode in flight is dropped) continues where it
stopped. A ``--out`` made with other settings, or not by world-gym, is refused with the difference.
With ``--keep successes`` only episodes the reward head calls a success are stored, trying seeds
``S, S + 1, ...`` until there are enough or ``--max-attempts`` seeds were tried.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

KEEP_CHOICES = ("all", "successes")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("generate", help="roll a policy out in a world model and write a LeRobotDataset",
                              description=__doc__.split("\n\n", 1)[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("env_id", metavar="ENV_ID", help="registered world-model env id, e.g. IRASim-PushT-v0")
    p.add_argument("--policy", required=True,
                   help="policy spec as for 'world-gym evaluate': [name=]kind[:path][,key=value...], e.g. "
                        "random,chunk_size=8; replay; pixel_expert,noise=5; cnn_bc:DIR; lerobot:DIR")
    p.add_argument("--episodes", type=int, required=True, help="episodes wanted in --out (in total)")
    p.add_argument("--out", required=True, help="dataset root (a local LeRobotDataset; created or resumed)")
    p.add_argument("--seed", type=int, default=0, help="first start seed (episode i starts from seed + i)")
    p.add_argument("--keep", choices=KEEP_CHOICES, default="all",
                   help="all episodes with their success labels (default), or successes only")
    p.add_argument("--num-envs", type=int, default=8, help="episodes imagined at once (one batched call)")
    p.add_argument("--max-frames", type=int, default=None, help="episode limit in frames (default: the env's)")
    p.add_argument("--max-attempts", type=int, default=None,
                   help="with --keep successes: seeds to try at most (default: 20 x --episodes)")
    p.add_argument("--model", default=None, help="world-model directory, shipped name or hub id (default: the env's)")
    p.add_argument("--reward-model", default=None, help="reward head name (default: the env's)")
    p.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the model's)")
    p.add_argument("--sampler", default=None, help="sampler override (ddim, dpm_solver, ...)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--checkpoint-every", type=int, default=10, help="episodes between dataset checkpoints")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


@dataclass
class GenerationConfig:
    """What ``world-gym generate`` does; every field but ``episodes`` must match to resume a dataset.

    Attributes:
        env_id: registered world-model env id.
        policy: policy spec text (:func:`world_gym.policies.zoo.parse_policy_spec`).
        episodes: episodes wanted in the dataset, in total.
        out: dataset root.
        seed: first start seed.
        keep: ``"all"`` or ``"successes"``.
        num_envs: sub-envs of the vector env.
        max_attempts: with ``keep="successes"``, seeds tried at most (default ``20 * episodes``).
        env_kwargs: extra ``gym.make_vec`` arguments (``model``, ``device``, ``num_inference_steps``, ...).
        checkpoint_every: episodes between checkpoints.
        progress: show a tqdm bar.
    """

    env_id: str
    policy: str
    episodes: int
    out: str | Path
    seed: int = 0
    keep: str = "all"
    num_envs: int = 8
    max_attempts: int | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    checkpoint_every: int = 10
    progress: bool = True

    def settings(self, chunk_size: int) -> dict[str, Any]:
        """The fields a resumed dataset must share, JSON-ready."""
        kwargs = {k: v for k, v in self.env_kwargs.items() if k != "device"}
        # objects (a WorldModel, a FrameBank given from Python) are recorded by their type
        return json.loads(json.dumps({"env_id": self.env_id, "policy": self.policy, "seed": self.seed,
                                      "keep": self.keep, "chunk_size": chunk_size, "env_kwargs": kwargs},
                                     default=lambda value: f"<{type(value).__name__}>"))


def describe_env(env_id: str, parts: Any, model: Any = None) -> dict[str, Any]:
    """JSON-ready description of a world-model env for a dataset's source metadata.

    Args:
        env_id: the registered id.
        parts: the env's :class:`~world_gym.registration.EnvParts`.
        model: the ``model=`` argument the env was made with (None: the env's default model).

    Returns:
        ``env_id``, ``model`` (the name given, or the catalog's default), ``model_metadata`` (the
        model config's metadata without its training config), ``reward_head``, ``fps``,
        ``chunk_size``, ``max_episode_frames``.
    """
    from world_gym.env_catalog import CATALOG

    default = next((entry.model for entry in CATALOG if entry.env_id == env_id), None)
    config = parts.model.config
    return {"env_id": env_id, "model": str(model) if model is not None and not hasattr(model, "config") else default,
            "model_metadata": {k: v for k, v in config.metadata.items() if k != "train_config"},
            "reward_head": type(parts.reward_head).__name__, "fps": config.fps, "chunk_size": parts.chunk_size,
            "max_episode_frames": parts.max_episode_frames}


def _check_resumable(root: Path, settings: dict[str, Any]) -> None:
    from world_gym.data.integrity import check_dataset
    from world_gym.data.lerobot_io import SOURCE, recover

    if not root.exists():
        return
    if not (root / SOURCE).is_file():
        raise FileExistsError(f"{root} exists but was not written by 'world-gym generate' (no {SOURCE}); "
                              "choose a new --out")
    stored = json.loads((root / SOURCE).read_text()).get("settings", {})
    diff = {k: (stored.get(k), settings.get(k)) for k in sorted(set(stored) | set(settings))
            if stored.get(k) != settings.get(k)}
    if diff:
        shown = "; ".join(f"{k}: stored {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"{root} was generated with other settings ({shown}); re-run with the stored "
                         "settings to resume, or choose a new --out")
    recover(root)  # drop what an interrupted run wrote after its last checkpoint
    if root.exists():
        check_dataset(root)


def generate(config: GenerationConfig) -> dict[str, Any]:
    """Roll ``config.policy`` out in ``config.env_id`` and store the episodes in ``config.out``.

    Args:
        config: what to generate.

    Returns:
        A summary: ``out``, ``episodes`` (stored in total), ``added``, ``attempts``, ``successes``
        (among the attempts of this run), ``frames_added``, ``seconds``, ``interrupted``.

    Raises:
        ValueError: bad arguments, or ``out`` holds a dataset generated with other settings.
        FileExistsError: ``out`` exists and was not written by this command.
        world_gym.data.integrity.DatasetIntegrityError: ``out`` is truncated or corrupt.
    """
    import gymnasium as gym
    from tqdm import tqdm

    import world_gym  # noqa: F401  (registers the env ids)
    from world_gym import __version__
    from world_gym.data.lerobot_io import EpisodeWriter, build_episode, stored_seeds, world_model_features
    from world_gym.evaluation.rollouts import VectorEnvBackend, _as_chunk
    from world_gym.policies.zoo import parse_policy_spec

    if config.episodes < 1 or config.num_envs < 1 or config.checkpoint_every < 1:
        raise ValueError(f"episodes, num_envs and checkpoint_every must be >= 1, got {config.episodes}, "
                         f"{config.num_envs}, {config.checkpoint_every}")
    if config.keep not in KEEP_CHOICES:
        raise ValueError(f"keep must be one of {KEEP_CHOICES}, got {config.keep!r}")
    specs = parse_policy_spec(config.policy)
    if len(specs) != 1:
        raise ValueError(f"--policy must name one policy, {config.policy!r} names {len(specs)}")
    spec = specs[0]
    root = Path(config.out)
    settings = config.settings(spec.chunk_size)
    _check_resumable(root, settings)
    done = set(stored_seeds(root)) if root.exists() else set()
    start = time.perf_counter()
    if len(done) >= config.episodes:
        return {"out": str(root), "episodes": len(done), "added": 0, "attempts": 0, "successes": 0,
                "frames_added": 0, "seconds": 0.0, "interrupted": False}
    max_attempts = config.max_attempts or 20 * config.episodes
    if config.keep == "all":
        todo = [s for s in range(config.seed, config.seed + config.episodes) if s not in done]
    else:
        todo = [s for s in range(config.seed, config.seed + max_attempts) if s not in done]
    num_envs = min(config.num_envs, len(todo), config.episodes - len(done))
    env = gym.make_vec(config.env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                       chunk_size=spec.chunk_size, **config.env_kwargs)
    backend = VectorEnvBackend(env, spec.chunk_size)
    model = env.unwrapped.model
    frame_shape = (*model.config.frame_size, 3)
    action_dim = model.action_spec.dim
    source = {"generator": "world-gym generate", "world_gym_version": __version__, "settings": settings,
              **describe_env(config.env_id, env.unwrapped.parts, config.env_kwargs.get("model")),
              "policy": {"spec": config.policy, "name": spec.name, "fingerprint": spec.fingerprint}}
    task = env.unwrapped.parts.task or config.env_id
    policies = [spec.make() for _ in range(num_envs)]
    shape = backend.action_space.shape
    idle = ((backend.action_space.low + backend.action_space.high) / 2).astype(np.float32)
    pending = list(todo)
    slots: list[dict[str, Any] | None] = [None] * num_envs
    stats = {"attempts": 0, "successes": 0, "added": 0, "frames_added": 0}
    stored = len(done)
    interrupted = False

    def start_episodes(indices: list[int]) -> None:
        seeds = [pending.pop(0) for _ in indices]
        started = backend.reset(indices, seeds)
        for i, seed in zip(indices, seeds):
            obs, info = started[i]
            policies[i].reset(seed=seed)
            slots[i] = {"seed": seed, "obs": obs, "info": info, "frames": [obs], "actions": [], "rewards": []}

    writer = EpisodeWriter(root, checkpoint_every=config.checkpoint_every, repo_id=f"world-gym/{config.env_id}",
                           features=world_model_features(frame_shape, action_dim, model.action_spec.names or None),
                           fps=int(round(model.config.fps)), robot_type=config.env_id, task=task, source=source)
    bar = tqdm(total=config.episodes, initial=stored, desc=f"generating {config.env_id}", unit="episode",
               disable=not config.progress)
    try:
        with writer:
            start_episodes(list(range(min(num_envs, len(pending)))))
            while any(s is not None for s in slots):
                active = np.array([s is not None for s in slots])
                actions = np.broadcast_to(idle, (num_envs, *shape)).copy()
                for i in np.flatnonzero(active):
                    actions[i] = _as_chunk(policies[i].act(slots[i]["obs"], slots[i]["info"]), shape, spec.name)
                outcomes = backend.step(actions, active)
                finished = []
                for i, out in outcomes.items():
                    slot = slots[i]
                    n = out.num_frames
                    slot["frames"].extend(out.frames[:n])
                    slot["actions"].extend(actions[i].reshape(-1, action_dim)[:n])
                    slot["rewards"].extend(np.asarray(out.info["rewards"], np.float32).reshape(-1)[:n])
                    slot["obs"], slot["info"] = out.observation, out.info
                    if not out.done:
                        continue
                    finished.append(i)
                    slots[i] = None
                    stats["attempts"] += 1
                    stats["successes"] += int(out.success)
                    if (config.keep == "all" or out.success) and stored < config.episodes:
                        episode = build_episode(np.stack(slot["frames"]), np.stack(slot["actions"]),
                                                np.asarray(slot["rewards"]), out.success, slot["seed"],
                                                label=int(out.success))
                        writer.add_episode(episode)
                        stored += 1
                        stats["added"] += 1
                        stats["frames_added"] += len(slot["actions"]) + 1
                        bar.update(1)
                    bar.set_postfix(tried=stats["attempts"], successes=stats["successes"])
                wanted = config.episodes - stored - sum(s is not None for s in slots)
                if finished and pending and wanted > 0:
                    start_episodes(finished[: min(len(pending), wanted)])
    except KeyboardInterrupt:
        interrupted = True
        logger.warning("interrupted: %d episodes stored in %s; re-run the same command to resume", stored, root)
    finally:
        bar.close()
        env.close()
    if not interrupted and stored < config.episodes:
        logger.warning("only %d of %d episodes stored: %d seeds tried without enough successes "
                       "(raise --max-attempts)", stored, config.episodes, max_attempts)
    return {"out": str(root), "episodes": stored, **stats, "seconds": round(time.perf_counter() - start, 2),
            "interrupted": interrupted}


def run(args: argparse.Namespace) -> int:
    env_kwargs = {k: v for k, v in {"model": args.model, "reward_model": args.reward_model,
                                    "num_inference_steps": args.steps, "sampler": args.sampler,
                                    "device": args.device, "max_episode_frames": args.max_frames}.items()
                  if v is not None}
    config = GenerationConfig(env_id=args.env_id, policy=args.policy, episodes=args.episodes, out=args.out,
                              seed=args.seed, keep=args.keep, num_envs=args.num_envs, max_attempts=args.max_attempts,
                              env_kwargs=env_kwargs, checkpoint_every=args.checkpoint_every, progress=not args.quiet)
    summary = generate(config)
    print(json.dumps(summary))
    return 130 if summary["interrupted"] else 0
