"""A small CNN behaviour-cloning policy for Push-T: one frame in, an action chunk out.

:class:`CNNBCNet` maps a 96 x 96 RGB frame to the next ``chunk_size`` absolute targets (normalized
to [-1, 1] over the action bounds); :class:`CNNBCPolicy` runs it as a
:class:`world_gym.policies.base.Policy` that returns the whole chunk, executed open loop (one
world-model pass per chunk). Saved as ``config.json`` + ``model.safetensors`` (a few MB).

>>> net = CNNBCNet(CNNBCConfig(frame_size=(32, 32), channels=(8, 8), hidden=16, chunk_size=4))
>>> policy = CNNBCPolicy(net)
>>> policy.act(np.zeros((32, 32, 3), np.uint8)).shape
(4, 2)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class CNNBCConfig:
    """Shape of the network and of its actions.

    Attributes:
        frame_size: ``(H, W)`` of input frames.
        chunk_size: actions predicted per frame.
        action_dim: size of one action.
        action_low, action_high: action bounds (Push-T: 0 and 512), mapped to [-1, 1].
        channels: output channels of the stride-2 conv blocks.
        hidden: width of the MLP head.
        metadata: free-form training facts (steps, episodes, loss), saved with the weights.
    """

    frame_size: tuple[int, int] = (96, 96)
    chunk_size: int = 8
    action_dim: int = 2
    action_low: float = 0.0
    action_high: float = 512.0
    channels: tuple[int, ...] = (32, 64, 128, 128)
    hidden: int = 256
    metadata: dict[str, Any] = field(default_factory=dict)


class CNNBCNet(nn.Module):
    """Conv blocks (3x3, stride 2, GroupNorm, ReLU), flattened (positions matter), MLP to the chunk."""

    def __init__(self, config: CNNBCConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_in = 3
        for c in config.channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(min(8, c), c), nn.ReLU()]
            c_in = c
        self.encoder = nn.Sequential(*layers)
        h, w = config.frame_size
        for _ in config.channels:
            h, w = (h + 1) // 2, (w + 1) // 2
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(c_in * h * w, config.hidden), nn.ReLU(),
            nn.Linear(config.hidden, config.chunk_size * config.action_dim),
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 or float frames ``(B, H, W, 3)`` -> normalized actions ``(B, chunk, action_dim)``."""
        x = frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        out = self.head(self.encoder(x))
        return out.view(len(frames), self.config.chunk_size, self.config.action_dim)

    def normalize(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions in env units -> [-1, 1]."""
        lo, hi = self.config.action_low, self.config.action_high
        return (actions - lo) / (hi - lo) * 2.0 - 1.0

    def unnormalize(self, actions: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> actions in env units."""
        lo, hi = self.config.action_low, self.config.action_high
        return (actions + 1.0) / 2.0 * (hi - lo) + lo

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` to ``directory``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_NAME).write_text(json.dumps({"type": "cnn_bc", **asdict(self.config)}, indent=2))
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(directory / WEIGHTS_NAME))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str = "cpu") -> "CNNBCNet":
        """Load what :meth:`save_pretrained` wrote."""
        from safetensors.torch import load_file

        directory = Path(directory)
        raw = json.loads((directory / CONFIG_NAME).read_text())
        raw.pop("type", None)
        raw["frame_size"] = tuple(raw["frame_size"])
        raw["channels"] = tuple(raw["channels"])
        net = cls(CNNBCConfig(**raw))
        net.load_state_dict(load_file(str(directory / WEIGHTS_NAME), device=device))
        return net.to(device).eval()


class CNNBCPolicy:
    """:class:`CNNBCNet` as a policy: ``act`` returns the chunk ``(chunk_size, action_dim)`` float32.

    Args:
        net: the network (shared between policies: it holds no episode state).
        chunk_size: execute only the first ``chunk_size`` predicted actions (default: all).
    """

    def __init__(self, net: CNNBCNet, chunk_size: int | None = None) -> None:
        self.net = net.eval()
        predicted = net.config.chunk_size
        if chunk_size is not None and not 1 <= chunk_size <= predicted:
            raise ValueError(f"chunk_size must be in [1, {predicted}], got {chunk_size}")
        self.chunk_size = chunk_size or predicted

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str = "cpu", **kwargs: Any) -> "CNNBCPolicy":
        """Load a saved network as a policy."""
        return cls(CNNBCNet.from_pretrained(directory, device), **kwargs)

    def reset(self, seed: int | None = None) -> None:
        """Nothing to forget: the policy is a function of the current frame."""

    @torch.no_grad()
    def act(self, observation: np.ndarray, info: dict[str, Any] | None = None) -> np.ndarray:
        frame = np.asarray(observation)
        expected = (*self.net.config.frame_size, 3)
        if frame.shape != expected or frame.dtype != np.uint8:
            raise ValueError(f"CNNBCPolicy expects a uint8 frame of shape {expected}, got {frame.dtype} {frame.shape}")
        device = next(self.net.parameters()).device
        out = self.net.unnormalize(self.net(torch.from_numpy(frame)[None].to(device)))[0, : self.chunk_size]
        cfg = self.net.config
        return out.clamp(cfg.action_low, cfg.action_high).cpu().numpy().astype(np.float32)
