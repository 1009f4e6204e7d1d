"""Env families and Gymnasium registration.

An env family (one module in ``envs/``) says how to build its world model, which reward head and
initial-state source it uses by default, and its episode length. :func:`register_family`
registers its Gymnasium id with both an ``entry_point`` (:class:`WorldModelEnv`) and a
``vector_entry_point`` (:class:`WorldModelVectorEnv`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium as gym
import torch

from world_gym.initial_states import InitialStateSource
from world_gym.reward_models import RewardHead, make_reward_head
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


FAMILIES: dict[str, EnvFamily] = {}


def register_family(family: EnvFamily) -> None:
    """Register ``family`` and its Gymnasium id (single and vector entry points)."""
    FAMILIES[family.name] = family
    if family.env_id in gym.registry:
        return
    gym.register(
        id=family.env_id,
        entry_point="world_gym.env:WorldModelEnv",
        vector_entry_point="world_gym.vector_env:WorldModelVectorEnv",
        kwargs={"family": family.name},
    )


def get_family(name: str) -> EnvFamily:
    if name not in FAMILIES:
        raise ValueError(f"unknown env family {name!r}; registered: {sorted(FAMILIES)}")
    return FAMILIES[name]


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
    model: str | WorldModel | None = None,
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
    report_timing: bool = False,
    **family_kwargs: Any,
) -> EnvParts:
    """Resolve env arguments against the family's defaults (shared by the single and vector env)."""
    fam = get_family(family) if family is not None else None
    device = device or default_device()
    if isinstance(model, WorldModel):
        if family_kwargs:
            raise TypeError(f"unexpected arguments with a WorldModel instance: {sorted(family_kwargs)}")
        wm = model.to(device)
    elif isinstance(model, str):
        if family_kwargs:
            raise TypeError(f"unexpected arguments with a model directory: {sorted(family_kwargs)}")
        wm = WorldModel.from_pretrained(model, device=device, dtype=dtype)
    elif fam is not None:
        wm = fam.make_model(device=device, dtype=dtype, **family_kwargs)
    else:
        raise ValueError("give either an env family or a model (WorldModel or directory)")
    if codec_dtype is not None:
        wm.codec.to(codec_dtype)
    if decoder is not None:
        wm.codec.decoder = decoder
    wm.set_passes(frames_per_pass, clip_padding)
    wm.eval()
    chunk = chunk_size or (fam.chunk_size if fam and fam.chunk_size else None) or wm.config.chunk_size
    if chunk < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk}")
    head_kwargs = dict(reward_model_kwargs or {})
    if fam is not None and (reward_model is None or reward_model == fam.reward_model):
        head_kwargs = {**fam.reward_model_kwargs, **head_kwargs}
    head = make_reward_head(reward_model, default=fam.reward_model if fam else "zero", **head_kwargs)
    head.to(device)
    if initial_states is None and fam is not None and fam.initial_states is not None:
        initial_states = fam.initial_states()
    return EnvParts(
        model=wm,
        reward_head=head,
        initial_states=initial_states,
        chunk_size=chunk,
        max_episode_frames=max_episode_frames if max_episode_frames is not None else (fam.max_episode_frames if fam else None),
        task=task if task is not None else (fam.task if fam else None),
        num_inference_steps=num_inference_steps,
        sampler=sampler,
        report_timing=report_timing,
    )
