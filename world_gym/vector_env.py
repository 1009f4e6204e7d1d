"""WorldModelVectorEnv: N world-model envs advanced in one batched model call on one device."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from world_gym.registration import build_env_parts
from world_gym.simulator import ImaginedEpisodes, resolve_start
from world_gym.validation import check_count


class WorldModelVectorEnv(VectorEnv):
    """``num_envs`` copies of :class:`~world_gym.env.WorldModelEnv` sharing one model and one call.

    Made by ``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")``. No
    subprocesses: every sub-env's chunk goes through the model in one batch, which is what a GPU
    wants (a CUDA model inside forked workers breaks).

    Autoreset is ``NEXT_STEP`` (Gymnasium's default): the step after a sub-env ends resets it, its
    action is ignored and it reports reward 0. ``reset(options={"reset_mask": mask})`` resets only
    the masked sub-envs; an all-False mask resets none and returns the current observations and an
    empty info. A non-finite or out-of-bounds action names the sub-env it came from. ``step`` and
    ``reset`` after ``close`` raise ``RuntimeError``. Per-env reset options may be batched: ``initial_frame`` ``(N, H, W, 3)``,
    ``goal_image`` ``(N, H, W, 3)``, ``episode`` ``(N,)``, ``task`` a list of N strings; only the
    entries of reset sub-envs are read.

    Infos follow Gymnasium's vector convention (``info[key]`` batched, ``info["_" + key]`` mask).
    ``info["frames"]`` is ``(N, chunk_size, H, W, 3)``; only the first ``info["num_frames"][i]``
    frames of sub-env ``i`` count (the chunk is cut at success or at the frame limit).

    With ``report_timing=True``, ``info["timing"]`` holds the seconds of the batched call; the last
    one is always in ``last_timing``.

    Args:
        num_envs: number of sub-envs.
        max_episode_steps: set by ``gym.make_vec`` from the spec, in env steps (chunks); converted
            to ``max_episode_frames`` when that is not given.
        **kwargs: as for :class:`~world_gym.env.WorldModelEnv`.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        render_mode: str | None = None,
        max_episode_steps: int | None = None,
        **kwargs: Any,
    ) -> None:
        check_count("num_envs", num_envs)
        check_count("max_episode_steps", max_episode_steps)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.parts = build_env_parts(**kwargs)
        if max_episode_steps is not None and kwargs.get("max_episode_frames") is None:
            self.parts.max_episode_frames = int(max_episode_steps) * self.parts.chunk_size
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.model = self.parts.model
        self.chunk_size = self.parts.chunk_size
        self.metadata = {**self.metadata, "render_fps": self.model.config.fps}
        self.single_action_space = self.model.action_spec.space(self.chunk_size)
        self.single_observation_space = spaces.Box(0, 255, (*self.model.config.frame_size, 3), np.uint8)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._episodes = ImaginedEpisodes(self.parts, num_envs)
        self._rngs: list[np.random.Generator] = [np.random.default_rng() for _ in range(num_envs)]
        self._autoreset = np.zeros(num_envs, bool)
        self._started = np.zeros(num_envs, bool)
        self.last_timing: dict[str, float] = {}

    def _seeds(self, seed: int | Sequence[int | None] | None) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} envs")
        return seeds

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if self.closed:
            raise RuntimeError("reset() called after close(); make a new env")
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is None:
            mask = np.ones(self.num_envs, bool)
        elif not (isinstance(mask, np.ndarray) and mask.dtype == np.bool_ and mask.shape == (self.num_envs,)):
            raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},)")
        seeds = self._seeds(seed)
        infos: dict[str, Any] = {}
        indices = np.flatnonzero(mask)
        for i in indices:
            if seeds[i] is not None or not self._started[i]:
                self._rngs[i] = np.random.default_rng(seeds[i])
        starts = [resolve_start(self._options_for(options, i), self.parts.initial_states, self._rngs[i],
                                self._episodes.frame_size, self.parts.task) for i in indices]
        noise_seeds = [int(self._rngs[i].integers(2**63 - 1)) for i in indices]
        self._episodes.reset(indices, starts, noise_seeds)
        for i, start in zip(indices, starts):
            infos = self._add_info(infos, {**start.info, "is_success": False}, int(i))
        self._autoreset[indices] = False
        self._started[indices] = True
        return self._episodes.last_frames.copy(), infos

    def _options_for(self, options: dict[str, Any], i: int) -> dict[str, Any]:
        per_env: dict[str, Any] = {}
        for key, value in options.items():
            if key == "task":
                per_env[key] = value if isinstance(value, str) else value[i]
            elif key == "episode":
                per_env[key] = value if np.ndim(value) == 0 else value[i]
            elif key in ("initial_frame", "goal_image"):
                arr = np.asarray(value)
                per_env[key] = arr[i] if arr.ndim == 4 else arr
            else:
                per_env[key] = value
        return per_env

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self.closed:
            raise RuntimeError("step() called after close(); make a new env")
        if not self._started.all():
            raise RuntimeError("call reset() before step()")
        batch = self.model.action_spec.validate(actions, self.chunk_size, batch=self.num_envs)
        rewards = np.zeros(self.num_envs, np.float32)
        terminated = np.zeros(self.num_envs, bool)
        truncated = np.zeros(self.num_envs, bool)
        infos: dict[str, Any] = {}

        resetting = np.flatnonzero(self._autoreset)
        if len(resetting):
            _, reset_infos = self.reset(options={"reset_mask": self._autoreset.copy()})
            infos.update(reset_infos)
        stepping = np.flatnonzero(~np.isin(np.arange(self.num_envs), resetting))
        if len(stepping):
            result = self._episodes.step(stepping, batch[stepping])
            rewards[stepping] = result.reward
            terminated[stepping] = result.terminated
            truncated[stepping] = result.truncated
            for j, i in enumerate(stepping):
                env_info: dict[str, Any] = {
                    "frames": result.frames[j],
                    "num_frames": int(result.num_frames[j]),
                    "rewards": result.frame_rewards[j],
                    "is_success": bool(result.terminated[j]),
                    "episode_frames": int(self._episodes.elapsed[i]),
                }
                env_info.update({k: np.asarray(v)[j] for k, v in result.head_info.items()})
                infos = self._add_info(infos, env_info, int(i))
            self.last_timing = result.timing
            if self.parts.report_timing:
                infos["timing"] = result.timing
        self._autoreset = terminated | truncated
        return self._episodes.last_frames.copy(), rewards, terminated, truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        """Close the reward head's connections, if it has any (``close`` then marks the env closed)."""
        self.parts.reward_head.close()

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode == "rgb_array":
            return tuple(self._episodes.last_frames.copy())
        return None
