"""Pose-state next-frame dynamics: a frame's state is the pose of the things that move in it.

A Push-T frame is a function of five numbers: the agent's position and the block's position and
angle. This backbone makes those five numbers the state of a next-frame model over a spatial
:class:`~world_gym.codecs.vae.LatentCodec`'s latents:

* :class:`PoseEncoder`: a CNN reads the pose from a frame's latents; at run time a few gradient
  steps through the decoder refine it (analysis by synthesis, ``refine_steps``);
* :class:`SpriteDecoder`: draws the latents from a pose, cell by cell: every latent cell runs one
  small network on its own learned features and on its coordinates *in the block's frame* and
  *relative to the agent*. A block drawn this way is rigid at any pose: the network learns what
  the block looks like around each point of its own frame once, and the pose only moves the
  coordinates (a spatial-transformer decoder, as in layered sprite models);
* :class:`PoseStep`: the agent's step from its last two positions and the two action targets
  (world frame, translation-invariant), then the block's step in the block's own frame from where
  the agent is and goes relative to it (contact), with its last motion; with ``substeps``, in parts of
  the frame along the agent's path.

Each part is trained from the collector's privileged pose columns (``observation.state``,
``observation.block_pose``): the model sees only frames at run time. Training and measurements:
:mod:`world_gym.envs.pusht.train_pose`, ``docs/models/pusht-pose-state.md``.

The state is ``(agent x, agent y, block x, block y, block angle)``: positions in the action
normalisation's units (``[0, 512]`` -> ``[-1, 1]``: ``x`` is the image column, ``y`` the row), the
angle in radians, unwrapped.

With ``token_scale`` set, the backbone keeps only :class:`PoseStep` and runs on a
:class:`~world_gym.envs.pusht.pose_codec.PoseCodec`'s pose tokens instead of spatial latents: the codec
then reads the pose off a frame (the agent from its colour where it is set) and draws it (with
its sprite renderer where it has one), and a token is the state itself (``PoseState-PushT-v0``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import nn

from world_gym.backbones.pose_frame import rotate, wrap_angle
from world_gym.backbones.state_space import StateSpaceBackbone
from world_gym.envs.pusht.contact import CONTACT_FEATURES, WALL_FEATURES, block_features
from world_gym.tracing import InferenceTrace

STATE_DIM = 5
TOKEN_CHANNELS = 6  # a pose token: token_scale x (agent x, y, block x, y, cos angle, sin angle)


@dataclass
class PoseStateConfig:
    """Hyper-parameters of :class:`PoseStateDynamics`.

    Attributes:
        latent_channels, latent_size: the codec's latents, ``(C, h, w)``; ``h`` and ``w`` divisible by 4.
        action_dim: 2 (absolute agent targets, normalised like the positions).
        history, num_frames: context frames and frames per clip (the step reads 2 frames).
        encoder_channels, encoder_hidden: the pose encoder's three convolutions and dense layer.
        refine_steps, refine_lr: Adam steps on the encoder's pose that bring the decoder's latents
            closer to the frame's, at run time (0: the encoder's pose as it is).
        cell_features: learned numbers per latent cell (what the board looks like there).
        decoder_width, decoder_depth: the per-cell network.
        frequencies: sine/cosine frequencies ``pi * 2**(k - 2)`` of the object coordinates.
        object_scale: object coordinates are ``object_scale`` x the pose units (the T is ~2 across).
        agent_reach, block_reach: the decoder reads an object's coordinates only within this distance
            of it (pose units), fading to zero at it; 0 reads them everywhere. Without a reach the
            decoder learns that the agent is usually near the block: moving a far agent changed
            the block's latent cells by up to 0.12; with reaches they stay as they are.
        velocity_scale: motions per frame are read at this scale.
        dynamics_hidden, dynamics_depth: the agent's and the block's step networks.
        block_step, angle_step: the block step network's outputs are scaled by these (pose units,
            radians per frame).
        contact_features: the block step network also reads the contact geometry
            (:func:`~world_gym.envs.pusht.contact.contact_features`: where the agent is and goes
            relative to each of the T's rectangles, how near its swept disc comes to the T, how deep
            the T lies in a wall), so that it need not learn the T's outline from coordinates alone.
        substeps: the block's step is integrated in this many parts of a frame, each from the agent's
            position along its path through the frame to the next, as gym-pusht's solver resolves the
            contact ten times a frame: a push that starts or ends within a frame, or slides along the
            T, is composed of small pushes instead of being learned as one. The path runs from the
            agent's position to its next, bent by a learned linear term of the agent's step inputs
            (zero at the ends). 1: one block step per frame.
        wall_features: the block step network also reads, for each of the four walls, how deep the T's
            deepest corner lies beyond it and which corner that is
            (:func:`~world_gym.envs.pusht.contact.wall_features`): a T pushed into a wall or a corner
            turns about the corner that meets it.
        token_scale: 0 (latents are a spatial codec's, read and drawn by this model's encoder and
            decoder) or the scale of a pose codec's tokens, ``(6, 1, 1)``, which are the states
            themselves (:func:`states_to_tokens`); the encoder and decoder fields are then unused.
    """

    latent_channels: int = 4
    latent_size: tuple[int, int] = (24, 24)
    action_dim: int = 2
    history: int = 2
    num_frames: int = 10
    encoder_channels: tuple[int, int, int] = (64, 128, 128)
    encoder_hidden: int = 256
    refine_steps: int = 0
    refine_lr: float = 0.005
    cell_features: int = 16
    decoder_width: int = 128
    decoder_depth: int = 4
    frequencies: int = 6
    object_scale: float = 4.0
    agent_reach: float = 0.0
    block_reach: float = 0.0
    velocity_scale: float = 16.0
    dynamics_hidden: int = 256
    dynamics_depth: int = 3
    block_step: float = 0.05
    angle_step: float = 0.2
    contact_features: bool = False
    substeps: int = 1
    wall_features: bool = False
    token_scale: float = 0.0

    def __post_init__(self) -> None:
        self.latent_size = tuple(self.latent_size)  # type: ignore[assignment]
        self.encoder_channels = tuple(self.encoder_channels)  # type: ignore[assignment]
        if self.token_scale > 0:
            if self.latent_channels != TOKEN_CHANNELS or self.latent_size != (1, 1):
                raise ValueError(f"pose tokens are ({TOKEN_CHANNELS}, 1, 1) latents, got latent_channels="
                                 f"{self.latent_channels}, latent_size={self.latent_size}")
        elif any(s % 4 for s in self.latent_size):
            raise ValueError(f"latent_size must be divisible by 4, got {self.latent_size}")
        if self.history != 2:
            raise ValueError(f"PoseStateDynamics steps from 2 context frames, got history={self.history}")
        if self.num_frames <= self.history:
            raise ValueError(f"num_frames ({self.num_frames}) must exceed history ({self.history})")
        if self.action_dim != 2:
            raise ValueError(f"the pose state's actions are 2-D agent targets, got action_dim={self.action_dim}")
        if not isinstance(self.substeps, int) or isinstance(self.substeps, bool) or self.substeps < 1:
            raise ValueError(f"substeps must be a positive integer, got {self.substeps!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("latent_size", "encoder_channels"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PoseStateConfig":
        return cls(**d)


def _cells(h: int, w: int) -> torch.Tensor:
    """Latent cell centres ``(h * w, 2)`` as ``(x, y)`` in pose units (``x`` the column)."""
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h * 2 - 1, (torch.arange(w) + 0.5) / w * 2 - 1,
                            indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], -1)


def _mlp(width_in: int, hidden: int, depth: int, width_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width_in, hidden), nn.SiLU()]
        width_in = hidden
    layers.append(nn.Linear(width_in, width_out))
    return nn.Sequential(*layers)


class Fourier(nn.Module):
    """``(..., 2)`` coordinates -> ``(..., 2 + 4 F)``: themselves and their sines and cosines at
    ``F`` frequencies ``pi * 2**(k - 2)``."""

    def __init__(self, frequencies: int) -> None:
        super().__init__()
        self.register_buffer("freqs", math.pi * 2.0 ** (torch.arange(frequencies, dtype=torch.float32) - 2),
                             persistent=False)
        self.width = 2 + 4 * frequencies

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        angles = (u[..., None] * self.freqs).flatten(-2)
        return torch.cat([u, torch.sin(angles), torch.cos(angles)], -1)


class PoseEncoder(nn.Module):
    """Latents ``(N, C, h, w)`` -> ``(N, 6)``: agent ``x, y``, block ``x, y``, cosine and sine of the
    block's angle. The cells' coordinates are two more input channels, so a position is read with
    the same weights anywhere (CoordConv)."""

    def __init__(self, config: PoseStateConfig) -> None:
        super().__init__()
        c = config
        e1, e2, e3 = c.encoder_channels
        h, w = c.latent_size
        self.net = nn.Sequential(
            nn.Conv2d(c.latent_channels + 2, e1, 3, 1, 1), nn.SiLU(),
            nn.Conv2d(e1, e2, 4, 2, 1), nn.SiLU(),
            nn.Conv2d(e2, e3, 4, 2, 1), nn.SiLU(),
            nn.Flatten(), nn.Linear(e3 * (h // 4) * (w // 4), c.encoder_hidden), nn.SiLU(),
            nn.Linear(c.encoder_hidden, 6),
        )
        self.register_buffer("coords", _cells(h, w).T.reshape(2, h, w), persistent=False)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        coords = self.coords.to(latents.dtype).expand(latents.shape[0], -1, -1, -1)
        return self.net(torch.cat([latents, coords], 1))


def pose_to_state(pose: torch.Tensor) -> torch.Tensor:
    """``(..., 6)`` encoder outputs -> ``(..., 5)`` states (the angle from its cosine and sine)."""
    return torch.cat([pose[..., :4], torch.atan2(pose[..., 5], pose[..., 4])[..., None]], -1)


def states_to_tokens(states: torch.Tensor, scale: float) -> torch.Tensor:
    """States ``(N, 5)`` -> pose tokens ``(N, 6, 1, 1)``."""
    angle = states[:, 4:5]
    return (scale * torch.cat([states[:, :4], torch.cos(angle), torch.sin(angle)], 1))[..., None, None]


def tokens_to_states(tokens: torch.Tensor, scale: float) -> torch.Tensor:
    """Pose tokens ``(N, 6, 1, 1)`` -> states ``(N, 5)`` (the angle from the cosine and sine, whatever their norm)."""
    return pose_to_state(tokens.flatten(1) / scale)


class SpriteDecoder(nn.Module):
    """States ``(N, 5)`` -> latents ``(N, C, h, w)``, drawn cell by cell from the cell's learned
    features, its coordinates in the block's frame and relative to the agent (each with Fourier
    features) and the block angle's cosine and sine (how an edge falls on the cell grid)."""

    def __init__(self, config: PoseStateConfig) -> None:
        super().__init__()
        c = config
        h, w = c.latent_size
        self.register_buffer("cells", _cells(h, w), persistent=False)
        self.cell_features = nn.Parameter(0.1 * torch.randn(h * w, c.cell_features))
        self.fourier = Fourier(c.frequencies)
        windows = 2 if c.agent_reach > 0 or c.block_reach > 0 else 0
        self.net = _mlp(c.cell_features + 2 * self.fourier.width + 2 + windows, c.decoder_width, c.decoder_depth,
                        c.latent_channels)
        self.grid, self.channels, self.scale = (h, w), c.latent_channels, c.object_scale
        self.reach = (c.agent_reach * c.object_scale, c.block_reach * c.object_scale) if windows else None

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        n = states.shape[0]
        cells = self.cells.to(states.dtype)[None]  # (1, h w, 2)
        cos, sin = torch.cos(states[:, 4])[:, None], torch.sin(states[:, 4])[:, None]
        in_block = rotate((cells - states[:, None, 2:4]) * self.scale, cos, -sin)  # R(-angle)(p - block)
        from_agent = (cells - states[:, None, 0:2]) * self.scale
        angle = torch.cat([cos, sin], -1)[:, None].expand(-1, cells.shape[1], -1)
        block_features, agent_features = self.fourier(in_block), self.fourier(from_agent)
        parts = [self.cell_features.to(states.dtype).expand(n, -1, -1)]
        if self.reach is not None:
            # each object's coordinates fade out (squared hinge) beyond its reach, unless the reach is 0
            windows = []
            for coords, reach in ((from_agent, self.reach[0]), (in_block, self.reach[1])):
                windows.append((1 - coords.norm(dim=-1, keepdim=True) / reach).clamp(min=0) ** 2 if reach > 0
                               else torch.ones_like(coords[..., :1]))
            agent_features, block_features, angle = agent_features * windows[0], block_features * windows[1], \
                angle * windows[1]
            parts += windows
        features = torch.cat([*parts, block_features, agent_features, angle], -1)
        out = self.net(features)  # (N, h w, C)
        return out.transpose(1, 2).reshape(n, self.channels, *self.grid)


def refine_states(decoder: nn.Module, states: torch.Tensor, latents: torch.Tensor, steps: int,
                  lr: float, fixed: torch.Tensor | None = None, cosine: bool = False,
                  trace: InferenceTrace | None = None) -> torch.Tensor:
    """``states`` ``(N, 5)`` after ``steps`` Adam steps of rate ``lr`` on ``|decoder(states) - latents|^2``
    (analysis by synthesis; frames do not interact, the loss is a sum over them). ``decoder``: any
    network of states (the :class:`SpriteDecoder` to VAE latents, or a sprite renderer to frames).
    ``fixed``: optional bool ``(N, 5)``, the entries that keep their value in ``states``. ``cosine``:
    the rate decays to 0 along a half cosine (the last steps settle instead of jittering by ``lr``).
    ``trace``: run the decoder as the TorchScript trace kept there (:class:`~world_gym.tracing.InferenceTrace`;
    the same result bit for bit with less Python a step: a sprite renderer's step at batch 1 on one
    CPU thread 2.3 -> 2.1 ms)."""
    params = [p.requires_grad_(False) for p in decoder.parameters()]
    given = states.detach()
    try:
        with torch.enable_grad():
            x = given.clone().requires_grad_(True)
            draw = decoder if trace is None or steps == 0 else trace(decoder, (given,))
            opt = torch.optim.Adam([x], lr=lr)
            for k in range(steps):
                if cosine:
                    opt.param_groups[0]["lr"] = lr * 0.5 * (1 + math.cos(math.pi * k / steps))
                full = x if fixed is None else torch.where(fixed, given, x)
                loss = (draw(full) - latents).pow(2).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        for p in params:
            p.requires_grad_(True)
    return x.detach() if fixed is None else torch.where(fixed, given, x.detach())


#: finite-difference steps of :func:`gauss_newton_states` per state entry (pose units: 0.05 px of 512;
#: radians): small against a frame pixel, over which a bilinearly sampled sprite changes linearly
GAUSS_NEWTON_STEPS = (0.05 / 256, 0.05 / 256, 0.05 / 256, 0.05 / 256, 0.0005)


@torch.no_grad()
def gauss_newton_states(decoder: nn.Module, states: torch.Tensor, target: torch.Tensor, iterations: int,
                        fixed: torch.Tensor | None = None, damping: float = 1e-3,
                        trace: InferenceTrace | None = None) -> torch.Tensor:
    """``states`` ``(N, 5)`` fitted to ``target`` (``decoder``'s output for them) by ``iterations``
    Levenberg-Marquardt steps on ``|decoder(states) - target|^2``: each iteration draws every frame's
    state and its forward-differenced neighbours in one batch (:data:`GAUSS_NEWTON_STEPS`), solves
    the damped normal equations for the free entries, and keeps a frame's step only where it lowers
    that frame's error (else the frame's damping grows four-fold). From a start within a pixel or two
    (a rigid fit of the T), six iterations fit a ``pusht-pose-state`` frame about as closely as 50 Adam
    steps (:func:`refine_states`) in a tenth of the time. ``fixed``: optional bool ``(N, 5)``, the
    entries that keep their value. ``trace``: run the decoder as the TorchScript trace kept there."""
    n, dim = states.shape
    free = torch.ones(n, dim, dtype=torch.bool, device=states.device) if fixed is None else ~fixed.to(states.device)
    columns = free.any(0).nonzero()[:, 0]  # the entries free in some frame: only those are probed
    x = states.detach().clone()
    if iterations <= 0 or len(columns) == 0:
        return x
    free = free[:, columns].to(states.dtype)
    h = torch.tensor(GAUSS_NEWTON_STEPS, dtype=states.dtype, device=states.device)[columns]
    probes = torch.zeros(len(columns), dim, dtype=states.dtype, device=states.device)
    probes[torch.arange(len(columns)), columns] = h
    flat_target = target.reshape(n, -1).to(states.dtype)
    lam = torch.full((n,), damping, dtype=states.dtype, device=states.device)
    eye = torch.eye(len(columns), dtype=states.dtype, device=states.device)

    def residuals(s: torch.Tensor) -> torch.Tensor:
        """``(N, 1 + C, P)``: the residual of each state ``(N, 5)`` and of its probed neighbours."""
        batch = torch.cat([s[:, None], s[:, None] + probes], 1).reshape(-1, dim)
        draw = decoder if trace is None else trace(decoder, (batch,))
        return draw(batch).reshape(n, 1 + len(columns), -1) - flat_target[:, None]

    res = residuals(x)
    loss = res[:, 0].square().sum(-1)
    for _ in range(iterations):
        jac = (res[:, 1:] - res[:, :1]) / h[:, None] * free[..., None]  # (N, C, P)
        jtj = jac @ jac.transpose(1, 2)
        grad = (jac @ res[:, 0, :, None])[..., 0]
        system = jtj + lam[:, None, None] * torch.diag_embed(torch.diagonal(jtj, dim1=1, dim2=2)) + 1e-9 * eye
        trial = x.clone()
        trial[:, columns] -= torch.linalg.solve(system, grad) * free
        new = residuals(trial)
        new_loss = new[:, 0].square().sum(-1)
        better = new_loss < loss
        x = torch.where(better[:, None], trial, x)
        res = torch.where(better[:, None, None], new, res)
        loss = torch.where(better, new_loss, loss)
        lam = torch.where(better, (lam / 3).clamp_min(1e-7), lam * 4)
    return x


def read_states(encoder: PoseEncoder, decoder: SpriteDecoder, latents: torch.Tensor, steps: int,
                lr: float, agent: torch.Tensor | None = None) -> torch.Tensor:
    """Latents ``(N, C, h, w)`` -> states ``(N, 5)``: the encoder's pose, then :func:`refine_states`
    through the decoder when ``steps`` > 0. ``agent``: optional ``(N, 2)`` agent positions read
    otherwise (NaN where unknown); where known they replace the encoder's and stay fixed while the
    block is refined."""
    with torch.no_grad():
        states = pose_to_state(encoder(latents))
    fixed = None
    if agent is not None:
        known = ~torch.isnan(agent).any(dim=-1)
        states[known, 0:2] = agent[known].to(states.dtype)
        fixed = torch.zeros_like(states, dtype=torch.bool)
        fixed[known, 0:2] = True
    return refine_states(decoder, states, latents, steps, lr, fixed) if steps > 0 else states


class PoseStep(nn.Module):
    """One frame of Push-T motion on pose states.

    The agent: a linear map plus a network of its last motion and the two targets relative to it
    (gym-pusht's agent is a PD-controlled kinematic body, so its next position is a function of
    these alone). The block: a network of, in the block's frame, where the agent is and moves to,
    the agent's and the block's last motions, and the block's position on the board (walls), whose
    output is the block's motion in its own frame and its turn; with ``substeps`` > 1 the network
    moves the block in that many parts of the frame, along the agent's path.
    """

    def __init__(self, config: PoseStateConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.agent_linear = nn.Linear(6, 2)
        self.agent_net = _mlp(6, c.dynamics_hidden // 2, 2, 2)
        self.fourier = Fourier(c.frequencies)
        extra = (CONTACT_FEATURES if c.contact_features else 0) + (WALL_FEATURES if c.wall_features else 0)
        self.block_net = _mlp(2 * self.fourier.width + 9 + extra, c.dynamics_hidden, c.dynamics_depth, 3)
        nn.init.zeros_(self.agent_net[-1].weight)
        nn.init.zeros_(self.agent_net[-1].bias)
        nn.init.zeros_(self.block_net[-1].weight)
        nn.init.zeros_(self.block_net[-1].bias)
        if c.substeps > 1:
            # the agent path's bend within a frame (pose units x velocity_scale), starting straight
            self.agent_path = nn.Linear(6, 2)
            nn.init.zeros_(self.agent_path.weight)
            nn.init.zeros_(self.agent_path.bias)

    def forward(self, prev: torch.Tensor, state: torch.Tensor, prev_action: torch.Tensor,
                action: torch.Tensor) -> torch.Tensor:
        c = self.config
        agent, agent_prev = state[..., 0:2], prev[..., 0:2]
        feats = torch.cat([(agent - agent_prev) * c.velocity_scale, (action - agent) * c.object_scale,
                           (prev_action - agent) * c.object_scale], -1)
        agent_next = agent + (self.agent_linear(feats) + self.agent_net(feats)) / c.velocity_scale
        block, angle = state[..., 2:4], state[..., 4]
        cos, sin = torch.cos(angle), torch.sin(angle)
        # the block's last motion, in its frame at the frame's start, and its last turn
        last = [rotate(block - prev[..., 2:4], cos, -sin) * c.velocity_scale,
                (wrap_angle(angle - prev[..., 4]) * c.velocity_scale)[..., None]]
        n = c.substeps
        if n > 1:
            move, bend = agent_next - agent, self.agent_path(feats) / c.velocity_scale

            def along(s: float) -> torch.Tensor:  # the agent's position at the fraction s of the frame
                return agent + s * move + (4 * s * (1 - s)) * bend
        here = agent
        for k in range(1, n + 1):
            there = agent_next if k == n else along(k / n)
            rel, rel_next = rotate(here - block, cos, -sin), rotate(there - block, cos, -sin)
            parts = [
                self.fourier(rel * c.object_scale),
                self.fourier(rel_next * c.object_scale),
                rotate(there - here, cos, -sin) * (c.velocity_scale * n),  # the agent's speed, per frame
                *last, block, torch.stack([cos, sin], -1),
            ]
            pose = torch.cat([block, angle[..., None]], -1)
            if c.contact_features or c.wall_features:
                parts.append(block_features(rel, rel_next, pose, c.contact_features, c.wall_features))
            out = self.block_net(torch.cat(parts, -1)) / n  # a 1/n part of the frame's motion
            block = block + rotate(out[..., 0:2] * c.block_step, cos, sin)
            angle = angle + out[..., 2] * c.angle_step
            if k < n:
                cos, sin, here = torch.cos(angle), torch.sin(angle), there
        return torch.cat([agent_next, block, angle[..., None]], -1)


class PoseStateDynamics(StateSpaceBackbone):
    """The pose-state world-model backbone (registered as ``"PoseState"``).

    >>> cfg = PoseStateConfig(latent_size=(8, 8), encoder_channels=(8, 8, 8), encoder_hidden=16,
    ...                       decoder_width=16, decoder_depth=2, dynamics_hidden=16, num_frames=6)
    >>> net = PoseStateDynamics(cfg)
    >>> ctx = torch.zeros(2, 2, 4, 8, 8)
    >>> mask = torch.zeros(2, 2, dtype=torch.bool)
    >>> net.rollout(ctx, torch.zeros(2, 2, 2), mask, torch.zeros(2, 5, 2)).shape
    torch.Size([2, 5, 4, 8, 8])
    """

    def __init__(self, config: PoseStateConfig) -> None:
        super().__init__()
        self.config = config
        self.tokens = config.token_scale > 0
        # on pose tokens the codec reads and draws the states: no encoder or decoder of our own
        self.encoder = None if self.tokens else PoseEncoder(config)
        self.decoder = None if self.tokens else SpriteDecoder(config)
        self.step_net = PoseStep(config)
        self._trace = InferenceTrace()  # of the step network (:meth:`_inference_step`; not pickled)

    #: run the step network as a TorchScript trace where it only infers (:meth:`_inference_step`)
    trace_step = True

    def compile_modules(self) -> list[nn.Module]:
        """The step network (``torch.compile`` fuses its substeps' small ops: ``pusht-pose-state``'s step
        at batch 1 on one CPU thread takes 1.5 ms compiled, 2.5 ms traced, 5.0 ms run op by op)."""
        return [self.step_net]

    def encode_states(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``(..., C, h, w)`` -> states ``(..., 5)``: the encoder's pose, refined by
        ``config.refine_steps`` Adam steps on the decoder's squared latent error (on pose tokens:
        the token's state)."""
        lead = latents.shape[:-3]
        flat = latents.reshape(-1, *latents.shape[-3:])
        if self.tokens:
            return tokens_to_states(flat.float(), self.config.token_scale).reshape(*lead, STATE_DIM)
        flat = flat.to(self.decoder.cell_features.dtype)
        states = read_states(self.encoder, self.decoder, flat, self.config.refine_steps, self.config.refine_lr)
        return states.reshape(*lead, STATE_DIM)

    def refine(self, states: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """``states`` moved by Adam to lower ``|decode(states) - latents|^2``, each frame on its own."""
        if self.tokens:
            raise TypeError("a pose-token model has no decoder of its own: its codec refines what it reads")
        return refine_states(self.decoder, states, latents, self.config.refine_steps, self.config.refine_lr)

    def decode_states(self, states: torch.Tensor) -> torch.Tensor:
        """States ``(..., 5)`` -> latents ``(..., C, h, w)`` (on pose tokens: the states' tokens)."""
        lead = states.shape[:-1]
        flat = states.reshape(-1, STATE_DIM)
        if self.tokens:
            out = states_to_tokens(flat, self.config.token_scale)
        else:
            out = self.decoder(flat.to(self.decoder.cell_features.dtype))
        return out.reshape(*lead, *out.shape[1:])

    def step(self, prev: torch.Tensor, state: torch.Tensor, prev_action: torch.Tensor,
             action: torch.Tensor) -> torch.Tensor:
        """The next state, in ``state``'s dtype; the network runs in its weights' dtype (a model loaded
        in bfloat16 steps float32 states through a bfloat16 network). Outside training and autograd the
        step network runs as a TorchScript trace of itself (:meth:`_inference_step`)."""
        return self.stepper(prev, state, prev_action, action)(prev, state, prev_action, action)

    def stepper(self, prev: torch.Tensor, state: torch.Tensor, prev_action: torch.Tensor,
                action: torch.Tensor) -> Callable[..., torch.Tensor]:
        """:meth:`step` with the network (or its trace) found once, for a rollout's steps."""
        dtype = self.step_net.agent_linear.weight.dtype
        net = self._inference_step(tuple(t.to(dtype) for t in (prev, state, prev_action, action)))

        def step(prev: torch.Tensor, state: torch.Tensor, prev_action: torch.Tensor,
                 action: torch.Tensor) -> torch.Tensor:
            return net(prev.to(dtype), state.to(dtype), prev_action.to(dtype), action.to(dtype)).to(state.dtype)
        return step

    def _inference_step(self, args: tuple[torch.Tensor, ...]) -> nn.Module:
        """The step network, or where it only infers (eval mode, no autograd, not compiled) its
        TorchScript trace: the same operations in the same order, bit for bit (tested), run without
        Python between them, which halves a frame's step at batch 1 on one CPU thread (eight substeps
        of small tensor operations). Traced again (in about 0.1 s) whenever the network, its weights or
        the inputs' dtype or device change; where tracing fails, the network itself."""
        net = self.step_net
        if (not self.trace_step or net.training or torch.is_grad_enabled()
                or getattr(net, "_compiled_call_impl", None) is not None):
            return net
        return self._trace(net, args)

    def unknown_prev_action(self, state: torch.Tensor, last_action: torch.Tensor) -> torch.Tensor:
        """After a reset the agent is at rest: its target was where it stands."""
        return state[..., 0:2].to(last_action.dtype)


def make_pose_state(config: dict[str, Any]) -> PoseStateDynamics:
    """The backbone registry's factory of ``"PoseState"``: a :class:`PoseStateDynamics` of a ``backbone_config`` entry."""
    return PoseStateDynamics(PoseStateConfig.from_dict(config))
