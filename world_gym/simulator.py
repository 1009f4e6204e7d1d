"""The batched core under both world-model envs: N imagined episodes advanced in one model call.

:class:`ImaginedEpisodes` keeps, per env, only what the next clip needs (the last ``history``
latents and their actions, the last frame, the goal, a noise generator, the frame counter), so
memory stays flat however long an episode runs. :class:`~world_gym.env.WorldModelEnv` is a view of
one episode, :class:`~world_gym.vector_env.WorldModelVectorEnv` of N.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from world_gym.initial_states import InitialStateSource
from world_gym.registration import EnvParts
from world_gym.reward_models import RewardContext
from world_gym.start_encodings import frame_digest, usable_start_encodings

RESET_OPTIONS = ("initial_frame", "episode", "goal_image", "task")
START_CACHE_SIZE = 256  # start-frame encodings an env keeps (a Push-T pose token is 24 bytes, a 4x24x24 latent 9 KiB)


@dataclass
class ChunkResult:
    """Outcome of one chunk for ``k`` envs.

    ``frames`` and ``frame_rewards`` hold the whole generated chunk; only the first ``num_frames[i]``
    count: an episode ends at its first successful frame or at the frame limit, as a real env
    stepped action by action would.
    """

    frames: np.ndarray
    num_frames: np.ndarray
    frame_rewards: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    head_info: dict[str, np.ndarray]
    timing: dict[str, float] = field(default_factory=dict)


@dataclass
class StartState:
    """A resolved reset: start frame, goal, task and what the env reports about it."""

    frame: np.ndarray
    goal_image: np.ndarray | None
    task: str | None
    info: dict[str, Any]


def check_frame(frame: Any, frame_size: tuple[int, int], what: str) -> np.ndarray:
    """Validate one uint8 ``(H, W, 3)`` frame of the model's size."""
    arr = np.asarray(frame)
    expected = (*frame_size, 3)
    if arr.dtype != np.uint8 or arr.shape != expected:
        raise ValueError(f"{what} must be a uint8 array of shape {expected}, got {arr.dtype} {arr.shape}")
    return arr


def check_episode(episode: Any) -> int:
    """``options["episode"]`` as an int: a Python or NumPy integer, not a bool, float or string."""
    if isinstance(episode, (bool, np.bool_)) or not isinstance(episode, (int, np.integer)):
        raise TypeError(f"options['episode'] must be an integer (int or numpy integer), "
                        f"got {episode!r} ({type(episode).__name__})")
    return int(episode)


def resolve_start(
    options: dict[str, Any] | None,
    source: InitialStateSource | None,
    rng: np.random.Generator,
    frame_size: tuple[int, int],
    default_task: str | None,
) -> StartState:
    """Turn ``reset`` options into a start state (see the env docstring for the options)."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(RESET_OPTIONS))
    if unknown:
        raise ValueError(f"unknown reset options {unknown}; known: {list(RESET_OPTIONS)}")
    if "initial_frame" in options and "episode" in options:
        raise ValueError("give either options['initial_frame'] or options['episode'], not both")
    info: dict[str, Any] = {}
    if "initial_frame" in options:
        frame = check_frame(options["initial_frame"], frame_size, "options['initial_frame']")
        info["episode"] = -1
    else:
        if source is None:
            raise ValueError("this env has no initial-state source: pass reset(options={'initial_frame': frame})")
        if "episode" in options:
            episode = check_episode(options["episode"])
            state = source.get(episode)
        else:
            episode, state = source.sample(rng)
        frame = check_frame(state.frame, frame_size, f"initial state {episode}")
        info.update({k: v for k, v in state.info.items() if k != "goal_image"})
        info["episode"] = episode
        options.setdefault("goal_image", state.info.get("goal_image"))
    goal = options.get("goal_image")
    if goal is not None:
        goal = check_frame(goal, frame_size, "options['goal_image']")
    return StartState(frame=frame, goal_image=goal, task=options.get("task", default_task), info=info)


class EncodingCache:
    """A bounded least-recently-used map from a frame's bytes to its encoding.

    Encoding a start frame can be the costliest part of ``reset`` (a pose codec refines the pose it
    reads by fitting steps through its decoder or renderer, 30-300 ms on one CPU thread), and episodes
    start again and again from the same few frames. Encodings are deterministic, so a frame seen
    before gets the very tensor it got then; only frames not in the cache are encoded, in one batch.
    Pinned encodings (:meth:`pin`: precomputed ones, :mod:`world_gym.start_encodings`) are never evicted.

    Args:
        encode: uint8 frames ``(N, H, W, 3)`` -> latents ``(N, ...)``.
        max_size: frames kept (the least recently used go first); 0 keeps none.

    >>> calls = []
    >>> cache = EncodingCache(lambda f: calls.append(len(f)) or torch.as_tensor(f[:, 0, 0, :1], dtype=torch.float32), 2)
    >>> frames = np.arange(3, dtype=np.uint8)[:, None, None, None].repeat(3, -1)
    >>> cache(frames).flatten().tolist(), cache(frames[:1]).flatten().tolist(), calls, len(cache)
    ([0.0, 1.0, 2.0], [0.0], [3, 1], 2)
    """

    def __init__(self, encode: Callable[[np.ndarray], torch.Tensor], max_size: int = START_CACHE_SIZE) -> None:
        if max_size < 0:
            raise ValueError(f"max_size must be >= 0, got {max_size}")
        self.encode = encode
        self.max_size = max_size
        self._store: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self._pinned: dict[bytes, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._store) + len(self._pinned)

    def clear(self) -> None:
        """Forget every encoding, pinned ones too (after the model's weights change)."""
        self._store.clear()
        self._pinned.clear()

    def pin(self, entries: dict[bytes, torch.Tensor]) -> None:
        """Add encodings keyed by :meth:`key` that stay, whatever is evicted (they must be exactly
        what ``encode`` gives for their frames)."""
        self._pinned.update(entries)

    @staticmethod
    def key(frame: np.ndarray) -> bytes:
        """The cache key of one frame: a digest of its shape, dtype and bytes
        (:func:`~world_gym.start_encodings.frame_digest`)."""
        return frame_digest(frame)

    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        """Latents of ``frames`` ``(N, H, W, 3)``: cached ones as they were, the others encoded now."""
        if self.max_size == 0:
            return self.encode(frames)
        keys = [self.key(frame) for frame in frames]
        found = {k: self._pinned[k] if k in self._pinned else self._store[k]
                 for k in keys if k in self._pinned or k in self._store}
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing:
            first = {k: keys.index(k) for k in missing}
            for k, latent in zip(missing, self.encode(frames[[first[k] for k in missing]])):
                found[k] = self._store[k] = latent.clone()
        for k in keys:
            if k in self._store:
                self._store.move_to_end(k)
        while len(self._store) > self.max_size:
            self._store.popitem(last=False)
        return torch.stack([found[k] for k in keys])


class ImaginedEpisodes:
    """State and stepping of ``num_envs`` episodes inside one world model.

    Start frames are encoded through an :class:`EncodingCache` of ``start_cache_size`` frames
    (0: none), so resetting from a frame seen before costs no encoding; the model's precomputed
    start encodings (:mod:`world_gym.start_encodings`) are pinned in it when its codec still gives them.
    """

    def __init__(self, parts: EnvParts, num_envs: int, start_cache_size: int = START_CACHE_SIZE) -> None:
        self.parts = parts
        self.model = model = parts.model
        self.num_envs = num_envs
        cfg = model.config
        c, (hl, wl) = model.codec.latent_channels, model.backbone.config.latent_size
        self.frame_size: tuple[int, int] = tuple(cfg.frame_size)  # type: ignore[assignment]
        self.context = torch.zeros(num_envs, model.history, c, hl, wl, device=model.device, dtype=model.dtype)
        self.context_actions = torch.zeros(num_envs, model.history, cfg.action.dim, device=model.device, dtype=model.dtype)
        self.context_mask = torch.zeros(num_envs, model.history, dtype=torch.bool, device=model.device)
        self.last_frames = np.zeros((num_envs, *self.frame_size, 3), np.uint8)
        self.goal_images = np.zeros((num_envs, *self.frame_size, 3), np.uint8)
        self.has_goal = np.zeros(num_envs, bool)
        self.tasks: list[str | None] = [parts.task] * num_envs
        self.elapsed = np.zeros(num_envs, np.int64)
        self.generators = [torch.Generator().manual_seed(i) for i in range(num_envs)]
        self.start_encodings = EncodingCache(model.encode, start_cache_size)
        if start_cache_size > 0:
            self.start_encodings.pin(usable_start_encodings(model))

    def reset(self, indices: np.ndarray, starts: list[StartState], noise_seeds: list[int]) -> None:
        """Start episodes ``indices`` from ``starts`` (one batched encode; none is a no-op)."""
        if len(starts) == 0:
            return
        frames = np.stack([s.frame for s in starts])
        latents = self.start_encodings(frames)
        idx = torch.as_tensor(indices, device=self.model.device)
        self.context[idx] = latents[:, None].expand(-1, self.model.history, -1, -1, -1)
        self.context_actions[idx] = 0
        self.context_mask[idx] = False
        for j, i in enumerate(indices):
            self.last_frames[i] = starts[j].frame
            self.has_goal[i] = starts[j].goal_image is not None
            if starts[j].goal_image is not None:
                self.goal_images[i] = starts[j].goal_image
            self.tasks[i] = starts[j].task
            self.elapsed[i] = 0
            self.generators[i].manual_seed(int(noise_seeds[j]))

    def step(self, indices: np.ndarray, actions: np.ndarray) -> ChunkResult:
        """Advance episodes ``indices`` by one chunk of validated env-unit actions ``(k, L, A)``."""
        model, parts = self.model, self.parts
        idx = torch.as_tensor(indices, device=model.device)
        k, length = actions.shape[:2]
        t0 = time.perf_counter()
        acts = model.normalize_actions(actions)
        latents = model.rollout_latents(
            self.context[idx], self.context_actions[idx], self.context_mask[idx], acts,
            [self.generators[i] for i in indices], parts.num_inference_steps, parts.sampler,
        )
        t1 = time.perf_counter()
        frames = model.decode(latents)
        t2 = time.perf_counter()
        self.context[idx], self.context_actions[idx], self.context_mask[idx] = model.advance_context(
            self.context[idx], self.context_actions[idx], self.context_mask[idx], latents, acts
        )

        goals = self.goal_images[indices] if self.has_goal[indices].all() else None
        context = RewardContext(
            previous_frames=self.last_frames[indices], goal_images=goals,
            task=[self.tasks[i] for i in indices], encode=model.encode, latents=latents, codec=model.codec,
        )
        scored = parts.reward_head(frames, context)
        t3 = time.perf_counter()

        success = np.asarray(scored.success, bool)
        num = np.where(success.any(axis=1), success.argmax(axis=1) + 1, length)
        if parts.max_episode_frames is not None:
            num = np.minimum(num, np.maximum(parts.max_episode_frames - self.elapsed[indices], 1))
        rows = np.arange(k)
        counted = np.arange(length)[None] < num[:, None]
        frame_rewards = np.where(counted, np.asarray(scored.reward, np.float32), 0.0).astype(np.float32)
        terminated = (success & counted).any(axis=1)
        self.elapsed[indices] += num
        truncated = ~terminated & (
            self.elapsed[indices] >= parts.max_episode_frames if parts.max_episode_frames is not None else False
        )
        self.last_frames[indices] = frames[rows, num - 1]
        return ChunkResult(
            frames=frames,
            num_frames=num,
            frame_rewards=frame_rewards,
            reward=frame_rewards.sum(axis=1),
            terminated=terminated,
            truncated=np.asarray(truncated, bool),
            head_info=scored.info,
            timing={"model_s": t1 - t0, "decode_s": t2 - t1, "reward_s": t3 - t2},
        )
