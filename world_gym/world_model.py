"""WorldModel: codec + dynamics backbone + sampler + action spec, saved as JSON + safetensors."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from world_gym.action_spec import ActionSpec
from world_gym.backbones import BACKBONES, BackboneFactory, register_backbone  # noqa: F401  (re-exported)
from world_gym.codecs import FastDecoder, LatentCodec, codec_from_config  # noqa: F401  (codec_from_config: re-exported)
from world_gym.model_files import (  # noqa: F401  (re-exported: the loader's public names)
    CONFIG_NAME,
    START_ENCODINGS_NAME,
    WEIGHTS_NAME,
    StartEncodings,
    check_finite_latents,
    check_finite_weights,
    load_start_encodings,
    load_state_dict_strict,
    read_json,
    read_weights,
    resolve_model_dir,
)
from world_gym.samplers import SAMPLERS, ClipPlan, NoiseSchedule, SamplerConfig, make_sampler
from world_gym.validation import check_count

#: Keys every ``config.json`` must have (the others have defaults).
REQUIRED_CONFIG_KEYS = ("backbone_config", "codec", "action", "frame_size")

@dataclass
class WorldModelConfig:
    """Everything needed to rebuild a world model, stored as ``config.json``.

    Attributes:
        backbone, backbone_config: registered backbone name and its hyper-parameters.
        codec: the codec's entry, ``{"kind": name, ...}``, built by the codec registry
            (:func:`~world_gym.codecs.codec_from_config`): for kind ``"vae"``, ``{"vae": AutoencoderKL
            config, "scaling_factor": float}``, and ``"fast_decoder": {"channels": [...]}`` when the
            model has a :class:`~world_gym.codecs.vae.FastDecoder`. Other kinds add their own keys
            (the Push-T pose codec: ``"pose"``, ``"renderer"``); an entry without ``kind`` is read as
            :func:`~world_gym.codecs.codec_kind` says.
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
        """Rebuild a config from :meth:`to_dict`'s output.

        Raises:
            ValueError: ``d`` is not a dict, lacks a required key or has an unknown one.
        """
        if not isinstance(d, dict):
            raise ValueError(f"a world-model config is a JSON object, got {type(d).__name__}")
        missing = [k for k in REQUIRED_CONFIG_KEYS if k not in d]
        if missing:
            raise ValueError(f"config lacks the required keys {missing} (required: {list(REQUIRED_CONFIG_KEYS)})")
        unknown = sorted(set(d) - {f.name for f in cls.__dataclass_fields__.values()})
        if unknown:
            raise ValueError(f"config has unknown keys {unknown}")
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
        if backbone is None:
            # raises a ValueError that lists the known backbones and the entry-point group
            backbone = BACKBONES.get(config.backbone)(config.backbone_config)
        self.config = config
        self.backbone = backbone
        self.codec = codec if codec is not None else codec_from_config(config.codec)
        #: precomputed start-frame encodings (:mod:`world_gym.start_encodings`), read by from_pretrained
        self.start_encodings: StartEncodings | None = None
        if self.max_new_frames < 1:
            raise ValueError(
                f"backbone num_frames={self.backbone.config.num_frames} leaves no frame after history={config.history}"
            )

    def attach_decoder(self, name: str, decoder: nn.Module) -> None:
        """Add a trained extra decoder to the codec (``save_pretrained`` then stores it, and frames
        decode with it by default).

        Args:
            name: which of the codec's ``decoder_kinds`` it is (``"fast"``: a
                :class:`~world_gym.codecs.vae.FastDecoder`; a codec kind may add others, such as the
                Push-T pose codec's ``"render"``).
            decoder: the trained module.

        Raises:
            ValueError: the codec takes no decoder of that name.
        """
        key, entry = self.codec.attach_decoder(name, decoder)
        self.config.codec = {**self.config.codec, key: entry}

    def attach_fast_decoder(self, fast_decoder: FastDecoder) -> None:
        """``attach_decoder("fast", fast_decoder)``."""
        self.attach_decoder("fast", fast_decoder)

    def attach_renderer(self, renderer: nn.Module) -> None:
        """``attach_decoder("render", renderer)`` (a codec that draws its latents, such as the Push-T pose codec)."""
        self.attach_decoder("render", renderer)

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

    def set_passes(self, frames_per_pass: int | None = None, clip_padding: str | None = None,
                   ensemble: int | None = None) -> None:
        """Override ``config.frames_per_pass``, ``config.clip_padding`` and ``config.sampler.ensemble``
        (None leaves one as it is; ``clip_padding="none"`` turns the padding off), validated as the
        config validates them."""
        changes: dict[str, Any] = {}
        if ensemble is not None:
            changes["sampler"] = replace(self.config.sampler, ensemble=check_count("ensemble", ensemble))
        if frames_per_pass is not None:
            changes["frames_per_pass"] = frames_per_pass
        if clip_padding is not None:
            changes["clip_padding"] = None if clip_padding == "none" else clip_padding
        if changes:
            self.config = replace(self.config, **changes)

    def compile(self, **options: Any) -> "WorldModel":
        """Compile the backbone's per-call work with ``torch.compile`` (``options`` are its arguments,
        ``dynamic=False`` unless given), in place: the modules the backbone names in
        ``compile_modules()`` (a denoiser: itself).

        Compilation happens at the first call of each new input shape, a batch size of its own
        (40-60 s on one CPU thread for ``pusht-pose-state``'s step; it needs a C++ compiler on CPU),
        and is kept for the process; outputs match the eager ones to float rounding, not bit for bit.
        Static shapes: a kernel compiled for shapes that vary ran 16 envs at half the speed of one
        compiled for their batch. ``benchmarks/speed.py --set compile=true`` measures what it gains.

        Raises:
            ValueError: the backbone names no module to compile.
        """
        modules = self.backbone.compile_modules() if hasattr(self.backbone, "compile_modules") else [self.backbone]
        if not modules:
            raise ValueError(f"{type(self.backbone).__name__} names no module to compile")
        for module in modules:
            module.compile(**{"dynamic": False, **options})
        return self

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
        """Generate one latent frame per action with the model's sampler (:mod:`world_gym.samplers`).

        A clip sampler (the diffusion schedulers) chains clips in latent space; a backbone that names
        its own sampler (``"deterministic"``) is rolled out by it, whatever ``sampler`` says.

        A codec may constrain what the sampler imagines: when its ``rollout_constraint`` attribute is
        a callable ``(previous, new) -> new`` (previous: the ``(B, h, ...)`` latents before ``new``), the
        rollout runs one diffusion pass at a time, each pass's latents go through it, and the next pass
        is conditioned on what it returned (the Push-T pose codec holds a block that the agent does not
        touch still); a backbone whose ``constrained_rollout`` is True (the state-space backbones) takes
        it in its own rollout and applies it frame by frame. Without one, or with it None, the
        sampler runs all actions in one call.

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
        own = self._backbone_sampler()
        if own is not None:  # the backbone brings its own rollout: no sampling override applies
            sampler_ = make_sampler(own, self.config.schedule)
            steps = self.config.sampler.num_inference_steps
        else:
            steps, name = self.check_sampling(num_inference_steps, sampler)
            options = self.config.sampler.options if name == self.config.sampler.name else None
            sampler_ = make_sampler(name, self.config.schedule, options)
        plan = ClipPlan(history=self.history, frames_per_pass=self.frames_per_pass,
                        max_new_frames=self.max_new_frames, clip_padding=self.config.clip_padding,
                        ensemble=self.config.sampler.ensemble)
        constraint = getattr(self.codec, "rollout_constraint", None)
        if constraint is not None and own is not None and getattr(self.backbone, "constrained_rollout", False):
            return check_finite_latents(self.backbone.rollout(context, context_actions, context_mask, actions,
                                                              constraint=constraint))
        if constraint is None:
            latents = sampler_.rollout(self.backbone, context, context_actions, context_mask, actions, plan, steps,
                                       generator)
            return check_finite_latents(latents)
        passes, per_pass = [], 1 if own is not None else plan.frames_per_pass
        for start in range(0, actions.shape[1], per_pass):
            acts = actions[:, start : start + per_pass]
            new = sampler_.rollout(self.backbone, context, context_actions, context_mask, acts, plan, steps, generator)
            passes.append(constraint(context, new))
            context, context_actions, context_mask = self.advance_context(
                context, context_actions, context_mask, passes[-1], acts)
        return check_finite_latents(torch.cat(passes, dim=1))

    def _backbone_sampler(self) -> str | None:
        """The sampler the backbone names for itself (``sampler`` attribute; ``deterministic = True``
        is the older spelling of ``"deterministic"``), or None when the config's sampler applies."""
        own = getattr(self.backbone, "sampler", None)
        if isinstance(own, str):
            return own
        return "deterministic" if getattr(self.backbone, "deterministic", False) else None

    def check_sampling(self, num_inference_steps: int | None = None, sampler: str | None = None) -> tuple[int, str]:
        """Resolve and check a sampling override against this model (cheap: no backbone call).

        Args:
            num_inference_steps: denoising steps, ``>= 1``; None takes the config's.
            sampler: a sampler name of :data:`~world_gym.samplers.SAMPLERS`; None takes the config's.

        Returns:
            ``(steps, sampler name)`` as a rollout will use them.

        Raises:
            ValueError: steps below 1 or not an integer, an unknown sampler, or one that cannot
                sample this model (e.g. a scheduler without the model's ``prediction_type``); the
                message lists the samplers that can.
        """
        steps = check_count("num_inference_steps", num_inference_steps)
        steps = self.config.sampler.num_inference_steps if steps is None else steps
        name = sampler if sampler is not None else self.config.sampler.name
        if not isinstance(name, str) or name not in SAMPLERS:
            raise ValueError(f"unknown sampler {name!r}; choose one of {SAMPLERS.names()}")
        if self._backbone_sampler() is not None:
            return steps, name  # the backbone rolls itself out with its own sampler
        problem = self._sampler_problem(name, steps)
        if problem:
            supported = [n for n in sorted(SAMPLERS) if not self._sampler_problem(n, steps)]
            raise ValueError(
                f"sampler {name!r} cannot sample this model (prediction_type="
                f"{self.config.schedule.prediction_type!r}, {steps} steps): {problem}. "
                f"Samplers this model supports: {supported}"
            )
        return steps, name

    def _sampler_problem(self, name: str, steps: int) -> str | None:
        """Why sampler ``name`` fails on this model's schedule, found by two steps on a scalar; None if it works."""
        options = self.config.sampler.options if name == self.config.sampler.name else None
        key = (name, steps, repr(self.config.schedule), repr(options))
        cache = self.__dict__.setdefault("_sampler_problems", {})
        if key not in cache:
            cache[key] = self._probe_sampler(name, steps, options)
        return cache[key]

    def _probe_sampler(self, name: str, steps: int, options: dict[str, Any] | None) -> str | None:
        try:
            sampler = make_sampler(name, self.config.schedule, options)
        except (TypeError, ValueError) as err:
            return f"{type(err).__name__}: {err}"
        return sampler.problem(self.backbone, steps)

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
        """Write ``config.json`` and ``model.safetensors`` (no pickle) into ``directory``, and
        ``start_encodings.safetensors`` when the model has start encodings that its codec still gives.

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
        if self.start_encodings is not None and self.start_encodings.mismatch(self) is None:
            self.start_encodings.save(path / START_ENCODINGS_NAME)
        return path

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        start_encodings: bool = True,
    ) -> "WorldModel":
        """Load a world-model directory (or a Hugging Face Hub repo id holding one).

        Loading is strict: a missing, unexpected, mis-shaped or non-finite tensor, an unreadable
        config or weights file raise an error naming the file (and the tensor).

        Args:
            name_or_path: a shipped model's name (``"tiny-pusht"``, see
                :func:`~world_gym.assets.shipped_models`), a local directory, or ``"org/name"`` on
                the Hub (needs network); see :func:`resolve_model_dir`.
            device: where to put the model.
            dtype: backbone dtype (e.g. ``torch.float16`` on GPU); the codec stays float32.
            start_encodings: read the directory's ``start_encodings.safetensors`` if it has one
                (:mod:`world_gym.start_encodings`; one computed with another codec is ignored with a
                warning) into :attr:`start_encodings`.

        Raises:
            FileNotFoundError: no such directory, shipped name or file in the directory.
            ValueError: invalid JSON, a config without a required key, truncated or non-finite
                weights, weights that do not match the config, or a malformed start-encodings file.
        """
        path = resolve_model_dir(name_or_path)
        config = read_config(path / CONFIG_NAME)
        try:
            model = cls(config)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path / CONFIG_NAME} describes no buildable model: {type(err).__name__}: {err}") from err
        weights = path / WEIGHTS_NAME
        state = read_weights(weights)
        load_state_dict_strict(model, state, source=str(weights))
        if start_encodings:
            model.start_encodings = load_start_encodings(path, model)
        model.eval().to(device)
        if dtype is not None:
            model.backbone.to(dtype)
        return model


def read_config(path: Path) -> WorldModelConfig:
    """Parse a ``config.json``; every error names the file."""
    raw = read_json(path)
    try:
        return WorldModelConfig.from_dict(raw)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from err
