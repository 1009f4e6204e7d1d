"""Goal-image reward heads: how close each frame is to the goal image given at reset.

Two distances, one head class each, for any env:

* ``goal_mse`` compares pixels: mean squared error of the frame and the goal image, both
  scaled to [0, 1].
* ``goal_latent_mse`` compares latents: mean squared error of ``context.encode(frame)`` and
  ``context.encode(goal)``, through the world model's own codec, which is blind to the pixel
  noise a decoder adds and so ranks imagined frames more steadily.

The reward is ``-mse`` (higher is closer; 0 at the goal) unless ``reward="exp"``, which gives
``exp(-mse / scale)`` in (0, 1]. Success is ``mse <= success_threshold``. Both heads need
``context.goal_images`` (``reset(options={"goal_image": ...})``) and fail clearly without one.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from world_gym.reward_models.base import RewardContext, RewardHead, RewardOutput


class _GoalDistanceHead(RewardHead):
    """Shared reward/success logic of the goal-image heads; subclasses give the distance."""

    def __init__(self, success_threshold: float, reward: Literal["neg_mse", "exp"] = "neg_mse",
                 scale: float = 1.0) -> None:
        if reward not in ("neg_mse", "exp"):
            raise ValueError(f"reward must be 'neg_mse' or 'exp', got {reward!r}")
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.success_threshold = float(success_threshold)
        self.reward = reward
        self.scale = float(scale)

    def distance(self, frames: np.ndarray, goals: np.ndarray, context: RewardContext) -> np.ndarray:
        """Per-frame mean squared error, ``(B, T)`` float32, of ``frames`` to ``goals`` ``(B, H, W, 3)``."""
        raise NotImplementedError

    def __call__(self, frames: np.ndarray, context: RewardContext) -> RewardOutput:
        """Score ``(B, T, H, W, 3)`` uint8 frames against ``context.goal_images``.

        Args:
            frames: the frames to score.
            context: must carry ``goal_images`` ``(B, H, W, 3)`` uint8 of the frames' size.

        Returns:
            reward and success per frame; ``info["goal_mse"]`` holds the distance.

        Raises:
            ValueError: no goal images, or shapes that do not match.
        """
        frames = np.asarray(frames)
        if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"{self.name} scores uint8 frames of shape (B, T, H, W, 3), got {frames.dtype} {frames.shape}")
        if context.goal_images is None:
            raise ValueError(f"reward head {self.name!r} needs a goal image: reset(options={{'goal_image': frame}})")
        goals = np.asarray(context.goal_images)
        if goals.ndim == 3:
            goals = goals[None]
        b, _, h, w, _ = frames.shape
        if goals.shape[1:] != (h, w, 3) or goals.shape[0] not in (1, b) or goals.dtype != np.uint8:
            raise ValueError(f"goal_images must be uint8 (B, {h}, {w}, 3) with B={b} (or 1), "
                             f"got {goals.dtype} {goals.shape}")
        goals = np.broadcast_to(goals, (b, h, w, 3))
        mse = self.distance(frames, goals, context).astype(np.float32)
        reward = -mse if self.reward == "neg_mse" else np.exp(-mse / self.scale)
        return RewardOutput(reward=reward.astype(np.float32), success=mse <= self.success_threshold,
                            info={"goal_mse": mse})


class GoalPixelMSEReward(_GoalDistanceHead):
    """Pixel MSE to the goal image (``goal_mse``).

    Args:
        success_threshold: success when the MSE (pixels in [0, 1]) is at most this.
        reward: ``"neg_mse"`` (reward ``-mse``) or ``"exp"`` (reward ``exp(-mse / scale)``).
        scale: the ``exp`` reward's temperature.

    Example:
        >>> import numpy as np
        >>> head = GoalPixelMSEReward(success_threshold=1e-3)
        >>> goal = np.zeros((1, 8, 8, 3), np.uint8)
        >>> out = head(goal[:, None], RewardContext(goal_images=goal))
        >>> bool(out.success[0, 0]), float(out.reward[0, 0])
        (True, 0.0)
    """

    name = "goal_mse"

    def __init__(self, success_threshold: float = 2e-3, reward: Literal["neg_mse", "exp"] = "neg_mse",
                 scale: float = 0.01) -> None:
        super().__init__(success_threshold, reward, scale)

    def distance(self, frames: np.ndarray, goals: np.ndarray, context: RewardContext) -> np.ndarray:
        diff = frames.astype(np.float32) / 255.0 - goals[:, None].astype(np.float32) / 255.0
        return np.mean(diff * diff, axis=(2, 3, 4))


class GoalLatentMSEReward(_GoalDistanceHead):
    """Latent MSE to the goal image through the world model's codec (``goal_latent_mse``).

    Args:
        success_threshold: success when the latent MSE is at most this (the scale depends on the codec).
        reward: ``"neg_mse"`` or ``"exp"``.
        scale: the ``exp`` reward's temperature.
        batch_size: frames per ``encode`` call.

    Raises:
        ValueError (at call time): the context has no ``encode`` (the env is not a world model).
    """

    name = "goal_latent_mse"

    def __init__(self, success_threshold: float = 0.05, reward: Literal["neg_mse", "exp"] = "neg_mse",
                 scale: float = 0.1, batch_size: int = 64) -> None:
        super().__init__(success_threshold, reward, scale)
        self.batch_size = batch_size
        self._goal_cache: tuple[bytes, torch.Tensor] | None = None

    @torch.no_grad()
    def _encode(self, context: RewardContext, images: np.ndarray) -> torch.Tensor:
        chunks = [torch.as_tensor(context.encode(images[i:i + self.batch_size])).float().cpu()
                  for i in range(0, len(images), self.batch_size)]
        return torch.cat(chunks)

    def distance(self, frames: np.ndarray, goals: np.ndarray, context: RewardContext) -> np.ndarray:
        if context.encode is None:
            raise ValueError("reward head 'goal_latent_mse' needs context.encode (a world model's codec); "
                             "use 'goal_mse' for pixel distance")
        b, t = frames.shape[:2]
        # The goal is fixed for an episode while frames change every step: encode it once.
        key = goals.tobytes()
        if self._goal_cache is None or self._goal_cache[0] != key:
            self._goal_cache = (key, self._encode(context, np.array(goals)))  # writable copy for the codec
        z_goal = self._goal_cache[1]
        z = self._encode(context, frames.reshape(b * t, *frames.shape[2:]))
        z = z.reshape(b, t, *z.shape[1:])
        if z.shape[2:] != z_goal.shape[1:]:
            raise ValueError(f"frame latents {tuple(z.shape[2:])} and goal latents {tuple(z_goal.shape[1:])} differ")
        return ((z - z_goal[:, None]) ** 2).flatten(2).mean(-1).numpy()
