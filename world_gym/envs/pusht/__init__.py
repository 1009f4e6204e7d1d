"""Push-T, the task package: everything specific to ``gym_pusht/PushT-v0`` and its world models.

========================  ================================================================
:mod:`.family`            the env family (``IRASim-PushT-v0``, ``PoseState-PushT-v0``), its
                          action spec, start frames and the tiny test model
:mod:`.ground_truth`      gym-pusht helpers: privileged state, coverage, seeded first frames
:mod:`.pixels`            the Push-T frame reader: agent and block poses off a 96x96 frame
:mod:`.metrics`           the Push-T palette: per-pixel labels and mask metrics
:mod:`.pose_codec`        the pose codec (frames <-> one pose token per frame)
:mod:`.sprite_renderer`   the learned renderer that draws a pose back into a frame
:mod:`.pose_state`        the deterministic pose-state backbone
:mod:`.train_pose`        the trainer of the pose codec's renderer and the pose-state model
:mod:`.simulator_model`   gym-pusht as a planning model (the real simulator imagining)
:mod:`.behaviours`        scripted behaviour families: the training mix and the stress set
========================  ================================================================

The Push-T reward heads and policies live in :mod:`world_gym.reward_models` and
:mod:`world_gym.policies` (``pusht_*``, ``resnet_iou``, ``render_fit``, the zoo); they are task-level
too. The core finds these parts by name (entry points), never by import. This ``__init__`` imports
nothing, so reading a frame with :mod:`.pixels` does not build the family.
"""
