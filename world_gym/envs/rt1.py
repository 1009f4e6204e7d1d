"""RT-1 (IRASim official weights), registered as ``IRASim-RT1-v0``.

## Description

The IRASim-XL/2 world model the authors trained on the RT-1 (Fractal) data of a mobile
manipulator. Load it after converting the official checkpoint once (``docs/irasim_checkpoints.md``):
``gym.make("IRASim-RT1-v0", checkpoint=DIR)``.

## Action Space

``Box(-inf, inf, (15, 7), float32)``: per frame, the end-effector motion relative to its previous
pose (``dx, dy, dz`` in that pose's frame, ``droll, dpitch, dyaw``) and the continuous gripper
state reached, as the release computes them from the recorded states
(:func:`~world_gym.envs.irasim_official.arm_actions`). The model sees them scaled by
``[20] * 6 + [1]``. ``chunk_size=1`` gives ``(7,)``.

## Observation Space

``Box(0, 255, (256, 320, 3), uint8)``: the last imagined frame.

## Rewards

No task reward by default (``reward_model="zero"``).

## Starting State

``reset(options={"initial_frame": frame})`` with a 256x320 frame, ``options={"episode": i}`` for
a benchmark episode found through ``$WORLD_GYM_IRASIM_DATA``, or no options to draw one.

## Arguments

As ``IRASim-LanguageTable-v0``: ``checkpoint``, ``variant``, ``vae``, ``sampler``,
``num_inference_steps`` and the common world-model env arguments.

## Version History

- v0: official IRASim RT-1 checkpoints (frame-ada and video-ada).
"""

from __future__ import annotations

from world_gym.envs.irasim_official import make_family
from world_gym.registration import register_family

ENV_ID = "IRASim-RT1-v0"
DATASET = "rt1"
FRAME_SIZE = (256, 320)

FAMILY = make_family("rt1", ENV_ID, DATASET, "IRASim-XL/2 trained on RT-1 (official weights, converted).")
register_family(FAMILY)
