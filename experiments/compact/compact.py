"""Compact-state next-frame dynamics: the Interactive World Simulator's structure, deterministic.

The Interactive World Simulator (Wang et al. 2026) encodes each frame with a CNN, steps a latent
state one frame at a time from a sliding context with a little noise on that context, and decodes
the state back to a frame. This module keeps that structure on top of a spatial
:class:`~world_gym.codecs.vae.LatentCodec`:

* an autoencoder squeezes the codec's ``(C, h, w)`` latents of a frame into a state vector of
  ``state_dim`` numbers and back (``CompactAutoencoder``);
* a residual MLP steps the state: ``s_{t+1} = s_t + f(s_{t-1}, s_t, a_{t-1}, a_t)``
  (``CompactDynamics.step``), one frame per call, trained on multi-step rollouts of itself.

Both the decoder and the step are deterministic, where the paper trains consistency models: the
simulator this project learns (gym-pusht) is deterministic given two frames and the actions, and a
deterministic model costs one MLP call per frame, which is what lets it train on a 2-core CPU.
The hope: a decoder that maps every state to a whole frame draws only frames like those it was
trained on, so a pushed block would stay a block, where the spatial IRASim models here melt it
under contact. Measured (``experiments/NOTES.md``): trained on the CPU
for 25-75 minutes, the autoencoder itself draws the T as a rounded blob and misses the agent by
about 45 units of 512; it is not shipped.

As a :class:`~world_gym.world_model.WorldModel` backbone (registered as ``"Compact"``) it works
on the codec's latents like IRASim: :meth:`CompactDynamics.rollout` takes the context latents and
returns one latent frame per action, so envs, the fidelity benchmark and the evaluation harness use
it unchanged. ``WorldModel.rollout_latents`` calls ``rollout`` instead of a diffusion sampler for a
backbone that says ``deterministic = True``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from world_gym.backbones.state_space import StateSpaceBackbone


@dataclass
class CompactConfig:
    """Hyper-parameters of :class:`CompactDynamics`.

    Attributes:
        latent_channels, latent_size: the codec's latents, ``(C, h, w)``; ``h`` and ``w`` divisible by 4.
        state_dim: numbers per frame state.
        encoder_channels: the two stride-2 convolutions of the encoder.
        hidden: width of the dense layers on both sides of the state.
        decoder_channels: channels of the decoder's convolutions at ``h/2`` and at ``h``.
        dynamics_hidden, dynamics_depth: the step MLP (hidden layers of that width).
        action_dim: action size (normalised units).
        history: context frames a step reads (2: the state and its velocity).
        num_frames: ``history`` + the most frames a call is expected to generate; the step itself
            runs for any number of actions (kept for the ``WorldModel`` interface).
        state_noise: std of the noise added to the state during autoencoder training (in units of
            the raw state), so that nearby states decode to nearby frames.
        decoder: ``"conv"`` (dense layers to a ``h/2`` grid, then convolutions) or ``"implicit"``
            (:class:`ImplicitDecoder`: a per-cell network on the cell's coordinates, modulated by
            the state; ``decoder_channels[1]`` is its output convolution's width).
        implicit_width, implicit_depth: the implicit decoder's per-cell layers.
        coord_frequencies: sine/cosine frequencies of the cell coordinates it reads.
        encoder: ``"conv"`` (two stride-2 convolutions and dense layers) or ``"keypoints"``
            (:class:`KeypointEncoder`: the first ``2 * keypoints`` numbers of the state are the
            expected positions of as many feature maps, the rest come from pooled features).
        keypoints: feature points of the keypoint encoder.
    """

    latent_channels: int = 4
    latent_size: tuple[int, int] = (24, 24)
    state_dim: int = 32
    encoder_channels: tuple[int, int] = (48, 96)
    hidden: int = 256
    decoder_channels: tuple[int, int] = (64, 32)
    dynamics_hidden: int = 512
    dynamics_depth: int = 3
    action_dim: int = 2
    history: int = 2
    num_frames: int = 10
    state_noise: float = 0.05
    decoder: str = "conv"
    implicit_width: int = 64
    implicit_depth: int = 3
    coord_frequencies: int = 4
    encoder: str = "conv"
    keypoints: int = 12

    def __post_init__(self) -> None:
        self.latent_size = tuple(self.latent_size)  # type: ignore[assignment]
        self.encoder_channels = tuple(self.encoder_channels)  # type: ignore[assignment]
        self.decoder_channels = tuple(self.decoder_channels)  # type: ignore[assignment]
        if any(s % 4 for s in self.latent_size):
            raise ValueError(f"latent_size must be divisible by 4, got {self.latent_size}")
        if self.history != 2:
            raise ValueError(f"CompactDynamics steps from 2 context frames, got history={self.history}")
        if self.num_frames <= self.history:
            raise ValueError(f"num_frames ({self.num_frames}) must exceed history ({self.history})")
        if self.decoder not in ("conv", "implicit"):
            raise ValueError(f"decoder must be 'conv' or 'implicit', got {self.decoder!r}")
        if self.encoder not in ("conv", "keypoints"):
            raise ValueError(f"encoder must be 'conv' or 'keypoints', got {self.encoder!r}")
        if self.encoder == "keypoints" and not 0 < 2 * self.keypoints < self.state_dim:
            raise ValueError(f"2 * keypoints ({2 * self.keypoints}) must be below "
                             f"state_dim ({self.state_dim})")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("latent_size", "encoder_channels", "decoder_channels"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CompactConfig":
        return cls(**d)


def _coordinates(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres' ``x`` and ``y`` in ``[-1, 1]``, each ``(h, w)``."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return xs, ys


class KeypointEncoder(nn.Module):
    """Latents ``(N, C, h, w)`` -> states ``(N, state_dim)`` whose first ``2 * keypoints`` numbers are
    feature points: the expected ``(x, y)`` (in ``[-1, 1]``) of each of ``keypoints`` feature maps
    under a spatial softmax, as in deep spatial autoencoders (Finn et al. 2016). A dense layer
    must learn a weight for every place the agent can be to report where it is; a spatial softmax
    reads any position with the same weights. The other numbers come from the maps' average.
    Measured after 3,000 steps (``experiments/NOTES.md``): a linear read-out of its
    state finds the block better than the dense encoder's (9 against 19 units of 512) but the agent
    worse (84 against 47), and it reconstructs worse.
    """

    def __init__(self, config: CompactConfig) -> None:
        super().__init__()
        c = config
        e1, e2 = c.encoder_channels
        self.features = nn.Sequential(
            nn.Conv2d(c.latent_channels, e1, 3, 1, 1), nn.SiLU(),
            nn.Conv2d(e1, e2, 3, 1, 1), nn.SiLU(),
        )
        self.points = nn.Conv2d(e2, c.keypoints, 1)
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.rest = nn.Sequential(nn.Linear(e2 + 2 * c.keypoints, c.hidden), nn.SiLU(),
                                  nn.Linear(c.hidden, c.state_dim - 2 * c.keypoints))
        xs, ys = _coordinates(*c.latent_size)
        self.register_buffer("grid", torch.stack([xs.flatten(), ys.flatten()], -1), persistent=False)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        f = self.features(latents)
        logits = self.points(f).flatten(2) * torch.exp(-self.log_temperature)  # (N, K, h w)
        points = (torch.softmax(logits, -1) @ self.grid).flatten(1)  # (N, 2K): x0, y0, x1, y1, ...
        return torch.cat([points, self.rest(torch.cat([f.mean((2, 3)), points], 1))], 1)


class ImplicitDecoder(nn.Module):
    """States ``(N, state_dim)`` -> latents ``(N, C, h, w)``, drawn cell by cell.

    Every latent cell runs the same small network on its own coordinates (``x``, ``y`` in
    ``[-1, 1]`` and their sines and cosines); the state scales and shifts each layer's features
    (FiLM, Perez et al. 2018), and two 3x3 convolutions smooth the result. Where a dense decoder
    must learn a separate weight for every place an object can be, this one learns what an object
    looks like once: ``x * gain(s) + y * gain'(s)`` is already a rotated coordinate, so a block at
    any pose and the agent anywhere cost the same weights (the spatial broadcast decoder of Watters
    et al. 2019, with multiplicative conditioning). Measured after 3,000 steps: it
    reconstructs worse than the dense decoder (28.4 against 29.4 dB, block IoU 0.77 against 0.80).
    """

    def __init__(self, config: CompactConfig) -> None:
        super().__init__()
        c = config
        h, w = c.latent_size
        xs, ys = _coordinates(h, w)
        feats = [xs, ys]
        for k in range(c.coord_frequencies):
            for coord in (xs, ys):
                feats += [torch.sin(math.pi * 2**k * coord), torch.cos(math.pi * 2**k * coord)]
        self.register_buffer("coords", torch.stack(feats, -1).reshape(h * w, -1), persistent=False)
        width, depth = c.implicit_width, c.implicit_depth
        self.coord_in = nn.Linear(self.coords.shape[1], width)
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        # one (scale, shift) pair per layer, the input layer included
        self.film = nn.Sequential(nn.Linear(c.state_dim, c.hidden), nn.SiLU(),
                                  nn.Linear(c.hidden, 2 * (depth + 1) * width))
        self.head = nn.Sequential(
            nn.Conv2d(width, c.decoder_channels[1], 3, 1, 1), nn.SiLU(),
            nn.Conv2d(c.decoder_channels[1], c.latent_channels, 3, 1, 1),
        )
        self.grid, self.width = (h, w), width

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        n = states.shape[0]
        film = self.film(states).view(n, -1, 2, 1, self.width)  # (N, layers, 2, 1, width)
        x = self.coord_in(self.coords)  # (h w, width), shared by the batch
        x = nn.functional.silu(x * (1 + film[:, 0, 0]) + film[:, 0, 1])
        for i, layer in enumerate(self.layers, start=1):
            x = nn.functional.silu(layer(x) * (1 + film[:, i, 0]) + film[:, i, 1])
        x = x.transpose(1, 2).reshape(n, self.width, *self.grid)
        return self.head(x)


class ConvDecoder(nn.Module):
    """States ``(N, state_dim)`` -> latents ``(N, C, h, w)``: dense layers to a ``h/2`` grid of
    ``decoder_channels[0]`` features, then convolutions and one 2x upsampling."""

    def __init__(self, config: CompactConfig) -> None:
        super().__init__()
        c = config
        d1, d2 = c.decoder_channels
        h, w = c.latent_size
        self.grid = (h // 2, w // 2)
        self.fc = nn.Sequential(
            nn.Linear(c.state_dim, c.hidden), nn.SiLU(),
            nn.Linear(c.hidden, d1 * self.grid[0] * self.grid[1]), nn.SiLU(),
        )
        self.convs = nn.Sequential(
            nn.Conv2d(d1, d1, 3, 1, 1), nn.SiLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(d1, d2, 3, 1, 1), nn.SiLU(),
            nn.Conv2d(d2, c.latent_channels, 3, 1, 1),
        )
        self.d1 = d1

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.convs(self.fc(states).view(-1, self.d1, *self.grid))


class CompactAutoencoder(nn.Module):
    """Codec latents ``(N, C, h, w)`` <-> states ``(N, state_dim)`` (raw, not normalised)."""

    def __init__(self, config: CompactConfig) -> None:
        super().__init__()
        c = config
        e1, e2 = c.encoder_channels
        h, w = c.latent_size
        if c.encoder == "keypoints":
            self.encoder: nn.Module = KeypointEncoder(c)
        else:
            self.encoder = nn.Sequential(
                nn.Conv2d(c.latent_channels, e1, 4, 2, 1), nn.SiLU(),
                nn.Conv2d(e1, e2, 4, 2, 1), nn.SiLU(),
                nn.Flatten(), nn.Linear(e2 * (h // 4) * (w // 4), c.hidden), nn.SiLU(),
                nn.Linear(c.hidden, c.state_dim),
            )
        self.decoder = ImplicitDecoder(c) if c.decoder == "implicit" else ConvDecoder(c)

    def encode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.encoder(latents)

    def decode(self, states: torch.Tensor) -> torch.Tensor:
        return self.decoder(states)


class CompactDynamics(StateSpaceBackbone):
    """The compact world-model backbone: autoencoder, state statistics and the step MLP.

    >>> cfg = CompactConfig(latent_size=(8, 8), state_dim=4, encoder_channels=(8, 8), hidden=16,
    ...                     decoder_channels=(8, 8), dynamics_hidden=16, num_frames=6)
    >>> net = CompactDynamics(cfg)
    >>> ctx = torch.zeros(2, 2, 4, 8, 8)
    >>> mask = torch.zeros(2, 2, dtype=torch.bool)
    >>> net.rollout(ctx, torch.zeros(2, 2, 2), mask, torch.zeros(2, 5, 2)).shape
    torch.Size([2, 5, 4, 8, 8])
    """

    def __init__(self, config: CompactConfig) -> None:
        super().__init__()
        self.config = config
        self.autoencoder = CompactAutoencoder(config)
        layers: list[nn.Module] = []
        width = 2 * config.state_dim + 2 * config.action_dim
        for _ in range(config.dynamics_depth):
            layers += [nn.Linear(width, config.dynamics_hidden), nn.SiLU()]
            width = config.dynamics_hidden
        layers.append(nn.Linear(width, config.state_dim))
        self.step_net = nn.Sequential(*layers)
        # per-dimension mean and std of the training states: the step works in normalised units
        self.register_buffer("state_mean", torch.zeros(config.state_dim))
        self.register_buffer("state_std", torch.ones(config.state_dim))

    def encode_states(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``(..., C, h, w)`` -> normalised states ``(..., state_dim)``."""
        lead = latents.shape[:-3]
        raw = self.autoencoder.encode(latents.reshape(-1, *latents.shape[-3:]))
        return ((raw - self.state_mean) / self.state_std).reshape(*lead, -1)

    def decode_states(self, states: torch.Tensor) -> torch.Tensor:
        """Normalised states ``(..., state_dim)`` -> latents ``(..., C, h, w)``."""
        lead = states.shape[:-1]
        raw = states.reshape(-1, states.shape[-1]) * self.state_std + self.state_mean
        out = self.autoencoder.decode(raw)
        return out.reshape(*lead, *out.shape[1:])

    def step(self, prev: torch.Tensor, state: torch.Tensor, prev_action: torch.Tensor,
             action: torch.Tensor) -> torch.Tensor:
        """The next normalised state from the last two and the actions that led to the last one
        (``prev_action``, zero when unknown) and away from it (``action``)."""
        return state + self.step_net(torch.cat([prev, state, prev_action, action], dim=-1))
