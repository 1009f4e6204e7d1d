"""Adapter: a LeRobot ``PreTrainedPolicy`` (with its pre/post-processors) as a world-gym policy.

LeRobot policies take batched tensors under LeRobot keys (``observation.image`` float CHW in
[0, 1], ``observation.state``) after a *preprocessor* (normalization, device) and return actions
through a *postprocessor* (unnormalization). This adapter builds that batch from one env frame,
exactly as ``lerobot-eval`` does (:func:`lerobot.envs.utils.preprocess_observation`), and returns
numpy actions.

Two modes:

- ``chunk_size=None`` (per step): ``act`` returns one action ``(action_dim,)`` from
  ``select_action``, which keeps the policy's own queues (observation history, action queue) as in
  ``lerobot-eval``. One adapter per env: use :meth:`LeRobotPolicy.clone` for more.
- ``chunk_size=k``: ``act`` returns ``(k, action_dim)``, the next ``k`` actions the policy would
  take from this observation (queues cleared first, then ``select_action`` ``k`` times). The model
  is queried once per chunk, which is what a chunked world-model step wants; policies with
  ``n_obs_steps > 1`` then see the current frame repeated as their history. Stateless between
  calls, so adapters may share one model.

``agent_pos``: where the policy wants ``observation.state``, it comes from ``info["pos_agent"]``
(gym-pusht) when present, else from the frame's pixels
(:func:`world_gym.envs.pusht.pixels.estimate_agent_pos`), or from ``state_fn`` if given.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

StateFn = Callable[[np.ndarray, dict[str, Any]], np.ndarray]


def pusht_agent_pos(observation: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """``info["pos_agent"]`` when the env provides it (gym-pusht), else the pixel estimate."""
    if info and "pos_agent" in info:
        return np.asarray(info["pos_agent"], np.float32)
    from world_gym.envs.pusht.pixels import estimate_agent_pos

    return estimate_agent_pos(observation)


class LeRobotPolicy:
    """A LeRobot policy behind :class:`world_gym.policies.base.Policy`.

    Args:
        policy: a ``lerobot.policies.pretrained.PreTrainedPolicy``.
        preprocessor: its input pipeline (``make_pre_post_processors``), or None for identity.
        postprocessor: its output pipeline, or None for identity.
        chunk_size: None for one action per ``act``; ``k`` for chunks of ``k`` actions.
        state_fn: ``(frame, info) -> (state_dim,)`` for policies with a state input (default:
            :func:`pusht_agent_pos`).
        task: instruction text passed as ``task`` (language-conditioned policies).

    >>> # policy = LeRobotPolicy.from_pretrained("outputs/train/act_pusht/checkpoints/last/pretrained_model")
    """

    def __init__(
        self,
        policy: Any,
        preprocessor: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        postprocessor: Callable[[torch.Tensor], torch.Tensor] | None = None,
        chunk_size: int | None = None,
        state_fn: StateFn | None = None,
        task: str = "",
    ) -> None:
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
        self.policy = policy.eval()
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.chunk_size = chunk_size
        self.state_fn = state_fn or pusht_agent_pos
        self.task = task
        self.device = next(policy.parameters()).device
        self.wants_state = "observation.state" in getattr(policy.config, "input_features", {})

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", **kwargs: Any) -> "LeRobotPolicy":
        """Load a saved LeRobot policy directory (``config.json``, weights, processor files).

        Args:
            path: a local ``pretrained_model`` directory (nothing is downloaded at run time here).
            device: where the policy runs.
            **kwargs: as for the constructor (``chunk_size``, ``state_fn``, ``task``).
        """
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors

        path = str(path)
        config = PreTrainedConfig.from_pretrained(path)
        config.device = device
        policy = get_policy_class(config.type).from_pretrained(path, config=config)
        pre, post = make_pre_post_processors(
            config, pretrained_path=path, preprocessor_overrides={"device_processor": {"device": device}}
        )
        return cls(policy.to(device), pre, post, **kwargs)

    def clone(self) -> "LeRobotPolicy":
        """An adapter with its own copy of the model, for another env in per-step mode."""
        return LeRobotPolicy(copy.deepcopy(self.policy), self.preprocessor, self.postprocessor,
                             self.chunk_size, self.state_fn, self.task)

    def reset(self, seed: int | None = None) -> None:
        """Clear the policy's queues; ``seed`` seeds torch (diffusion sampling noise)."""
        self.policy.reset()
        if seed is not None:
            torch.manual_seed(seed)

    def _batch(self, observation: np.ndarray, info: dict[str, Any] | None) -> dict[str, Any]:
        from lerobot.envs.utils import preprocess_observation

        frame = np.asarray(observation)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(f"LeRobotPolicy expects one uint8 (H, W, 3) frame, got {frame.dtype} {frame.shape}")
        raw: dict[str, np.ndarray] = {"pixels": frame[None]}
        if self.wants_state:
            raw["agent_pos"] = np.asarray(self.state_fn(frame, info or {}), np.float32)[None]
        batch = preprocess_observation(raw)
        batch["task"] = [self.task]
        return self.preprocessor(batch) if self.preprocessor is not None else batch

    @torch.no_grad()
    def _select(self, batch: dict[str, Any]) -> np.ndarray:
        action = self.policy.select_action(dict(batch))
        if self.postprocessor is not None:
            action = self.postprocessor(action)
        return action.to("cpu").numpy()[0].astype(np.float32)

    def act(self, observation: np.ndarray, info: dict[str, Any] | None = None) -> np.ndarray:
        """One action ``(action_dim,)`` (per-step mode) or a chunk ``(chunk_size, action_dim)``."""
        batch = self._batch(observation, info)
        if self.chunk_size is None:
            return self._select(batch)
        self.policy.reset()
        return np.stack([self._select(batch) for _ in range(self.chunk_size)])
