"""Env families and Gymnasium registration.

An env family (a module of a task package, such as :mod:`world_gym.envs.pusht`) says how to build
its world model, which reward head and initial-state source it uses by default, its episode length
and its ground-truth counterpart. :func:`register_family` registers its Gymnasium id with both an
``entry_point`` (:class:`WorldModelEnv`) and a ``vector_entry_point`` (:class:`WorldModelVectorEnv`).
Families are found by name in :data:`FAMILIES`, whose entry-point group ``world_gym.env_families``
lets a package declare its own (``name = "module:FAMILY"``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from world_gym.env_catalog import load_family, register_gym_id
from world_gym.initial_states import InitialStateSource
from world_gym.registry import Registry
from world_gym.reward_models import RewardHead, make_reward_head
from world_gym.samplers import SAMPLERS
from world_gym.validation import check_count
from world_gym.world_model import WorldModel


@dataclass
class EnvFamily:
    """How to build the parts of one registered world-model environment.

    Attributes:
        name: short family name (``"pusht"``).
        env_id: the Gymnasium id (``"IRASim-PushT-v0"``).
        make_model: ``(device=..., dtype=..., **family_kwargs) -> WorldModel``; receives the
            ``gym.make`` keyword arguments the env does not know (e.g. ``checkpoint=``).
        reward_model: name of the default reward head.
        reward_model_kwargs: its default keyword arguments in this family's envs, under the ones
            ``gym.make`` passes (used whenever the head is the family's ``reward_model``).
        initial_states: builds the default initial-state source, or None (then ``reset`` needs an
            ``initial_frame``).
        max_episode_frames: default episode length in frames (primitive actions), or None.
        chunk_size: default actions per step; None means the model's ``config.chunk_size``.
        ground_truth_id: the real simulator with the same conventions, when there is one.
        task: default instruction text given to reward heads.
        description: one line for listings.
        extra: further defaults that integrations read by key (the planning objective ...).
        make_ground_truth: builds the ground-truth env for evaluation, ``(**gym.make kwargs) -> Env``;
            None: ``gym.make(ground_truth_id, ...)``.
        render_ground_truth: ``(env) -> frame``, the observation frame of a ground-truth env whose
            observations are not frames (rendered on demand), or None.
        choose_reward_model: ``(model) -> name or None``: the default head for the model the env was
            built with, for families whose best head depends on the model (one that reads the reward
            off the model's latents, where a model has such latents); None (returned or set): the
            ``reward_model``. A head it names gets no ``reward_model_kwargs``.
    """

    name: str
    env_id: str
    make_model: Callable[..., WorldModel]
    reward_model: str = "zero"
    reward_model_kwargs: dict[str, Any] = field(default_factory=dict)
    initial_states: Callable[[], InitialStateSource] | None = None
    max_episode_frames: int | None = None
    chunk_size: int | None = None
    ground_truth_id: str | None = None
    task: str | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    make_ground_truth: Callable[..., gym.Env] | None = None
    render_ground_truth: Callable[[gym.Env], np.ndarray] | None = None
    choose_reward_model: Callable[[WorldModel], str | None] | None = None

    def default_reward_head(self, model: WorldModel) -> tuple[str, dict[str, Any]]:
        """The default reward head's name and keyword arguments for an env of ``model``."""
        chosen = self.choose_reward_model(model) if self.choose_reward_model is not None else None
        if chosen is not None and chosen != self.reward_model:
            return chosen, {}
        return self.reward_model, dict(self.reward_model_kwargs)


#: Env families by name: registered ones and the entry points of the ``world_gym.env_families`` group.
FAMILIES: Registry[EnvFamily] = Registry("env family", "world_gym.env_families")


def register_family(family: EnvFamily) -> None:
    """Register ``family`` and its Gymnasium id (single and vector entry points)."""
    FAMILIES.register(family.name, family)
    register_gym_id(family.env_id, family.name)


def get_family(name: str) -> EnvFamily:
    """The family ``name``: registered, declared as an entry point, or (from a checkout whose install
    predates those entry points) defined by a module of :data:`~world_gym.env_catalog.CATALOG`.

    Raises:
        ValueError: no family of that name (the message lists the known ones).
    """
    if name not in FAMILIES:
        load_family(name)
    return FAMILIES.get(name)


def default_device() -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class EnvParts:
    """The resolved pieces a world-model env runs on."""

    model: WorldModel
    reward_head: RewardHead
    initial_states: InitialStateSource | None
    chunk_size: int
    max_episode_frames: int | None
    task: str | None
    num_inference_steps: int | None
    sampler: str | None
    report_timing: bool


def build_env_parts(
    family: str | None = None,
    model: str | os.PathLike | WorldModel | None = None,
    chunk_size: int | None = None,
    reward_model: str | RewardHead | None = None,
    reward_model_kwargs: dict[str, Any] | None = None,
    initial_states: InitialStateSource | None = None,
    max_episode_frames: int | None = None,
    task: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    codec_dtype: torch.dtype | None = None,
    decoder: str | None = None,
    num_inference_steps: int | None = None,
    sampler: str | None = None,
    frames_per_pass: int | None = None,
    clip_padding: str | None = None,
    ensemble: int | None = None,
    report_timing: bool = False,
    compile: bool | dict[str, Any] = False,
    **family_kwargs: Any,
) -> EnvParts:
    """Resolve env arguments against the family's defaults (shared by the single and vector env).

    Every numeric setting is checked here, before the model runs: ``chunk_size``,
    ``num_inference_steps`` and ``max_episode_frames`` must be integers ``>= 1`` (or None for the
    default), ``chunk_size`` at most ``max_episode_frames``, and ``sampler`` a sampler that can
    sample the model.

    ``model`` is a :class:`WorldModel`, or a name as :meth:`WorldModel.from_pretrained` takes it:
    a shipped model (``"tiny-pusht"``), a local directory or a Hub repo id. ``model_name=`` is its
    deprecated alias.

    Raises:
        ValueError: a setting out of range, an unknown or incompatible sampler.
        FileNotFoundError: ``model`` names nothing that exists.
    """
    chunk_size = check_count("chunk_size", chunk_size)
    num_inference_steps = check_count("num_inference_steps", num_inference_steps)
    max_episode_frames = check_count("max_episode_frames", max_episode_frames)
    if sampler is not None and (not isinstance(sampler, str) or sampler not in SAMPLERS):
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS.names()}")
    if "model_name" in family_kwargs:
        warnings.warn("model_name= is deprecated; pass the shipped model's name as model=", DeprecationWarning,
                      stacklevel=3)
        if model is not None:
            raise TypeError("give model= or its deprecated alias model_name=, not both")
        model = family_kwargs.pop("model_name")
    fam = get_family(family) if family is not None else None
    device = device or default_device()
    if isinstance(model, WorldModel):
        if family_kwargs:
            raise TypeError(f"unexpected arguments with a WorldModel instance: {sorted(family_kwargs)}")
        wm = model.to(device)
    elif isinstance(model, (str, os.PathLike)):
        if family_kwargs:
            raise TypeError(f"unexpected arguments with model={model!r}: {sorted(family_kwargs)}")
        wm = WorldModel.from_pretrained(model, device=device, dtype=dtype)
    elif model is not None:
        raise TypeError(f"model must be a WorldModel, a shipped model's name, a directory or a Hub id, "
                        f"got {type(model).__name__}")
    elif fam is not None:
        wm = fam.make_model(device=device, dtype=dtype, **family_kwargs)
    else:
        raise ValueError("give either an env family or a model (WorldModel, shipped name, directory or Hub id)")
    if codec_dtype is not None:
        wm.codec.to(codec_dtype)
    if decoder is not None:
        wm.codec.decoder = decoder
    wm.set_passes(frames_per_pass, clip_padding, ensemble)
    wm.eval()
    if not isinstance(compile, (bool, dict)):
        raise TypeError(f"compile must be a bool or a dict of torch.compile arguments, got {type(compile).__name__}")
    if compile is not False:
        wm.compile(**(compile if isinstance(compile, dict) else {}))
    chunk = chunk_size or (fam.chunk_size if fam and fam.chunk_size else None) or wm.config.chunk_size
    if max_episode_frames is None and fam is not None:
        max_episode_frames = fam.max_episode_frames
    if max_episode_frames is not None and chunk > max_episode_frames:
        raise ValueError(f"chunk_size={chunk} exceeds max_episode_frames={max_episode_frames}: a step could "
                         f"never return all the frames it imagines; use chunk_size <= {max_episode_frames}")
    wm.check_sampling(num_inference_steps, sampler)
    head_kwargs = dict(reward_model_kwargs or {})
    if fam is not None:
        default, default_kwargs = fam.default_reward_head(wm)
        if reward_model is None or reward_model == default:
            head_kwargs = {**default_kwargs, **head_kwargs}
        elif reward_model == fam.reward_model:
            head_kwargs = {**fam.reward_model_kwargs, **head_kwargs}
    head = make_reward_head(reward_model, default=default if fam else "zero", **head_kwargs)
    head.to(device)
    if initial_states is None and fam is not None and fam.initial_states is not None:
        initial_states = fam.initial_states()
    return EnvParts(
        model=wm,
        reward_head=head,
        initial_states=initial_states,
        chunk_size=chunk,
        max_episode_frames=max_episode_frames,
        task=task if task is not None else (fam.task if fam else None),
        num_inference_steps=num_inference_steps,
        sampler=sampler,
        report_timing=report_timing,
    )
