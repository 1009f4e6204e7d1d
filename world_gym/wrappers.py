"""Wrappers that give ordinary Gymnasium envs the world-model env's step contract."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class ChunkedAction(gym.Wrapper[Any, np.ndarray, Any, np.ndarray]):
    """Step any env with an action chunk ``(chunk_size, action_dim)``, as a world-model env steps.

    The actions run one by one and stop at the first ``terminated`` or ``truncated``; the step
    returns the last observation, the summed reward, and ``info["frames"]`` (the observation of
    every executed action: the observation itself when it is an image array, else its
    ``"pixels"`` entry), ``info["rewards"]`` (per action) and ``info["is_success"]`` (from the
    inner info, else ``terminated``). So one policy runs unchanged in the learned simulator and in
    the real one (e.g. ``gym_pusht/PushT-v0``).

    >>> import gymnasium as gym
    >>> env = ChunkedAction(gym.make("Pendulum-v1"), chunk_size=4)
    >>> _ = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> info["rewards"].shape
    (4,)
    """

    def __init__(self, env: gym.Env, chunk_size: int) -> None:
        super().__init__(env)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        inner = env.action_space
        if not isinstance(inner, spaces.Box) or len(inner.shape) != 1:
            raise TypeError(f"ChunkedAction needs a 1-D Box action space, got {inner}")
        self.chunk_size = chunk_size
        if chunk_size > 1:
            self.action_space = spaces.Box(
                np.tile(inner.low, (chunk_size, 1)), np.tile(inner.high, (chunk_size, 1)), dtype=inner.dtype
            )

    def step(self, action: np.ndarray) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        expected = self.action_space.shape
        arr = np.asarray(action)
        if arr.shape != expected:
            raise ValueError(f"actions must have shape {expected}, got {arr.shape}")
        chunk = arr.reshape(self.chunk_size, -1)
        frames, rewards = [], []
        total = 0.0
        terminated = truncated = False
        obs: Any = None
        info: dict[str, Any] = {}
        for a in chunk:
            obs, reward, terminated, truncated, info = self.env.step(a.astype(self.env.action_space.dtype))
            frames.append(obs if isinstance(obs, np.ndarray) else obs["pixels"])
            rewards.append(float(reward))
            total += float(reward)
            if terminated or truncated:
                break
        info = dict(info)
        info["frames"] = np.stack(frames)
        info["rewards"] = np.asarray(rewards, np.float32)
        info["is_success"] = bool(info.get("is_success", terminated))
        return obs, total, terminated, truncated, info
