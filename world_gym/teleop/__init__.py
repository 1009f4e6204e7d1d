"""Interactive teleop of a world-model env in a pygame window (extra ``teleop``: ``pip install 'world-gym[teleop]'``).

>>> from world_gym.teleop import TeleopSession  # doctest: +SKIP
>>> env = gym.make("IRASim-PushT-v0")  # doctest: +SKIP
>>> TeleopSession(env, "IRASim-PushT-v0", record="data/teleop").run()  # doctest: +SKIP

The window (:mod:`world_gym.teleop.app`), the input mapping per action space
(:mod:`world_gym.teleop.controls`); the command line is ``world-gym teleop``.
"""

from __future__ import annotations

import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame's import banner would precede the JSON output

try:
    import pygame  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError("world_gym.teleop needs pygame: pip install 'world-gym[teleop]'") from err

from world_gym.teleop.app import SESSION_KEYS, TeleopSession, TeleopStats
from world_gym.teleop.controls import ARM_KEYS, ArmKeys, Controller, DeltaKeys, MouseTarget, make_controller

__all__ = ["ARM_KEYS", "SESSION_KEYS", "ArmKeys", "Controller", "DeltaKeys", "MouseTarget", "TeleopSession",
           "TeleopStats", "make_controller"]
