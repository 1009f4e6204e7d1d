"""WorldModel: codec + dynamics backbone + sampler + action spec, saved as JSON + safetensors."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from world_gym.action_spec import ActionSpec
from world_gym.diffusion import NoiseSchedule, SamplerConfig, make_scheduler, sample_clip
from world_gym.models.codec import FastDecoder, LatentCodec
from world_gym.models.compact import CompactConfig, CompactDynamics
from world_gym.models.pose_codec import PoseCodec
from world_gym.models.pose_state import PoseStateConfig, PoseStateDynamics
from world_gym.models.sprite_renderer import SpriteRenderer
from world_gym.models.irasim import IRASim, IRASimConfig

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

BackboneFactory = Callable[[dict[str, Any]], nn.Module]
BACKBONES: dict[str, BackboneFactory] = {
    "IRASim": lambda cfg: IRASim(IRASimConfig.from_dict(cfg)),
    "Compact": lambda cfg: CompactDynamics(CompactConfig.from_dict(cfg)),
    "PoseState": lambda cfg: PoseStateDynamics(PoseStateConfig.from_dict(cfg)),
}


def register_backbone(name: str, factory: BackboneFactory) -> None:
    """Make a dynamics backbone class loadable by name from a world-model config.

    The backbone is called as ``backbone(x, t, actions, action_mask) -> epsilon`` over whole clips
    and must expose ``config.num_frames`` and ``config.latent_size``. A backbone with
    ``deterministic = True`` is not sampled: ``rollout_latents`` calls its
    ``rollout(context, context_actions, context_mask, actions)`` instead.
    """
    BACKBONES[name] = factory


@dataclass
class WorldModelConfig:
    """Everything needed to rebuild a world model, stored as ``config.json``.

    Attributes:
        backbone, backbone_config: registered backbone name and its hyper-parameters.
        codec: ``{"vae": AutoencoderKL config, "scaling_factor": float}``, and ``"fast_decoder":
            {"channels": [...]}`` when the model has a :class:`~world_gym.models.codec.FastDecoder`,
            and ``"pose": {...}`` when its latents are pose tokens (:class:`~world_gym.models.pose_codec.PoseCodec`),
            with ``"renderer": {...}`` when such a codec draws them with a
            :class:`~world_gym.models.sprite_renderer.SpriteRenderer`.
        action: the :class:`ActionSpec` (env units and scaling).
        frame_size: ``(H, W)`` of the RGB frames the model reads and writes.
        fps: frames per second of the data it was trained on.
        chunk_size: default number of actions per env step.
        history: clean conditioning frames per clip.
        schedule, sampler: training noise schedule and default sampler.
        clip_padding: None (a short chunk runs a short clip: models trained on variable clip
            lengths) or ``"zeros"`` / ``"repeat_last"`` (every pass runs a whole clip, the chunk padded
            with zero (normalised) actions or its last action; models trained on full clips only).
        frames_per_pass: at most this many frames are kept from each diffusion pass, however many
            actions a rollout or an env step has; None keeps the whole clip's (``num_frames -
            history``). A pass conditions on the frames just before it, so shorter passes re-anchor
            long rollouts more often; with ``clip_padding`` each pass still runs a whole clip.
        metadata: free-form (training data, card, env family).
    """

    backbone_config: dict[str, Any]
    codec: dict[str, Any]
    action: ActionSpec
    frame_size: tuple[int, int]
    backbone: str = "IRASim"
    fps: float = 10.0
    chunk_size: int = 1
    history: int = 1
    schedule: NoiseSchedule = field(default_factory=NoiseSchedule)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    clip_padding: str | None = None
    frames_per_pass: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.frame_size = tuple(self.frame_size)  # type: ignore[assignment]
        if self.history < 1:
            raise ValueError(f"history must be >= 1, got {self.history}")
        if self.clip_padding not in (None, "zeros", "repeat_last"):
            raise ValueError(f"clip_padding must be None, 'zeros' or 'repeat_last', got {self.clip_padding!r}")
        if self.frames_per_pass is not None and self.frames_per_pass < 1:
            raise ValueError(f"frames_per_pass must be None or >= 1, got {self.frames_per_pass}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "backbone_config": self.backbone_config,
            "codec": self.codec,
            "action": self.action.to_dict(),
            "frame_size": list(self.frame_size),
            "fps": self.fps,
            "chunk_size": self.chunk_size,
            "history": self.history,
            "schedule": self.schedule.to_dict(),
            "sampler": self.sampler.to_dict(),
            "clip_padding": self.clip_padding,
            "frames_per_pass": self.frames_per_pass,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "WorldModelConfig":
        d = dict(d)
        d["action"] = ActionSpec.from_dict(d["action"])
        d["schedule"] = NoiseSchedule(**d.get("schedule", {}))
        d["sampler"] = SamplerConfig(**d.get("sampler", {}))
        return cls(**d)


@dataclass
class RolloutOutput:
    """Result of :meth:`WorldModel.rollout`: ``latents (B, L, C, h, w)`` and, if decoded, ``frames (B, L, H, W, 3)``."""

    latents: torch.Tensor
    frames: np.ndarray | None = None


class WorldModel(nn.Module):
    """An action-conditioned video world model in latent space.

    >>> from world_gym.assets import bundled_model_path
    >>> wm = WorldModel.from_pretrained(bundled_model_path("tiny-pusht"))
    >>> start = np.zeros((2, 96, 96, 3), dtype=np.uint8)
    >>> out = wm.rollout(start, np.full((2, 5, 2), 256.0), num_inference_steps=2)
    >>> out.frames.shape
    (2, 5, 96, 96, 3)
    """

    def __init__(self, config: WorldModelConfig, backbone: nn.Module | None = None, codec: LatentCodec | None = None):
        super().__init__()
        if config.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {config.backbone!r}; registered: {sorted(BACKBONES)}")
        self.config = config
        self.backbone = backbone if backbone is not None else BACKBONES[config.backbone](config.backbone_config)
        self.codec = codec if codec is not None else codec_from_config(config.codec)
        if self.max_new_frames < 1:
            raise ValueError(
                f"backbone num_frames={self.backbone.config.num_frames} leaves no frame after history={config.history}"
            )

    def attach_fast_decoder(self, fast_decoder: FastDecoder) -> None:
        """Add a trained :class:`~world_gym.models.codec.FastDecoder` to the codec (``save_pretrained``
        then stores it, and frames decode with it by default)."""
        self.codec.attach_fast_decoder(fast_decoder)
        self.config.codec = {**self.config.codec, "fast_decoder": fast_decoder.config_dict()}

    def attach_renderer(self, renderer: SpriteRenderer) -> None:
        """Add a trained :class:`~world_gym.models.sprite_renderer.SpriteRenderer` to a pose codec
        (``save_pretrained`` then stores it, and frames are drawn with it by default)."""
        if not isinstance(self.codec, PoseCodec):
            raise TypeError(f"a renderer draws pose tokens; this model's codec is a {type(self.codec).__name__}")
        self.codec.attach_renderer(renderer)
        self.config.codec = {**self.config.codec, "renderer": renderer.config_dict()}

    @property
    def action_spec(self) -> ActionSpec:
        return self.config.action

    @property
    def history(self) -> int:
        return self.config.history

    @property
    def max_new_frames(self) -> int:
        """Frames generated by one diffusion pass (clip length minus history)."""
        return self.backbone.config.num_frames - self.config.history

    @property
    def frames_per_pass(self) -> int:
        """Frames kept from each diffusion pass (``config.frames_per_pass``, at most :attr:`max_new_frames`)."""
        return min(self.config.frames_per_pass or self.max_new_frames, self.max_new_frames)

    def set_passes(self, frames_per_pass: int | None = None, clip_padding: str | None = None) -> None:
        """Override ``config.frames_per_pass`` and ``config.clip_padding`` (None leaves one as it is;
        ``clip_padding="none"`` turns the padding off), validated as the config validates them."""
        changes: dict[str, Any] = {}
        if frames_per_pass is not None:
            changes["frames_per_pass"] = frames_per_pass
        if clip_padding is not None:
            changes["clip_padding"] = None if clip_padding == "none" else clip_padding
        if changes:
            self.config = replace(self.config, **changes)

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.backbone.parameters()).dtype

    def encode(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 ``(N, H, W, 3)`` -> latents ``(N, C, h, w)`` in the backbone's dtype."""
        expected = (*self.config.frame_size, 3)
        if frames.ndim != 4 or frames.shape[1:] != expected:
            raise ValueError(f"frames must have shape (N, {expected[0]}, {expected[1]}, 3), got {frames.shape}")
        return self.codec.encode(frames).to(self.dtype)

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Latents ``(..., C, h, w)`` -> uint8 frames ``(..., H, W, 3)``: a batch ``(N, C, h, w)``
        or clips ``(B, L, C, h, w)``."""
        lead = latents.shape[:-3]
        frames = self.codec.decode(latents.reshape(-1, *latents.shape[-3:]))
        return frames.reshape(*lead, *frames.shape[1:])

    def normalize_actions(self, actions: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Env-unit actions -> backbone units, as a tensor on the model's device."""
        arr = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        return torch.from_numpy(self.action_spec.normalize(arr)).to(self.device, self.dtype)

    @torch.no_grad()
    def rollout_latents(
        self,
        context: torch.Tensor,
        context_actions: torch.Tensor,
        context_mask: torch.Tensor,
        actions: torch.Tensor,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int | None = None,
        sampler: str | None = None,
    ) -> torch.Tensor:
        """Generate one latent frame per action, chaining clips in latent space.

        Args:
            context: ``(B, h, C, h_l, w_l)`` conditioning latents, ``h = config.history``.
            context_actions: ``(B, h, A)`` normalised actions that produced the context frames.
            context_mask: ``(B, h)`` bool, which context frames have a known action (the first
                frame of every clip is treated as having none, as in training).
            actions: ``(B, L, A)`` normalised actions, any ``L >= 1``.
            generator: CPU generator for the noise, or one per batch element.
            num_inference_steps, sampler: override the config's default sampler.

        Returns:
            ``(B, L, C, h_l, w_l)`` latents of the frames the actions produce.
        """
        if getattr(self.backbone, "deterministic", False):
            # a next-frame model without noise: any number of actions in one call; no sampler
            return self.backbone.rollout(context, context_actions, context_mask, actions)
        steps = num_inference_steps or self.config.sampler.num_inference_steps
        name = sampler or self.config.sampler.name
        options = self.config.sampler.options if name == self.config.sampler.name else None
        h = self.history
        b, n_actions = actions.shape[:2]
        ones = torch.ones(b, 1, dtype=torch.bool, device=self.device)
        # each clip the mean of k samples (SamplerConfig.ensemble); an env's k noises come from its generator
        k = self.config.sampler.ensemble
        generators = [g for g in generator for _ in range(k)] if isinstance(generator, list) else generator
        # a backbone may denoise each clip in its own coordinates (IRASim's pose_frame)
        to_frame = getattr(self.backbone, "to_clip_frame", lambda z, a: (z, a, None))
        from_frame = getattr(self.backbone, "from_clip_frame", lambda z, frame: z)
        outputs = []
        for start in range(0, n_actions, self.frames_per_pass):
            chunk = actions[:, start : start + self.frames_per_pass]
            n_new = chunk.shape[1]
            clip_actions = torch.cat([context_actions, self._pad_chunk(chunk)], dim=1)
            clip_mask = torch.cat([context_mask, ones.expand(b, clip_actions.shape[1] - h)], dim=1)
            clip_mask[:, 0] = False
            frame_context, frame_actions, frame = to_frame(context, clip_actions)
            new = sample_clip(
                self.backbone, frame_context.repeat_interleave(k, 0), frame_actions.repeat_interleave(k, 0),
                clip_mask.repeat_interleave(k, 0), make_scheduler(self.config.schedule, name, options), steps,
                generators,
            )[:, :n_new]
            new = from_frame(new.reshape(b, k, *new.shape[1:]).mean(dim=1), frame)
            outputs.append(new)
            context = torch.cat([context, new], dim=1)[:, -h:]
            context_actions = clip_actions[:, : h + n_new][:, -h:]
            context_mask = clip_mask[:, : h + n_new][:, -h:]
        return torch.cat(outputs, dim=1)

    def _pad_chunk(self, chunk: torch.Tensor) -> torch.Tensor:
        """Fill a short chunk up to a whole clip when the config asks for fixed-length clips.

        Models trained only on full clips (the released IRASim weights) see a short clip as out of
        distribution; they get the full clip with filler actions instead, and only the frames of the
        real actions are kept. Note that temporal attention lets the filler frames influence them.
        """
        mode, missing = self.config.clip_padding, self.max_new_frames - chunk.shape[1]
        if mode is None or missing == 0:
            return chunk
        filler = torch.zeros_like(chunk[:, :1]) if mode == "zeros" else chunk[:, -1:]
        return torch.cat([chunk, filler.expand(-1, missing, -1)], dim=1)

    @torch.no_grad()
    def rollout(
        self,
        initial: np.ndarray | torch.Tensor,
        actions: np.ndarray | torch.Tensor,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int | None = None,
        sampler: str | None = None,
        decode: bool = True,
    ) -> RolloutOutput:
        """Imagine the frames that a batch of action sequences produces from given start frames.

        Args:
            initial: uint8 frames ``(B, H, W, 3)`` or a history ``(B, h, H, W, 3)``, or latents
                ``(B, C, h_l, w_l)`` / ``(B, h, C, h_l, w_l)`` as a tensor. A shorter history than
                the model's is padded by repeating its first frame.
            actions: ``(B, L, A)`` in env units.
            generator, num_inference_steps, sampler: see :meth:`rollout_latents`.
            decode: also decode the latents to frames.
        """
        context, context_actions, context_mask = self.initial_context(initial)
        b = context.shape[0]
        acts = self.normalize_actions(actions)
        if acts.dim() != 3 or acts.shape[0] != b or acts.shape[2] != self.action_spec.dim:
            raise ValueError(f"actions must have shape ({b}, L, {self.action_spec.dim}), got {tuple(acts.shape)}")
        latents = self.rollout_latents(
            context, context_actions, context_mask, acts, generator, num_inference_steps, sampler
        )
        frames = None
        if decode:
            frames = self.decode(latents)
        return RolloutOutput(latents=latents, frames=frames)

    def initial_context(
        self, initial: np.ndarray | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The conditioning of a rollout from start frames (or latents; see :meth:`rollout`):
        ``history`` latents, their (zero) actions and an all-False action mask."""
        context = self._context_latents(initial)
        b, h = context.shape[:2]
        context_actions = torch.zeros(b, h, self.action_spec.dim, device=self.device, dtype=self.dtype)
        return context, context_actions, torch.zeros(b, h, dtype=torch.bool, device=self.device)

    def advance_context(
        self, context: torch.Tensor, context_actions: torch.Tensor, context_mask: torch.Tensor,
        latents: torch.Tensor, actions: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The conditioning after ``latents`` were generated from normalised ``actions`` ``(B, L, A)``:
        the last ``history`` latents, their actions and mask (True: each new frame has its action)."""
        h = self.history
        done = torch.ones(actions.shape[:2], dtype=torch.bool, device=context_mask.device)
        return (torch.cat([context, latents], dim=1)[:, -h:],
                torch.cat([context_actions, actions.to(context_actions.dtype)], dim=1)[:, -h:],
                torch.cat([context_mask, done], dim=1)[:, -h:])

    def _context_latents(self, initial: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(initial, torch.Tensor) and initial.dtype != torch.uint8:
            latents = initial.to(self.device, self.dtype)
            if latents.dim() == 4:
                latents = latents[:, None]
        else:
            frames = initial.cpu().numpy() if isinstance(initial, torch.Tensor) else np.asarray(initial)
            if frames.ndim == 4:
                frames = frames[:, None]
            if frames.ndim != 5:
                raise ValueError(f"initial frames must be (B, H, W, 3) or (B, h, H, W, 3), got {frames.shape}")
            b, n = frames.shape[:2]
            latents = self.encode(frames.reshape(b * n, *frames.shape[2:])).reshape(b, n, -1, *self._latent_hw)
        if latents.shape[1] > self.history:
            latents = latents[:, -self.history :]
        pad = self.history - latents.shape[1]
        return torch.cat([latents[:, :1].expand(-1, pad, -1, -1, -1), latents], dim=1) if pad else latents

    @property
    def _latent_hw(self) -> tuple[int, int]:
        return tuple(self.backbone.config.latent_size)  # type: ignore[return-value]

    def save_pretrained(self, directory: str | os.PathLike, backbone_dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (no pickle) into ``directory``.

        ``backbone_dtype`` (e.g. ``torch.bfloat16``) stores the backbone's floating-point weights in
        that dtype: half the file for weights that are bf16 already (``world-gym train shards``);
        :meth:`from_pretrained` loads them back into the model's own dtype.
        """
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        if backbone_dtype is not None:
            state = {k: v.to(backbone_dtype) if k.startswith("backbone.") and v.is_floating_point() else v
                     for k, v in state.items()}
        save_file(state, str(path / WEIGHTS_NAME), metadata={"format": "pt", "library": "world_gym"})
        return path

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
    ) -> "WorldModel":
        """Load a world-model directory (or a Hugging Face Hub repo id holding one).

        Loading is strict: a missing, unexpected or mis-shaped tensor raises an error naming it.

        Args:
            name_or_path: local directory, or ``"org/name"`` on the Hub (needs network).
            device: where to put the model.
            dtype: backbone dtype (e.g. ``torch.float16`` on GPU); the codec stays float32.
        """
        path = resolve_model_dir(name_or_path)
        config = WorldModelConfig.from_dict(json.loads((path / CONFIG_NAME).read_text()))
        model = cls(config)
        load_state_dict_strict(model, load_file(str(path / WEIGHTS_NAME)), source=str(path / WEIGHTS_NAME))
        model.eval().to(device)
        if dtype is not None:
            model.backbone.to(dtype)
        return model


def codec_from_config(codec: dict[str, Any]) -> LatentCodec:
    """The codec a world-model config's ``codec`` entry describes: a VAE :class:`LatentCodec`, or a
    :class:`~world_gym.models.pose_codec.PoseCodec` when it names a ``pose`` reader and drawer."""
    args = (codec["vae"], codec.get("scaling_factor"), codec.get("fast_decoder"))
    if "pose" in codec:
        return PoseCodec.from_config(*args, pose=codec["pose"], renderer=codec.get("renderer"))
    if "renderer" in codec:
        raise ValueError("a renderer draws poses: only a codec with a `pose` entry can have one")
    return LatentCodec.from_config(*args)


def resolve_model_dir(name_or_path: str | os.PathLike) -> Path:
    """A local directory as it is; otherwise a Hub repo id downloaded with ``huggingface_hub``."""
    path = Path(name_or_path)
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{path} is not a world-model directory: no {CONFIG_NAME}")
        return path
    name = str(name_or_path)
    if name.count("/") == 1 and not path.exists():
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=name, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME]))
    raise FileNotFoundError(f"no world-model directory at {name_or_path!r}")


def load_state_dict_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` that names every missing, unexpected and mis-shaped key in its error."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
        for k in sorted(set(own) & set(state))
        if own[k].shape != state[k].shape
    ]
    if missing or unexpected or shapes:
        lines = [f"weights in {source} do not match the model:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing[:20])}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
        if shapes:
            lines.append(f"  mis-shaped ({len(shapes)}): {'; '.join(shapes[:20])}")
        raise ValueError("\n".join(lines))
    module.load_state_dict(state, strict=True)
