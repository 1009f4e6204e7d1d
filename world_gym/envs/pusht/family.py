"""Push-T: the world-model twin of ``gym_pusht/PushT-v0`` (pymunk), registered as ``IRASim-PushT-v0``
and ``PoseState-PushT-v0``.

Conventions copy the ground-truth env so that one policy runs unchanged in both: actions are
absolute agent targets in ``[0, 512]^2`` (float32), observations 96x96x3 uint8 frames at 10 Hz,
episodes at most 300 frames. The default world model, ``pusht-irasim-pose``, is an IRASim Frame-Ada
DiT trained on gym-pusht episodes whose latent frames are poses: a pose codec
(:mod:`world_gym.envs.pusht.pose_codec`) reads the agent's and the block's pose off each frame and draws
them back with a learned sprite renderer (:mod:`world_gym.envs.pusht.sprite_renderer`), and the DiT
denoises one pose token per frame (its card and fidelity figures: ``docs/models/pusht-irasim-pose.md``).
``model="tiny-pusht"`` is a tiny random-weight model for tests; the earlier IRASim model on pixel
latents (24x24x4 per frame) is not shipped but kept in the repository
(``model="experiments/models/pusht-irasim-mini"`` from a checkout). ``PoseState-PushT-v0`` is the same
env on ``pusht-pose-state``: the same pose codec with a deterministic next-frame step instead of the
DiT (:mod:`world_gym.envs.pusht.pose_state`). ``IRASim-PushT-v0``'s default reward head, ``resnet_iou``,
reads gym-pusht's coverage off each frame and applies gym-pusht's reward ``clip(coverage / 0.95, 0, 1)``
and success ``coverage > 0.95`` (its measured error is in ``docs/reward_heads.md``); its re-render fit,
which is for gym-pusht's own frames, is off in these envs unless ``reward_model_kwargs`` turns it on.
``PoseState-PushT-v0``'s default, ``pusht_pose_coverage``, computes the same reward and success exactly
from the imagined pose tokens the frames are drawn from (``resnet_iou`` for a model on other latents).

The initial-state source holds the first frames of ``gym_pusht/PushT-v0`` reset with seeds
``0..N-1`` (shipped in the package, so ``reset`` needs neither gym-pusht nor a dataset); with
gym-pusht installed, any other seed is rendered on demand: ``options={"episode": seed}``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from world_gym.action_spec import ActionSpec
from world_gym.assets import ASSETS_DIR, bundled_model_path
from world_gym.backbones import register_backbone
from world_gym.backbones.irasim import IRASimConfig
from world_gym.codecs import register_codec
from world_gym.codecs.vae import tiny_vae_config
from world_gym.envs.pusht.pose_codec import PoseCodec, make_pose_codec
from world_gym.envs.pusht.pose_state import make_pose_state
from world_gym.initial_states import FrameBank, InitialState
from world_gym.registration import EnvFamily, register_family
from world_gym.reward_models import register_reward_head
from world_gym.reward_models.resnet_iou import ResNetIoUReward
from world_gym.samplers import SamplerConfig
from world_gym.world_model import WorldModel, WorldModelConfig

ENV_ID = "IRASim-PushT-v0"
GROUND_TRUTH_ID = "gym_pusht/PushT-v0"
FRAME_SIZE = (96, 96)
FPS = 10
MAX_EPISODE_FRAMES = 300
TASK = "Push the T-shaped block onto the T-shaped target."
INITIAL_STATES_FILE = "pusht_initial_states.npz"
DEFAULT_MODEL = "pusht-irasim-pose"  # trained on gym-pusht data; card: docs/models/pusht-irasim-pose.md
POSE_ENV_ID = "PoseState-PushT-v0"
POSE_MODEL = "pusht-pose-state"  # the pose-state model; card: docs/models/pusht-pose-state.md

# The Push-T parts are found by name through this package's entry points (pyproject.toml); registering
# them here too keeps the family working from a checkout whose install predates those entry points.
register_backbone("PoseState", make_pose_state)
register_codec("pose", make_pose_codec)
register_reward_head("resnet_iou", ResNetIoUReward)

PUSHT_ACTIONS = ActionSpec(dim=2, low=[0.0, 0.0], high=[512.0, 512.0], scale=1 / 256, offset=256.0, names=["x", "y"])


def render_reset_frames(seeds: list[int]) -> np.ndarray:
    """First frames of ``gym_pusht/PushT-v0`` (pixels, 96x96) reset with each seed (needs gym-pusht)."""
    from world_gym.envs.pusht.ground_truth import initial_frame, make_pusht_env

    env = make_pusht_env()
    try:
        return np.stack([initial_frame(int(seed), env) for seed in seeds])
    finally:
        env.close()


class PushTInitialStates(FrameBank):
    """Shipped first frames of gym-pusht seeds ``0..N-1``; other seeds rendered with gym-pusht."""

    def get(self, episode: int) -> InitialState:
        if 0 <= episode < len(self):
            return super().get(episode)
        if episode < 0:
            raise IndexError(f"episode (gym-pusht seed) must be >= 0, got {episode}")
        try:
            frame = render_reset_frames([episode])[0]
        except ImportError as err:
            raise IndexError(
                f"episode {episode} is not among the {len(self)} shipped start frames; install gym-pusht "
                "(pip install 'world-gym[pusht]') to start from any seed"
            ) from err
        return InitialState(frame, {"seed": episode})


def make_ground_truth(**kwargs: Any) -> gym.Env:
    """gym-pusht as the evaluation harness's ground truth: state observations (no per-step frame
    rendering), frames drawn on demand by :func:`render_ground_truth` (needs gym-pusht).

    Args:
        **kwargs: :func:`~world_gym.envs.pusht.ground_truth.make_pusht_env` arguments
            (``max_episode_steps`` ...); ``obs_type`` defaults to ``"state"``.
    """
    from world_gym.envs.pusht.ground_truth import make_pusht_env  # gym-pusht is an optional dependency

    return make_pusht_env(**{"obs_type": "state", **kwargs})


def render_ground_truth(env: gym.Env) -> np.ndarray:
    """The 96 x 96 frame gym-pusht's ``obs_type="pixels"`` would return now (its own renderer)."""
    return env.unwrapped._render(visualize=False)


def load_initial_states() -> PushTInitialStates:
    bank = FrameBank.from_npz(ASSETS_DIR / INITIAL_STATES_FILE)
    return PushTInitialStates(bank.frames, bank.extras)


def write_initial_states(num: int = 64) -> None:
    """Regenerate the shipped start frames from gym-pusht seeds ``0..num-1``."""
    seeds = list(range(num))
    FrameBank(render_reset_frames(seeds), {"seed": np.asarray(seeds)}).save_npz(ASSETS_DIR / INITIAL_STATES_FILE)


def tiny_model_config() -> WorldModelConfig:
    """A tiny random-weight Push-T world model (tests, CPU demos): 24x24x4 latents, 2-block DiT."""
    vae = tiny_vae_config(latent_channels=4, block_out_channels=(32, 32, 64))
    backbone = IRASimConfig.preset("tiny", latent_size=(24, 24), num_frames=9, action_dim=2)
    return WorldModelConfig(
        backbone_config=backbone.to_dict(),
        codec={"vae": vae, "scaling_factor": 1.0},
        action=PUSHT_ACTIONS,
        frame_size=FRAME_SIZE,
        fps=FPS,
        chunk_size=8,
        history=1,
        sampler=SamplerConfig(name="ddim", num_inference_steps=10),
        metadata={"family": "pusht", "trained": False, "description": "random weights, for tests and demos"},
    )


def make_tiny_model(seed: int = 0) -> WorldModel:
    """Build the tiny model with deterministic random weights (what ships as ``tiny-pusht``)."""
    torch.manual_seed(seed)
    model = WorldModel(tiny_model_config())
    # adaLN-Zero leaves an untrained DiT predicting exactly zero noise; small random modulation
    # weights make the bundled demo model produce (meaningless) motion instead of a frozen picture.
    for name, param in model.backbone.named_parameters():
        if "adaLN_modulation" in name or "final_layer.linear" in name:
            torch.nn.init.normal_(param, std=0.02)
    return model.eval()


def make_model(
    device: str | torch.device = "cpu", dtype: torch.dtype | None = None, model_name: str = DEFAULT_MODEL,
    block_gate: bool | None = None, block_gate_walls: bool | None = None, **kwargs: Any
) -> WorldModel:
    """Load a shipped Push-T world model by name (``pusht-irasim-pose``, the default, ``pusht-pose-state``
    or ``tiny-pusht``).

    ``block_gate`` (``gym.make(..., block_gate=True)``) switches a pose model's untouched-block gate on
    or off (:class:`~world_gym.envs.pusht.pose_codec.PoseCodec`), ``block_gate_walls`` whether that gate
    also holds imagined blocks out of the walls; None keeps the model's setting.

    Raises:
        TypeError: an unknown argument, or ``block_gate``/``block_gate_walls`` for a model without a pose codec.
    """
    if kwargs:
        raise TypeError(f"unexpected arguments for {ENV_ID}: {sorted(kwargs)}")
    model = WorldModel.from_pretrained(bundled_model_path(model_name), device=device, dtype=dtype)
    for name, value in (("block_gate", block_gate), ("block_gate_walls", block_gate_walls)):
        if value is None:
            continue
        if not hasattr(model.codec, name):
            raise TypeError(f"{name} needs a model on pose tokens; {model_name!r} has a "
                            f"{type(model.codec).__name__}")
        setattr(model.codec, name, bool(value))
    return model


def _pose_reward_model(model: WorldModel) -> str | None:
    """``pusht_pose_coverage`` for a model on pose tokens (its frames are drawn from them, so the
    coverage of the token's block pose is the frame's, exactly, in 0.1 ms instead of the ResNet's 6)."""
    return "pusht_pose_coverage" if isinstance(model.codec, PoseCodec) else None


FAMILY = EnvFamily(
    name="pusht",
    env_id=ENV_ID,
    make_model=make_model,
    # on pose tokens (the shipped models) the exact pusht_pose_coverage; resnet_iou reads the pixels of any other
    reward_model="resnet_iou",
    choose_reward_model=_pose_reward_model,
    # the head's re-render fit is for gym-pusht's own frames: the sprite renderer's pass its palette
    # test, but no gym-pusht pose reproduces them exactly, so near the threshold it spent 6.6 s a
    # frame and fitted none of 16 (docs/models/resnet_iou.md)
    reward_model_kwargs={"render_fit": False},
    initial_states=load_initial_states,
    max_episode_frames=MAX_EPISODE_FRAMES,
    chunk_size=1,
    ground_truth_id=GROUND_TRUTH_ID,
    make_ground_truth=make_ground_truth,
    render_ground_truth=render_ground_truth,
    task=TASK,
    description="Push-T world model; drop-in for gym_pusht/PushT-v0 (pixels).",
    # world_gym.planning's defaults (module:attribute, imported on use; docs/planning.md)
    extra={"planning_objective": "world_gym.reward_models.pusht_latent_coverage:make_objective",
           "planning_simulator": "world_gym.envs.pusht.simulator_model:PushTSimulator",
           "planning_imagination": {"ensemble": 1, "frames_per_pass": 16}},
)
register_family(FAMILY)


def make_pose_model(device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                    model_name: str = POSE_MODEL, block_gate: bool | None = None, **kwargs: Any) -> WorldModel:
    """:func:`make_model` with ``pusht-pose-state`` as the default."""
    return make_model(device=device, dtype=dtype, model_name=model_name, block_gate=block_gate, **kwargs)


POSE_FAMILY = dataclasses.replace(
    FAMILY, name="pusht_pose", env_id=POSE_ENV_ID, make_model=make_pose_model,
    description="Push-T pose-state world model; drop-in for gym_pusht/PushT-v0 (pixels).",
)
register_family(POSE_FAMILY)
