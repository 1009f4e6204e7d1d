"""WorldModelEnv: a Gymnasium env whose dynamics are an action-conditioned video world model."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from world_gym.registration import build_env_parts
from world_gym.simulator import ImaginedEpisodes, resolve_start


class WorldModelEnv(gym.Env[np.ndarray, np.ndarray]):
    """## Description

    A learned simulator: ``step`` takes an action chunk, the world model imagines the frames the
    robot would have seen (one batched diffusion pass per ``history``-limited clip, chained in latent
    space) and a reward head scores them.

    ## Action Space

    ``Box(low, high, (chunk_size, action_dim), float32)`` in the units of the model's action spec
    (Push-T: absolute targets in ``[0, 512]^2``); with ``chunk_size=1`` the shape is
    ``(action_dim,)``. Any real numeric dtype (float or integer) is accepted and cast to float32;
    bool, complex, object and string arrays, the wrong shape, non-finite or out-of-bounds values
    raise ``ValueError``.

    ## Observation Space

    ``Box(0, 255, (H, W, 3), uint8)``: the last imagined frame of the chunk.

    ## Rewards

    The sum of the reward head's per-frame rewards over the frames of the chunk that count; all of
    them are in ``info["rewards"]``.

    ## Success

    ``terminated`` is True at the first frame the reward head calls a success; the chunk is cut
    there (the frames after it are dropped, as a real env stepped action by action would stop).
    ``info["is_success"]`` carries the flag.

    ## Starting State

    ``reset(seed=..., options=...)`` with options ``initial_frame`` (``(H, W, 3)`` uint8),
    ``episode`` (index into the family's initial-state source), ``goal_image`` and ``task``;
    without options a start state is drawn from the initial-state source with ``self.np_random``.
    The same seed and options give the same frames on CPU. The env keeps the encodings of the last
    256 start frames it reset from (:class:`~world_gym.simulator.EncodingCache`), so a reset from a
    start frame seen before skips the codec (a Push-T pose codec's reading takes 30-300 ms on one
    CPU thread) and starts from the very latents it started from then. A model directory may ship the
    encodings of its env's start frames (``start_encodings.safetensors``,
    :mod:`world_gym.start_encodings`; the shipped Push-T pose models do for the 64 shipped starts), so
    even the first reset from one of them encodes nothing.

    ## Episode End

    Termination on success; truncation after ``max_episode_frames`` frames (primitive actions, so
    the limit is the same whatever the chunk size). Stepping an ended episode (terminated or
    truncated) without ``reset``, or stepping or resetting after ``close``, raises ``RuntimeError``.

    ## Arguments

    - ``family``: registered env family (set by ``gym.make``).
    - ``model``: a :class:`~world_gym.world_model.WorldModel`, or a shipped model's name
      (``"pusht-pose-state"``, ``"tiny-pusht"``), a model directory or a Hub id, as diffusers'
      ``from_pretrained`` takes them, instead of the family's default (``model_name=`` is a
      deprecated alias).
    - ``chunk_size``: actions per step (default: the family's or the model's), from 1 to
      ``max_episode_frames``.
    - ``reward_model``, ``reward_model_kwargs``: reward head name or instance, and its arguments.
    - ``initial_states``, ``max_episode_frames``, ``task``: override the family's.
    - ``device``, ``dtype``: where the model runs (default: CUDA when available) and the
      backbone's precision; ``codec_dtype``: the codec's (default float32; ``torch.bfloat16``
      decodes about 3x faster on CPUs with AVX512-BF16); ``decoder``: ``"render"``, ``"fast"`` or
      ``"vae"``, which of the model's decoders turns latents into frames (default: a pose codec's
      sprite renderer if it has one, else its fast decoder if it has one).
    - ``num_inference_steps``, ``sampler``: sampling overrides (e.g. ``"ddim"``, 10 steps); steps
      must be ``>= 1`` and the sampler one that can sample the model, checked at ``gym.make``
      (the error lists the samplers the model supports).
    - ``frames_per_pass``, ``clip_padding``: override the model's rollout passes
      (:class:`~world_gym.world_model.WorldModelConfig`): frames kept from each diffusion pass, and
      ``"repeat_last"``, ``"zeros"`` or ``"none"`` for how a pass is padded to a whole clip.
    - ``compile``: ``True`` (or a dict of ``torch.compile`` arguments) compiles the backbone's per-frame
      work (:meth:`~world_gym.world_model.WorldModel.compile`): ``PoseState-PushT-v0`` runs at 0.81x
      gym-pusht's frame rate in one env on one CPU thread instead of 0.55x, after about a minute of
      compiling in its first step.
    - ``report_timing``: add ``info["timing"]`` (off by default: wall times differ between runs,
      and Gymnasium's env checker requires identical infos for identical seeds). The last step's
      timing is always in ``env.unwrapped.last_timing``.
    - ``render_mode``: ``"rgb_array"`` or None.
    - other keyword arguments go to the family's model builder (e.g. ``checkpoint=``).

    ## Info

    ``frames`` ``(n, H, W, 3)``, ``rewards`` ``(n,)``, ``is_success``, the reward head's fields
    (per frame), ``episode_frames``, and with ``report_timing=True`` ``timing`` (seconds in the
    model, the decoder and the reward head).

    ## Version History

    - v0: initial release.

    >>> import gymnasium as gym, world_gym
    >>> env = gym.make("IRASim-PushT-v0", chunk_size=4, num_inference_steps=2)
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> info["frames"].shape
    (4, 96, 96, 3)
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        self.parts = build_env_parts(**kwargs)
        self.model = self.parts.model
        self.chunk_size = self.parts.chunk_size
        self.reward_head = self.parts.reward_head
        self.initial_states = self.parts.initial_states
        self.metadata = {**self.metadata, "render_fps": self.model.config.fps}
        self.action_space = self.model.action_spec.space(self.chunk_size)
        self.observation_space = spaces.Box(0, 255, (*self.model.config.frame_size, 3), np.uint8)
        self._episodes = ImaginedEpisodes(self.parts, 1)
        self._needs_reset = True
        self._episode_over = False
        self._closed = False
        self.last_timing: dict[str, float] = {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        if self._closed:
            raise RuntimeError("reset() called after close(); make a new env")
        super().reset(seed=seed)
        start = resolve_start(
            options, self.initial_states, self.np_random, self._episodes.frame_size, self.parts.task
        )
        noise_seed = int(self.np_random.integers(2**63 - 1))
        self._episodes.reset(np.array([0]), [start], [noise_seed])
        self._needs_reset = self._episode_over = False
        return start.frame.copy(), {**start.info, "is_success": False}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._closed:
            raise RuntimeError("step() called after close(); make a new env")
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        if self._episode_over:
            raise RuntimeError("the episode has ended (terminated or truncated); call reset() before step()")
        actions = self.model.action_spec.validate(action, self.chunk_size)
        result = self._episodes.step(np.array([0]), actions)
        n = int(result.num_frames[0])
        terminated, truncated = bool(result.terminated[0]), bool(result.truncated[0])
        self._episode_over = terminated or truncated
        frames = result.frames[0, :n]
        info: dict[str, Any] = {
            "frames": frames,
            "rewards": result.frame_rewards[0, :n],
            "is_success": terminated,
            "episode_frames": int(self._episodes.elapsed[0]),
        }
        self.last_timing = result.timing
        if self.parts.report_timing:
            info["timing"] = result.timing
        for key, value in result.head_info.items():
            value = np.asarray(value)[0]
            info[key] = value[:n] if value.ndim >= 1 and value.shape[0] == result.frames.shape[1] else value
        return frames[-1].copy(), float(result.reward[0]), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array":
            return self._episodes.last_frames[0].copy()
        return None

    def close(self) -> None:
        """End the env (and the reward head's connections, if it has any): later ``step`` and
        ``reset`` calls raise ``RuntimeError``."""
        self._closed = True
        self.reward_head.close()
        super().close()
