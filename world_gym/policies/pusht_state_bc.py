"""A small Push-T learner: the state read off a frame, an MLP, an action chunk out.

:class:`PushTStateBC` reads the agent position and the block pose off each 96 x 96 frame with
:class:`~world_gym.envs.pusht.pixels.PushTFrameState` (its coarse fit, about 9 ms a frame), and maps
those six numbers with an MLP to the next ``chunk_size`` targets, predicted as offsets from the
agent. It acts from pixels only, so it runs unchanged in gym-pusht and in a world model, where it
sees whatever block the model imagines.

:class:`PushTStateNearest` reads the same features and answers with the chunk of the nearest
training frame. Both are learners of the learning loops (:mod:`world_gym.learning`) because they
learn Push-T measurably within a CPU budget of seconds per fit: a CNN trained from pixels on a
hundred demos does not (the zoo's CNN policies all fail in gym-pusht), while reading the state costs
one fit per frame, done once by :meth:`PushTStateBC.featurize`.

Follows the learner protocol of :mod:`world_gym.learning` (``featurize``, ``fit``) and the
:class:`~world_gym.policies.base.Policy` protocol (``reset``, ``act``). Saved as ``config.json`` +
``model.safetensors``.

>>> learner = PushTStateBC(PushTStateBCConfig(hidden=16, steps=5))
>>> frames = np.full((4, 96, 96, 3), 255, np.uint8)
>>> _ = learner.fit(learner.featurize(frames), np.full((4, 8, 2), 256.0, np.float32), seed=0)
>>> learner.act(frames[0]).shape
(8, 2)
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from world_gym.envs.pusht.pixels import GOAL_POSE, WORKSPACE_SIZE, PushTFrameState

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: Features per frame: agent (x, y), block (x, y) scaled to [-1, 1], block angle (cos, sin).
NUM_FEATURES = 6
OFFSET_SCALE = 100.0  # workspace pixels per unit of the network's output


@dataclass
class PushTStateBCConfig:
    """The network and its training budget.

    Attributes:
        chunk_size: targets predicted per frame (all executed, open loop).
        hidden: width of the MLP's three hidden layers.
        steps: optimizer steps per :meth:`PushTStateBC.fit` (the same budget whatever the data size).
        batch_size: samples per step.
        lr: Adam learning rate (cosine decay to zero).
        weight_decay: AdamW weight decay.
    """

    chunk_size: int = 8
    hidden: int = 256
    steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        for name in ("chunk_size", "hidden", "steps", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def frame_features(reader: PushTFrameState, frame: np.ndarray) -> np.ndarray:
    """The six features of one frame; a hidden agent reads as the centre, a hidden block as the goal."""
    state = reader.estimate(frame)
    agent = state.agent_pos if state.agent_pos is not None else np.array([WORKSPACE_SIZE / 2] * 2)
    block = state.block_pose if state.block_pose is not None else GOAL_POSE
    scale = 2.0 / WORKSPACE_SIZE
    return np.array([agent[0] * scale - 1, agent[1] * scale - 1, block[0] * scale - 1, block[1] * scale - 1,
                     np.cos(block[2]), np.sin(block[2])], np.float32)


def _mlp(hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(NUM_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out))


class PushTStateBC:
    """MLP behaviour cloning on the state read off Push-T frames; a learner and a policy.

    Args:
        config: network and training budget.
    """

    def __init__(self, config: PushTStateBCConfig | None = None) -> None:
        self.config = config or PushTStateBCConfig()
        self.reader = PushTFrameState(supersample=1, refine=False)
        self.net = _mlp(self.config.hidden, self.config.chunk_size * 2)
        self.trained = False

    # -- learner protocol -------------------------------------------------------------------
    def featurize(self, frames: np.ndarray) -> np.ndarray:
        """``(N, 96, 96, 3)`` uint8 frames -> ``(N, 6)`` float32 features (what :meth:`fit` takes)."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[1:] != (96, 96, 3) or frames.dtype != np.uint8:
            raise ValueError(f"PushTStateBC reads uint8 (N, 96, 96, 3) frames, got {frames.dtype} {frames.shape}")
        return np.stack([frame_features(self.reader, f) for f in frames]) if len(frames) else \
            np.zeros((0, NUM_FEATURES), np.float32)

    def _checked(self, features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``features`` ``(N, 6)`` and ``labels`` ``(N, chunk, 2)`` as float32, or a ValueError naming the problem."""
        features, labels = np.asarray(features, np.float32), np.asarray(labels, np.float32)
        if features.ndim != 2 or features.shape[1] != NUM_FEATURES:
            raise ValueError(f"features must be (N, {NUM_FEATURES}), got {features.shape}")
        if labels.shape != (len(features), self.config.chunk_size, 2):
            raise ValueError(f"labels must be ({len(features)}, {self.config.chunk_size}, 2), got {labels.shape}")
        if len(features) == 0:
            raise ValueError("no samples to fit")
        if not (np.isfinite(features).all() and np.isfinite(labels).all()):
            raise ValueError("features and labels must be finite")
        return features, labels

    def fit(self, features: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, float]:
        """Train from scratch on ``features`` ``(N, 6)`` and target chunks ``labels`` ``(N, chunk, 2)``.

        Returns:
            ``{"loss": final training loss, "samples": N}``.
        """
        cfg = self.config
        features, labels = self._checked(features, labels)
        gen = torch.Generator().manual_seed(int(seed))
        torch.manual_seed(int(seed))
        self.net = _mlp(cfg.hidden, cfg.chunk_size * 2)
        x = torch.from_numpy(features)
        agent = (x[:, :2] + 1) * (WORKSPACE_SIZE / 2)
        y = ((torch.from_numpy(labels) - agent[:, None]) / OFFSET_SCALE).reshape(len(x), -1)
        opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
        self.net.train()
        loss = torch.zeros(())
        for _ in range(cfg.steps):
            idx = torch.randint(len(x), (min(cfg.batch_size, len(x)),), generator=gen)
            loss = nn.functional.smooth_l1_loss(self.net(x[idx]), y[idx], beta=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        self.net.eval()
        self.trained = True
        return {"loss": float(loss.detach()), "samples": int(len(x))}

    # -- policy protocol --------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Nothing to forget: the policy is a function of the current frame."""

    @torch.no_grad()
    def act(self, observation: Any, info: dict[str, Any] | None = None) -> np.ndarray:
        """``(chunk_size, 2)`` float32 targets in ``[0, 512]`` from a uint8 96 x 96 frame."""
        features = self.featurize(np.asarray(observation)[None])
        return self.predict(features)[0]

    @torch.no_grad()
    def predict(self, features: np.ndarray) -> np.ndarray:
        """Target chunks ``(N, chunk, 2)`` for features ``(N, 6)``."""
        x = torch.from_numpy(np.asarray(features, np.float32))
        agent = (x[:, :2] + 1) * (WORKSPACE_SIZE / 2)
        out = self.net(x).view(len(x), self.config.chunk_size, 2) * OFFSET_SCALE + agent[:, None]
        return out.clamp(0.0, WORKSPACE_SIZE).numpy().astype(np.float32)

    # -- files ------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_NAME).write_text(json.dumps({"type": self.kind, **asdict(self.config)}, indent=2))
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, str(directory / WEIGHTS_NAME))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "PushTStateBC":
        """Load what :meth:`save_pretrained` wrote."""
        from safetensors.torch import load_file

        directory = Path(directory)
        raw = json.loads((directory / CONFIG_NAME).read_text())
        if raw.pop("type", None) != cls.kind:
            raise ValueError(f"{directory / CONFIG_NAME} is not a {cls.__name__} config")
        learner = cls(PushTStateBCConfig(**raw))
        learner._load_state(load_file(str(directory / WEIGHTS_NAME)))
        learner.trained = True
        return learner

    kind = "pusht_state_bc"

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict(tensors)
        self.net.eval()


class PushTStateNearest(PushTStateBC):
    """Nearest-neighbour behaviour cloning on the same six features: the chunk of the closest
    training frame, as offsets from the agent. It represents whatever it was shown exactly (an MLP
    averages the expert's discontinuous choices of where to push), so more data, and data where the
    learner goes (DAgger), help it most; ``fit`` stores the samples (no training, no seed).

    >>> learner = PushTStateNearest()
    >>> frames = np.full((2, 96, 96, 3), 255, np.uint8)
    >>> _ = learner.fit(learner.featurize(frames), np.full((2, 8, 2), 300.0, np.float32))
    >>> learner.act(frames[0])[0].tolist()
    [300.0, 300.0]
    """

    kind = "pusht_state_nearest"

    def __init__(self, config: PushTStateBCConfig | None = None) -> None:
        super().__init__(config)
        self.features = np.zeros((0, NUM_FEATURES), np.float32)
        self.offsets = np.zeros((0, self.config.chunk_size, 2), np.float32)

    def fit(self, features: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, float]:
        """Keep ``features`` ``(N, 6)`` and the target chunks ``labels`` ``(N, chunk, 2)`` as offsets."""
        features, labels = self._checked(features, labels)
        agent = (features[:, :2] + 1) * (WORKSPACE_SIZE / 2)
        self.features, self.offsets = features, labels - agent[:, None]
        self.trained = True
        return {"loss": 0.0, "samples": int(len(features))}

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The nearest stored frame's chunk, moved to each query's agent ``(N, chunk, 2)``."""
        if not len(self.features):
            raise RuntimeError("PushTStateNearest has no samples: call fit first")
        x = np.asarray(features, np.float32)
        nearest = ((x[:, None, :] - self.features[None]) ** 2).sum(-1).argmin(1)
        agent = (x[:, :2] + 1) * (WORKSPACE_SIZE / 2)
        return np.clip(self.offsets[nearest] + agent[:, None], 0.0, WORKSPACE_SIZE).astype(np.float32)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and the stored samples as ``model.safetensors``."""
        from safetensors.numpy import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_NAME).write_text(json.dumps({"type": self.kind, **asdict(self.config)}, indent=2))
        save_file({"features": self.features, "offsets": self.offsets}, str(directory / WEIGHTS_NAME))
        return directory

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.features = tensors["features"].numpy()
        self.offsets = tensors["offsets"].numpy()
