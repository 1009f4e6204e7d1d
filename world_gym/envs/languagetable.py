"""Language-Table (IRASim official weights), registered as ``IRASim-LanguageTable-v0``.

## Description

The IRASim-XL/2 world model the authors trained on Language-Table (a UR5 pushing blocks on a
table, seen from a fixed camera). Load it after converting the official checkpoint once
(``docs/irasim_checkpoints.md``): ``gym.make("IRASim-LanguageTable-v0", checkpoint=DIR)``.

## Action Space

``Box(-0.1, 0.1, (15, 2), float32)``: end-effector ``(dx, dy)`` deltas per frame in metres, as in
the release's annotation files (the model sees them scaled by 20). ``chunk_size=1`` gives ``(2,)``.

## Observation Space

``Box(0, 255, (288, 512, 3), uint8)``: the last imagined frame.

## Rewards

No task reward by default (``reward_model="zero"``); pass a reward head with ``reward_model=``.

## Starting State

``reset(options={"initial_frame": frame})`` with a 288x512 frame (:func:`load_image` resizes any
image), ``options={"episode": i}`` for episode ``i`` of the benchmark data found through
``$WORLD_GYM_IRASIM_DATA``, or no options to draw an episode from it.

## Arguments

``checkpoint`` (converted directory or Hub id), ``variant`` (``frame_ada`` default, or
``video_ada``), ``vae`` (another decoder), ``sampler``/``num_inference_steps`` (default: the
authors' PNDM, 50 steps; ``sampler="ddim", num_inference_steps=10`` is about 6x faster), and the
common world-model env arguments (``chunk_size``, ``device``, ``dtype``, ...).

## Version History

- v0: official IRASim Language-Table checkpoints (frame-ada and video-ada).
"""

from __future__ import annotations

from world_gym.envs.irasim_official import ImageFrames, IRASimEpisodes, load_image, make_family
from world_gym.registration import register_family

ENV_ID = "IRASim-LanguageTable-v0"
DATASET = "languagetable"
FRAME_SIZE = (288, 512)

# Keyboard teleoperation as in the authors' application/languagetable.py: each key is one frame's
# action. Their model-unit step of 0.75 is 0.0375 m in env units (the model scales by 20).
KEY_STEP = 0.0375
KEYBOARD_ACTIONS: dict[str, tuple[float, float]] = {
    "w": (-KEY_STEP, 0.0),
    "s": (KEY_STEP, 0.0),
    "a": (0.0, -KEY_STEP),
    "d": (0.0, KEY_STEP),
    " ": (0.0, 0.0),
}

FAMILY = make_family(
    "languagetable", ENV_ID, DATASET, "IRASim-XL/2 trained on Language-Table (official weights, converted)."
)
register_family(FAMILY)

__all__ = ["ENV_ID", "FAMILY", "FRAME_SIZE", "KEYBOARD_ACTIONS", "ImageFrames", "IRASimEpisodes", "load_image"]
