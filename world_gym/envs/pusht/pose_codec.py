"""A codec whose latent is a frame's pose: one token of six numbers per frame.

:class:`PoseCodec` puts the pose-state model's reader and drawer (:mod:`world_gym.envs.pusht.pose_state`)
behind a VAE :class:`~world_gym.codecs.vae.LatentCodec`: ``encode`` turns frames into VAE latents,
reads the agent's and the block's pose from them (the :class:`PoseEncoder`, refined through the
decoder) and returns it as a ``(6, 1, 1)`` "latent frame"; ``decode`` draws the VAE latents of a
pose with the :class:`SpriteDecoder` and decodes those to pixels, or, with a
:class:`~world_gym.envs.pusht.sprite_renderer.SpriteRenderer` attached (``decoder="render"``, the
default then), draws the pose's pixels directly from learned sprites. Any latent-video backbone then
runs on poses unchanged: IRASim's DiT denoises a clip of one-token frames, one per action, so its
frame-level action conditioning acts on the frame's whole content (``IRASim-PushT-v0``).

A token is ``token_scale * (agent x, agent y, block x, block y, cos angle, sin angle)``, positions
in the action normalisation's units (``[0, 512]`` -> ``[-1, 1]``).

With ``agent_from_pixels`` the agent's position is read off the frame itself, as the centroid of its
colour (gym-pusht draws it as a disc of one blue, on top of everything): within 0.7 units of 512 of
the true position on held-out frames, where the learned encoder with its refinement lands 34-90 units
off on one frame in twenty (``experiments/NOTES.md``). The learned reader keeps the
block, and the agent of frames without that blue.

With ``block_gate`` on, the codec constrains what a backbone imagines (:attr:`PoseCodec.rollout_constraint`,
which :meth:`~world_gym.world_model.WorldModel.rollout_latents` applies after each pass): a block that
the agent's disc does not come near during a step keeps its pose exactly
(:func:`world_gym.envs.pusht.contact.freeze_untouched_block`), as gym-pusht's quasi-static block does.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from diffusers import AutoencoderKL

from world_gym.backbones.pose_frame import block_frame, from_block_frame  # noqa: F401  (re-exported)
from world_gym.codecs.vae import FastDecoder, LatentCodec
from world_gym.envs.pusht import metrics
from world_gym.envs.pusht.contact import BLOCK_GATE_MARGIN, freeze_untouched_block
from world_gym.envs.pusht.pixels import PushTFrameState
from world_gym.envs.pusht.sprite_renderer import SpriteRenderer, SpriteRendererConfig
from world_gym.envs.pusht.pose_state import (  # noqa: F401  (states_to_tokens, tokens_to_states: this module's API)
    TOKEN_CHANNELS,
    PoseEncoder,
    PoseStateConfig,
    SpriteDecoder,
    gauss_newton_states,
    read_states,
    refine_states,
    states_to_tokens,
    tokens_to_states,
)
from world_gym.tracing import InferenceTrace

# fewer agent-coloured pixels than this (of a disc of about 25 at 96 x 96): the learned encoder reads the agent
MIN_AGENT_PIXELS = 4
# up to this many frames, agent_from_pixels labels pixels directly (about 2 ms a frame) instead of
# through pusht_segment's lookup table
DIRECT_SEGMENT_FRAMES = 16
# whether a pose codec holds untouched blocks still when its config does not say (``pose.block_gate``):
# on, for the shipped pose models too (it raised their held-out fidelity and removed the drift of
# untouched blocks, docs/models/pusht-pose-state.md)
BLOCK_GATE_DEFAULT = True
# where a pose codec's reading of a start frame starts (``pose.block_reader``)
BLOCK_READERS = ("encoder", "rigid_fit", "rigid_search")
# how a pose codec fits what it read to the frame through its renderer (``pose.render_refine_method``)
RENDER_REFINE_METHODS = ("adam", "gauss_newton")
# the readers that fit a rigid T to the block's pixels (:class:`~world_gym.envs.pusht.pixels.PushTFrameState`)
RIGID_READERS = ("rigid_fit", "rigid_search")
# in a codec directory of pose tokens (`world-gym train pose-tokens`): the VAE and pose parts it was made with
POSE_CODEC_FILE = "pose_codec.json"


def agent_from_pixels(x: torch.Tensor, workspace: float = metrics.PUSHT_WORKSPACE) -> torch.Tensor:
    """gym-pusht frames ``(N, 3, H, W)`` in ``[-1, 1]`` -> the agent's position ``(N, 2)`` in the
    action normalisation's units: the centroid of its colour (:func:`world_gym.envs.pusht.metrics.pusht_segment`),
    NaN where fewer than ``MIN_AGENT_PIXELS`` pixels have it.

    >>> frames = -torch.ones(1, 3, 96, 96)
    >>> frames[0, :, 10:14, 60:64] = torch.tensor([65, 105, 225])[:, None, None] / 127.5 - 1
    >>> agent_from_pixels(frames)  # the square's centre, (62, 12) of 96, is (330.7, 64.0) of 512
    tensor([[ 0.2917, -0.7500]])
    >>> agent_from_pixels(-torch.ones(1, 3, 96, 96))
    tensor([[nan, nan]])
    """
    frames = LatentCodec.tensor_to_frames(x.detach())
    # the same labels either way; the lookup table costs a 16 MiB build (0.4-10 s) that a reset's one frame skips
    segment = metrics.palette_labels if len(frames) <= DIRECT_SEGMENT_FRAMES else metrics.pusht_segment
    mask = segment(frames) == metrics.AGENT
    centre = metrics.mask_centroid(mask) * (workspace / frames.shape[2])
    centre[mask.sum(axis=(1, 2)) < MIN_AGENT_PIXELS] = np.nan
    return torch.from_numpy((centre - workspace / 2) / (workspace / 2)).float().to(x.device)


def check_block_reader(reader: str, render_refine_steps: int) -> str:
    """``reader``, checked to be one of :data:`BLOCK_READERS` that works with ``render_refine_steps``."""
    if reader not in BLOCK_READERS:
        raise ValueError(f"block_reader must be one of {BLOCK_READERS}, got {reader!r}")
    if reader == "rigid_fit" and not render_refine_steps:
        raise ValueError("block_reader='rigid_fit' needs render_refine_steps > 0: the coarse fit alone is "
                         "8 px of 512 off at the 90th percentile (block_reader='rigid_search' adds a pattern search)")
    return reader


def check_render_refine(steps: int, lr: float, method: str) -> tuple[int, float, str]:
    """``(render_refine_steps, render_refine_lr, render_refine_method)``, checked: steps ``>= 0``, a
    positive rate and one of :data:`RENDER_REFINE_METHODS`."""
    steps, lr, method = int(steps), float(lr), str(method)
    if steps < 0 or not lr > 0:
        raise ValueError(f"render_refine_steps must be >= 0 and render_refine_lr > 0, got {steps} and {lr}")
    if method not in RENDER_REFINE_METHODS:
        raise ValueError(f"render_refine_method must be one of {RENDER_REFINE_METHODS}, got {method!r}")
    return steps, lr, method


def gate_distance(name: str, value: Any) -> float:
    """``value`` of the gate option ``name`` as a float, checked to be a distance (pixels of 512, ``>= 0``)."""
    value = float(value)
    if not value >= 0:
        raise ValueError(f"{name} is a distance in pixels of 512, >= 0; got {value}")
    return value


class PoseCodec(LatentCodec):
    """Frames <-> pose tokens ``(N, 6, 1, 1)`` through a VAE and the pose-state reader and drawer.

    Args:
        vae, scaling_factor, micro_batch, fast_decoder: the VAE codec (see :class:`LatentCodec`).
        pose: :class:`PoseStateConfig` fields of the encoder and decoder (``latent_size`` the VAE
            latents'; ``refine_steps``/``refine_lr`` the run-time refinement), ``token_scale``, and
            ``agent_from_pixels`` (read the agent from its colour; default False), ``block_gate``
            (hold a block that the agent does not touch still in rollouts; default
            ``BLOCK_GATE_DEFAULT``), ``block_gate_margin`` (pixels of 512; default
            :data:`~world_gym.envs.pusht.contact.BLOCK_GATE_MARGIN`), ``block_gate_deadband``
            (pixels of 512; default 0: off) and ``block_gate_walls`` (the gate also holds each imagined
            block out of the walls, :func:`~world_gym.envs.pusht.contact.hold_in_walls`; default False).
            ``block_gate`` and ``block_gate_walls`` can be switched on a loaded codec too.
            ``render_refine_steps``/``render_refine_lr`` (default 0 / 0.005): with a renderer, the read
            pose is then fitted to the frame itself through the renderer by that many Adam steps, the
            rate decaying along a half cosine (what the model draws from its start then matches the
            frame; :func:`~world_gym.envs.pusht.pose_state.refine_states`), or with
            ``render_refine_method="gauss_newton"`` (default ``"adam"``) by that many
            Levenberg-Marquardt iterations (:func:`~world_gym.envs.pusht.pose_state.gauss_newton_states`;
            the rate unused), which need a start within a pixel or two. ``block_reader`` (default
            ``"encoder"``): where that fit starts, the encoder's pose refined through the latent
            decoder, ``"rigid_fit"``: a rigid T fitted to the block's pixels at 72 angles
            (:class:`~world_gym.envs.pusht.pixels.PushTFrameState` without its pattern search, about
            5 ms), which needs the renderer's fit after it (alone it is 1.6 px of 512 off at the median,
            7 px at the 90th percentile), or ``"rigid_search"``: that fit followed by the reader's
            pattern search over position and angle (about 9 ms; 0.8 px at the median, 1.5 px at the
            90th percentile), from which a few renderer steps suffice; frames a rigid reader cannot
            read (no block or no agent in sight) are read by the encoder.
        renderer: an optional :class:`SpriteRenderer`; when there is one, ``decode`` draws with it
            unless ``decoder`` names another.

    >>> import numpy as np
    >>> from world_gym.codecs.vae import tiny_vae_config
    >>> codec = PoseCodec.from_config(tiny_vae_config(), pose={"latent_size": [8, 8], "refine_steps": 2})
    >>> tokens = codec.encode(np.zeros((3, 32, 32, 3), dtype=np.uint8))
    >>> tokens.shape, codec.decode(tokens).shape
    (torch.Size([3, 6, 1, 1]), (3, 32, 32, 3))
    """

    kind = "pose"
    decoder_kinds = ("fast", "vae", "render")
    decoder_hints = {**LatentCodec.decoder_hints, "render": "train one with `world-gym train pose-renderer`"}

    def __init__(self, vae: AutoencoderKL, scaling_factor: float | None = None, micro_batch: int = 64,
                 fast_decoder: FastDecoder | None = None, pose: dict[str, Any] | None = None,
                 renderer: SpriteRenderer | None = None) -> None:
        super().__init__(vae, scaling_factor, micro_batch, fast_decoder)
        fields = dict(pose or {})
        self.token_scale = float(fields.pop("token_scale", 4.0))
        self.agent_from_pixels = bool(fields.pop("agent_from_pixels", False))
        self.block_gate = bool(fields.pop("block_gate", BLOCK_GATE_DEFAULT))
        self.block_gate_margin = gate_distance("block_gate_margin", fields.pop("block_gate_margin", BLOCK_GATE_MARGIN))
        self.block_gate_deadband = gate_distance("block_gate_deadband", fields.pop("block_gate_deadband", 0.0))
        self.block_gate_walls = bool(fields.pop("block_gate_walls", False))
        self.render_refine_steps, self.render_refine_lr, self.render_refine_method = check_render_refine(
            fields.pop("render_refine_steps", 0), fields.pop("render_refine_lr", 0.005),
            fields.pop("render_refine_method", "adam"))
        self.block_reader = check_block_reader(str(fields.pop("block_reader", "encoder")), self.render_refine_steps)
        self._rigid_reader: PushTFrameState | None = None
        # the renderer's trace for render_refine_steps (autograd runs through it: unoptimized, bit for bit)
        self._render_trace = InferenceTrace(static_shapes=True, optimize=False)
        self._gate: _BlockGate | None = None  # constrain_rollout's, and its trace
        self._gate_trace = InferenceTrace(static_shapes=True)
        fields.setdefault("latent_channels", self.vae_channels)
        self.pose_config = PoseStateConfig(**fields)
        if self.pose_config.latent_channels != self.vae_channels:
            raise ValueError(f"pose config reads {self.pose_config.latent_channels} latent channels, "
                             f"the VAE has {self.vae_channels}")
        self.pose_encoder = PoseEncoder(self.pose_config)
        self.sprite = SpriteDecoder(self.pose_config)
        self.renderer: SpriteRenderer | None = None
        if renderer is not None:
            self.attach_renderer(renderer)

    @classmethod
    def from_config(cls, vae_config: dict[str, Any], scaling_factor: float | None = None,
                    fast_decoder: dict[str, Any] | None = None, pose: dict[str, Any] | None = None,
                    renderer: dict[str, Any] | None = None) -> "PoseCodec":
        """A pose codec with freshly initialised networks of the given configs."""
        codec = cls(AutoencoderKL.from_config(dict(vae_config)), scaling_factor, pose=pose)
        if fast_decoder is not None:
            codec.attach_fast_decoder(FastDecoder(codec.vae_channels, codec.downsample, fast_decoder["channels"]))
        if renderer is not None:
            codec.attach_renderer(SpriteRenderer(SpriteRendererConfig.from_dict(renderer)))
        return codec

    def attach_decoder(self, name: str, decoder: torch.nn.Module) -> tuple[str, dict[str, Any]]:
        """:meth:`LatentCodec.attach_decoder`, and ``"render"``: a :class:`SpriteRenderer` (stored as ``renderer``)."""
        if name == "render":
            if not isinstance(decoder, SpriteRenderer):
                raise TypeError(f"the render decoder is a SpriteRenderer, got {type(decoder).__name__}")
            self.attach_renderer(decoder)
            return "renderer", decoder.config_dict()
        return super().attach_decoder(name, decoder)

    def attach_renderer(self, renderer: SpriteRenderer) -> None:
        """Add (or replace) the sprite renderer, and decode with it."""
        self.renderer = renderer.to(self.device, self.dtype)
        self._decoder = "render"

    @property
    def decoders(self) -> tuple[str, ...]:
        return (*super().decoders, *(("render",) if self.renderer is not None else ()))

    @property
    def latent_channels(self) -> int:
        return TOKEN_CHANNELS

    def latent_size(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """One token per frame, whatever its size."""
        return 1, 1

    def config_dict(self) -> dict[str, Any]:
        out = {**super().config_dict(), "pose": {**self.pose_config.to_dict(), "token_scale": self.token_scale,
                                                 "agent_from_pixels": self.agent_from_pixels,
                                                 "block_gate": self.block_gate,
                                                 "block_gate_margin": self.block_gate_margin,
                                                 "block_gate_deadband": self.block_gate_deadband,
                                                 **({"block_gate_walls": True} if self.block_gate_walls else {}),
                                                 "render_refine_steps": self.render_refine_steps,
                                                 "render_refine_lr": self.render_refine_lr,
                                                 **({"render_refine_method": self.render_refine_method}
                                                    if self.render_refine_method != "adam" else {}),
                                                 **({"block_reader": self.block_reader}
                                                    if self.block_reader != "encoder" else {})}}
        if self.renderer is not None:
            out["renderer"] = self.renderer.config_dict()
        return out

    @property
    def rollout_constraint(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
        """:meth:`constrain_rollout` while ``block_gate`` is on, else None (what
        :meth:`~world_gym.world_model.WorldModel.rollout_latents` looks for)."""
        return self.constrain_rollout if self.block_gate else None

    def constrain_rollout(self, previous: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """Imagined pose tokens ``new`` ``(B, L, 6, 1, 1)`` after ``previous`` ``(B, h, 6, 1, 1)``, with the
        block held still at every step in which the agent's swept disc stays farther than
        ``block_gate_margin`` from it, or does not reach it and the step moves it by less than
        ``block_gate_deadband`` (:func:`~world_gym.envs.pusht.contact.freeze_untouched_block`), and with
        ``block_gate_walls`` each block held out of the walls it would go deeper into. Outside
        autograd it runs as a TorchScript trace of itself (the same tokens bit for bit, a quarter of the
        time at batch 1 on one CPU thread)."""
        options = (self.token_scale, self.block_gate_margin, self.block_gate_deadband, self.block_gate_walls)
        if torch.is_grad_enabled():
            return freeze_untouched_block(previous, new, *options)
        if self._gate is None or self._gate.options != options:
            self._gate = _BlockGate(*options)  # a new gate's trace is made again (the trace is keyed to the module)
        return self._gate_trace(self._gate, (previous, new))(previous, new)

    def encode_vae(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` in ``[-1, 1]`` -> the VAE's scaled latents."""
        return super().encode_tensor(x)

    def read_states(self, latents: torch.Tensor, refine_steps: int | None = None,
                    agent: torch.Tensor | None = None) -> torch.Tensor:
        """VAE latents ``(N, C, h, w)`` -> states ``(N, 5)``: the encoder's, refined through the decoder
        by ``refine_steps`` (default: the config's) Adam steps; ``agent`` as in :func:`read_states`."""
        cfg = self.pose_config
        steps = cfg.refine_steps if refine_steps is None else refine_steps
        return read_states(self.pose_encoder, self.sprite, latents.to(self.sprite.cell_features.dtype), steps,
                           cfg.refine_lr, agent)

    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` in ``[-1, 1]`` -> pose tokens ``(N, 6, 1, 1)`` (not differentiable: refined)."""
        rigid = self.block_reader in RIGID_READERS
        if rigid and self.render_refine_steps and self.renderer is None:
            raise ValueError(f"block_reader={self.block_reader!r} with render_refine_steps fits the read pose "
                             "through the renderer: attach one")
        agent = agent_from_pixels(x) if self.agent_from_pixels or rigid else None
        if rigid:
            states, read = self._fit_rigid(x, agent)
            if not read.all():
                states[~read] = self.read_states(self.encode_vae(x[~read]), agent=agent[~read]).to(states.dtype)
        else:
            states = self.read_states(self.encode_vae(x), agent=agent)
        if self.render_refine_steps and self.renderer is not None:
            fixed = None
            if agent is not None:  # the agent read off its colour stays where it was read
                fixed = torch.zeros_like(states, dtype=torch.bool)
                fixed[~torch.isnan(agent).any(dim=-1), 0:2] = True
            if self.render_refine_method == "gauss_newton":
                states = gauss_newton_states(self.renderer, states, x.to(states.dtype), self.render_refine_steps,
                                             fixed, trace=self._render_trace)
            else:
                states = refine_states(self.renderer, states, x.to(states.dtype), self.render_refine_steps,
                                       self.render_refine_lr, fixed, cosine=True, trace=self._render_trace)
        return states_to_tokens(states, self.token_scale)

    def _fit_rigid(self, x: torch.Tensor, agent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """States ``(N, 5)`` of frames ``x`` ``(N, 3, H, W)`` in ``[-1, 1]``: ``agent`` ``(N, 2)`` (pose units,
        NaN where unknown) and the rigid-T fit of the block (coarse, or with the pattern search for
        ``"rigid_search"``); and which rows were read ``(N,)``."""
        size = x.shape[-1]
        if x.shape[-2] != size:
            raise ValueError(f"block_reader={self.block_reader!r} reads square Push-T frames, got {tuple(x.shape[-2:])}")
        search = self.block_reader == "rigid_search"
        if self._rigid_reader is None or (self._rigid_reader.size, self._rigid_reader.refine) != (size, search):
            self._rigid_reader = PushTFrameState(size=size, supersample=1, refine=search)
        frames = LatentCodec.tensor_to_frames(x.detach())
        states = torch.zeros(len(x), 5, dtype=torch.float32)
        read = ~torch.isnan(agent).any(dim=-1).cpu()
        half = metrics.PUSHT_WORKSPACE / 2
        for i in range(len(x)):
            pose = self._rigid_reader.estimate(frames[i]).block_pose if read[i] else None
            if pose is None:
                read[i] = False
                continue
            states[i, 2:4] = torch.from_numpy((pose[:2] - half) / half)
            states[i, 4] = float(np.remainder(pose[2] + np.pi, 2 * np.pi) - np.pi)
        states[:, 0:2] = agent.float().cpu()
        return states.to(x.device), read.to(x.device)

    def decode_tensor(self, latents: torch.Tensor) -> torch.Tensor:
        """Pose tokens ``(N, 6, 1, 1)`` -> ``(N, 3, H, W)`` in about ``[-1, 1]``."""
        states = tokens_to_states(latents.to(self.sprite.cell_features.dtype), self.token_scale)
        if self._decoder == "render":
            step = self.micro_batch
            return torch.cat([self.renderer(states[i : i + step]) for i in range(0, len(states), step)])
        return super().decode_tensor(self.sprite(states))


class _BlockGate(torch.nn.Module):
    """:func:`~world_gym.envs.pusht.contact.freeze_untouched_block` with its options, as a module to trace."""

    def __init__(self, token_scale: float, margin: float, deadband: float, walls: bool) -> None:
        super().__init__()
        self.options = (token_scale, margin, deadband, walls)

    def forward(self, previous: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        return freeze_untouched_block(previous, new, *self.options)


def make_pose_codec(config: dict[str, Any]) -> PoseCodec:
    """The codec registry's factory of kind ``"pose"``: a :class:`PoseCodec` from a config entry
    (:meth:`PoseCodec.config_dict`'s keys: the VAE codec's, ``pose`` and ``renderer``)."""
    return PoseCodec.from_config(config["vae"], config.get("scaling_factor"), config.get("fast_decoder"),
                                 pose=config["pose"], renderer=config.get("renderer"))
