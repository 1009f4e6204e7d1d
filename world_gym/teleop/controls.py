"""Keyboard and mouse to actions: one controller per kind of action space.

A controller receives pygame events (:meth:`handle`) and gives one action per display tick
(:meth:`action`), in the env's units:

- :class:`MouseTarget` (Push-T, absolute targets in ``[0, 512]^2``): the mouse position over the
  imagined frame is the agent's target, as in gym-pusht's human mode; arrow keys nudge it. The
  target starts where the agent is drawn in the first frame, so no input holds the agent still.
- :class:`DeltaKeys` (Language-Table, 2-D end-effector deltas): arrows or WASD, one fixed step per
  frame while held, as the IRASim keyboard application.
- :class:`ArmKeys` (RT-1 / Bridge, 7-D: ``dx, dy, dz, droll, dpitch, dyaw, gripper``): see
  :data:`ARM_KEYS`.

Keys are tracked through KEYDOWN / KEYUP events (not ``pygame.key.get_pressed``), so scripted
events posted with ``pygame.event.post`` drive a controller exactly as a keyboard does.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pygame

from world_gym.action_spec import ActionSpec


class Controller(Protocol):
    """Turns input events into one action per display tick."""

    help_lines: list[str]

    def reset(self, frame: np.ndarray) -> None:
        """A new episode starts from ``frame`` (``(H, W, 3)`` uint8)."""

    def handle(self, event: pygame.event.Event) -> None:
        """Take one pygame event into account."""

    def action(self) -> np.ndarray:
        """The action for this tick, ``(action_dim,)`` float32 within the action space."""


class _HeldKeys:
    def __init__(self) -> None:
        self.held: set[int] = set()

    def track(self, event: pygame.event.Event) -> None:
        if event.type == pygame.KEYDOWN:
            self.held.add(event.key)
        elif event.type == pygame.KEYUP:
            self.held.discard(event.key)


class MouseTarget(_HeldKeys):
    """Absolute 2-D targets from the mouse over the frame area, arrows nudging (Push-T).

    Args:
        spec: the action spec (2-D, finite bounds).
        frame_rect: ``(left, top, width, height)`` of the frame on screen, in window pixels; a
            mouse position maps linearly to ``[low, high]`` (x from the column, y from the row, as
            gym-pusht draws its workspace).
        nudge: action units an arrow key press moves the target.
    """

    def __init__(self, spec: ActionSpec, frame_rect: tuple[int, int, int, int], nudge: float = 8.0) -> None:
        super().__init__()
        if spec.dim != 2 or not np.all(np.isfinite(spec.low_array)) or not np.all(np.isfinite(spec.high_array)):
            raise ValueError(f"MouseTarget needs a bounded 2-D action space, got dim={spec.dim}, "
                             f"low={spec.low}, high={spec.high}")
        self.low, self.high = spec.low_array, spec.high_array
        self.rect = frame_rect
        self.nudge = float(nudge)
        self.target = (self.low + self.high) / 2
        self.help_lines = ["mouse: agent target", "arrows: nudge target"]

    def to_action(self, pos: tuple[int, int]) -> np.ndarray:
        """The target for a window position (clipped to the frame)."""
        left, top, width, height = self.rect
        rel = np.array([(pos[0] - left) / width, (pos[1] - top) / height], np.float64)
        return np.clip(self.low + rel * (self.high - self.low), self.low, self.high).astype(np.float32)

    def to_window(self, target: np.ndarray) -> tuple[int, int]:
        """The window position of a target (inverse of :meth:`to_action`)."""
        left, top, width, height = self.rect
        rel = (np.asarray(target, np.float64) - self.low) / (self.high - self.low)
        return int(round(left + rel[0] * width)), int(round(top + rel[1] * height))

    def reset(self, frame: np.ndarray) -> None:
        center = (self.low + self.high) / 2
        if frame.shape[:2] and tuple(self.high) == (512.0, 512.0):
            from world_gym.envs.pusht.pixels import estimate_agent_pos

            self.target = np.clip(estimate_agent_pos(frame, fallback=center), self.low, self.high).astype(np.float32)
        else:
            self.target = center.astype(np.float32)
        self.held.clear()

    def handle(self, event: pygame.event.Event) -> None:
        self.track(event)
        if event.type == pygame.MOUSEMOTION:
            left, top, width, height = self.rect
            if left <= event.pos[0] < left + width and top <= event.pos[1] < top + height:
                self.target = self.to_action(event.pos)
        elif event.type == pygame.KEYDOWN and event.key in _ARROWS:
            self.target = np.clip(self.target + self.nudge * np.asarray(_ARROWS[event.key]), self.low, self.high)

    def action(self) -> np.ndarray:
        return np.asarray(self.target, np.float32).copy()


_ARROWS = {pygame.K_LEFT: (-1.0, 0.0), pygame.K_RIGHT: (1.0, 0.0), pygame.K_UP: (0.0, -1.0), pygame.K_DOWN: (0.0, 1.0)}


class DeltaKeys(_HeldKeys):
    """2-D deltas while keys are held (Language-Table): W/up = -x, S/down = +x, A/left = -y, D/right = +y.

    The signs follow the IRASim Language-Table application (``world_gym.envs.languagetable``'s
    ``KEYBOARD_ACTIONS``); no key held gives a zero action.

    Args:
        spec: the action spec (2-D).
        step: action units per frame while a key is held.
    """

    KEYS = {pygame.K_w: (-1, 0), pygame.K_UP: (-1, 0), pygame.K_s: (1, 0), pygame.K_DOWN: (1, 0),
            pygame.K_a: (0, -1), pygame.K_LEFT: (0, -1), pygame.K_d: (0, 1), pygame.K_RIGHT: (0, 1)}

    def __init__(self, spec: ActionSpec, step: float = 0.0375) -> None:
        super().__init__()
        if spec.dim != 2:
            raise ValueError(f"DeltaKeys needs a 2-D action space, got dim={spec.dim}")
        self.low, self.high, self.step = spec.low_array, spec.high_array, float(step)
        self.help_lines = ["W/S or up/down: -x/+x", "A/D or left/right: -y/+y"]

    def reset(self, frame: np.ndarray) -> None:
        self.held.clear()

    def handle(self, event: pygame.event.Event) -> None:
        self.track(event)

    def action(self) -> np.ndarray:
        delta = np.zeros(2, np.float64)
        for key in self.held:
            delta += self.KEYS.get(key, (0, 0))
        return np.clip(np.clip(delta, -1, 1) * self.step, self.low, self.high).astype(np.float32)


ARM_KEYS: dict[str, tuple[int, float]] = {
    "w": (0, 1.0), "s": (0, -1.0),    # dx
    "a": (1, 1.0), "d": (1, -1.0),    # dy
    "r": (2, 1.0), "f": (2, -1.0),    # dz
    "u": (3, 1.0), "o": (3, -1.0),    # droll
    "i": (4, 1.0), "k": (4, -1.0),    # dpitch
    "j": (5, 1.0), "l": (5, -1.0),    # dyaw
}
"""7-D arm keys: key -> (action dimension, sign). G toggles the gripper (dimension 6: 0 open, 1 closed)."""


class ArmKeys(_HeldKeys):
    """7-D arm motion (RT-1 / Bridge): :data:`ARM_KEYS` while held, G toggles the gripper.

    Args:
        spec: the action spec (7-D).
        step: translation per frame (env units, metres for the IRASim models).
        rotation_step: rotation per frame (radians).
    """

    def __init__(self, spec: ActionSpec, step: float = 0.01, rotation_step: float = 0.05) -> None:
        super().__init__()
        if spec.dim != 7:
            raise ValueError(f"ArmKeys needs a 7-D action space, got dim={spec.dim}")
        self.low, self.high = spec.low_array, spec.high_array
        self.steps = np.array([step] * 3 + [rotation_step] * 3, np.float64)
        self.gripper = 0.0
        self.keys = {getattr(pygame, f"K_{name}"): value for name, value in ARM_KEYS.items()}
        self.help_lines = ["W/S x  A/D y  R/F z", "U/O roll  I/K pitch  J/L yaw", "G: gripper open/close"]

    def reset(self, frame: np.ndarray) -> None:
        self.held.clear()
        self.gripper = 0.0

    def handle(self, event: pygame.event.Event) -> None:
        self.track(event)
        if event.type == pygame.KEYDOWN and event.key == pygame.K_g:
            self.gripper = 1.0 - self.gripper

    def action(self) -> np.ndarray:
        motion = np.zeros(6, np.float64)
        for key in self.held:
            if key in self.keys:
                dim, sign = self.keys[key]
                motion[dim] = sign
        action = np.append(motion * self.steps, self.gripper)
        return np.clip(action, self.low, self.high).astype(np.float32)


def make_controller(spec: ActionSpec, frame_rect: tuple[int, int, int, int], **kwargs: Any) -> Controller:
    """The controller for an action spec: bounded 2-D -> :class:`MouseTarget` when its range is
    wide (absolute targets), else :class:`DeltaKeys`; 7-D -> :class:`ArmKeys`.

    Raises:
        ValueError: no controller for this action space.
    """
    low, high = spec.low_array, spec.high_array
    if spec.dim == 2 and np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low >= 0) \
            and np.all(high - low > 1.0):
        return MouseTarget(spec, frame_rect, **kwargs)
    if spec.dim == 2:
        return DeltaKeys(spec, **kwargs)
    if spec.dim == 7:
        return ArmKeys(spec, **kwargs)
    raise ValueError(f"no teleop controller for a {spec.dim}-D action space (have: 2-D targets, 2-D deltas, 7-D arm)")
