"""The batched core under both world-model envs: N imagined episodes advanced in one model call.

:class:`ImaginedEpisodes` keeps, per env, only what the next clip needs (the last ``history``
latents and their actions, the last frame, the goal, a noise generator, the frame counter), so
memory stays flat however long an episode runs. :class:`~world_gym.env.WorldModelEnv` is a view of
one episode, :class:`~world_gym.vector_env.WorldModelVectorEnv` of N.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from world_gym.initial_states import InitialStateSource
from world_gym.registration import EnvParts
from world_gym.reward_models import RewardContext

RESET_OPTIONS = ("initial_frame", "episode", "goal_image", "task")


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


class ImaginedEpisodes:
    """State and stepping of ``num_envs`` episodes inside one world model."""

    def __init__(self, parts: EnvParts, num_envs: int) -> None:
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

    def reset(self, indices: np.ndarray, starts: list[StartState], noise_seeds: list[int]) -> None:
        """Start episodes ``indices`` from ``starts`` (one batched encode; none is a no-op)."""
        if len(starts) == 0:
            return
        frames = np.stack([s.frame for s in starts])
        latents = self.model.encode(frames)
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
            task=[self.tasks[i] for i in indices], encode=model.encode,
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
