"""Helpers around gym-pusht, the ground-truth simulator behind the Push-T world model.

gym-pusht keeps its privileged state (agent, block and goal poses) in ``info`` and in the pymunk
bodies of ``env.unwrapped``. This module reads that state, reproduces gym-pusht's coverage (the
overlap of block and goal divided by the goal's area, thresholded at 0.95 for success) from a block
pose alone, and renders the first frame of a seeded episode.

Pose convention: a block pose ``(x, y, angle)`` is what gym-pusht reports in ``info["block_pose"]``,
i.e. pymunk's ``body.position`` (the world position of the T's local origin, the middle of the top
edge of its bar) and angle; block pose == goal pose is full coverage. pymunk rotates a body about its
centre of gravity (local ``(0, 45)``), so a pose must be applied angle first, then position.

>>> env = make_pusht_env()
>>> _, info = env.reset(seed=0)
>>> 0.0 <= coverage(info["block_pose"]) <= 1.0
True
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=UserWarning)  # pygame's pkg_resources notice
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import gym_pusht  # noqa: F401  (registers gym_pusht/PushT-v0)
    import pymunk
    from gym_pusht.envs.pusht import PushTEnv, pymunk_to_shapely

from world_gym.data.lerobot_io import scalar_feature  # noqa: E402
# the T's geometry and the goal pose, kept where frames are read without gym-pusht
from world_gym.envs.pusht.pixels import GOAL_POSE, TEE_RECTANGLES  # noqa: E402

ENV_ID = "gym_pusht/PushT-v0"
FPS = 10
FRAME_SIZE = 96
MAX_EPISODE_STEPS = 300
SUCCESS_THRESHOLD = 0.95
AGENT_RADIUS = 15.0
TASK = "Push the T-shaped block onto the T-shaped target."

DATASET_REPO_ID = "world-gym/pusht"
ROBOT_TYPE = "pusht"

PUSHT_FEATURES: dict[str, dict[str, Any]] = {
    "observation.image": {
        "dtype": "image",
        "shape": (FRAME_SIZE, FRAME_SIZE, 3),
        "names": ["height", "width", "channel"],
    },
    "observation.state": {"dtype": "float32", "shape": (2,), "names": {"motors": ["x", "y"]}},
    "action": {"dtype": "float32", "shape": (2,), "names": {"motors": ["x", "y"]}},
    "observation.block_pose": {"dtype": "float32", "shape": (3,), "names": ["x", "y", "angle"]},
    "observation.coverage": scalar_feature("float32"),
    "next.reward": scalar_feature("float32"),
    "next.success": scalar_feature("bool"),
    "next.done": scalar_feature("bool"),
    "behavior": scalar_feature("int64"),
    "noise_level": scalar_feature("float32"),
    "episode_seed": scalar_feature("int64"),
}
"""Columns of a collected gym-pusht dataset (besides LeRobot's index columns), in the row layout of
:mod:`world_gym.data.lerobot_io`: ``observation.coverage`` is the coverage of the row's own frame."""

TEE_KEYPOINTS_LOCAL = np.concatenate(TEE_RECTANGLES)
TEE_CENTER_OF_GRAVITY = np.array([0.0, 45.0])


@dataclass(frozen=True)
class PushTState:
    """Privileged state of one gym-pusht frame.

    Attributes:
        agent_pos: ``(2,)`` agent (pusher disc) centre in pixels of the 512 x 512 workspace.
        agent_vel: ``(2,)`` agent velocity in pixels per second.
        block_pose: ``(3,)`` x, y, angle (radians, as pymunk reports it, not wrapped).
        goal_pose: ``(3,)`` goal x, y, angle.
    """

    agent_pos: np.ndarray
    agent_vel: np.ndarray
    block_pose: np.ndarray
    goal_pose: np.ndarray


def make_pusht_env(
    obs_type: str = "pixels", max_episode_steps: int = MAX_EPISODE_STEPS, **kwargs: Any
) -> gym.Env:
    """The ground-truth Push-T env at its native 10 Hz and 96 x 96 RGB frames.

    Args:
        obs_type: gym-pusht observation type (``"pixels"``, ``"state"``, ``"pixels_agent_pos"`` ...).
        max_episode_steps: time limit (gym-pusht registers 300).
        **kwargs: further ``PushTEnv`` arguments (``observation_width``, ``damping`` ...).

    Returns:
        The wrapped env, as ``gym.make`` returns it.
    """
    kwargs.setdefault("observation_width", FRAME_SIZE)
    kwargs.setdefault("observation_height", FRAME_SIZE)
    return gym.make(ENV_ID, obs_type=obs_type, max_episode_steps=max_episode_steps, **kwargs)


def read_state(env_or_info: gym.Env | dict[str, Any]) -> PushTState:
    """Privileged state from an env (through ``env.unwrapped``) or from a gym-pusht ``info`` dict.

    Args:
        env_or_info: a gym-pusht env (wrapped or not) or the ``info`` of its last reset/step.

    Returns:
        The state, arrays as float64 copies.
    """
    if isinstance(env_or_info, dict):
        info = env_or_info
        missing = {"pos_agent", "block_pose", "goal_pose"} - set(info)
        if missing:
            raise KeyError(f"info lacks gym-pusht privileged fields {sorted(missing)}; got {sorted(info)}")
        vel = info.get("vel_agent", np.zeros(2))
        return PushTState(
            np.array(info["pos_agent"], dtype=np.float64),
            np.array(vel, dtype=np.float64),
            np.array(info["block_pose"], dtype=np.float64),
            np.array(info["goal_pose"], dtype=np.float64),
        )
    base = env_or_info.unwrapped
    if not isinstance(base, PushTEnv):
        raise TypeError(f"expected a gym-pusht PushTEnv, got {type(base).__name__}")
    return PushTState(
        np.array(base.agent.position, dtype=np.float64),
        np.array(base.agent.velocity, dtype=np.float64),
        np.array([*base.block.position, base.block.angle], dtype=np.float64),
        np.array(base.goal_pose, dtype=np.float64),
    )


def _rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def block_local_to_world(points: np.ndarray, block_pose: np.ndarray) -> np.ndarray:
    """World coordinates of block-local points: ``position + R(angle) @ point``.

    Args:
        points: ``(N, 2)`` points in the block's local frame (the frame of ``TEE_RECTANGLES``).
        block_pose: ``(3,)`` block pose as gym-pusht reports it.

    Returns:
        ``(N, 2)`` world points.
    """
    pose = np.asarray(block_pose, dtype=np.float64)
    return pose[:2] + np.asarray(points) @ _rotation(pose[2]).T


def block_keypoints(block_pose: np.ndarray) -> np.ndarray:
    """The 8 corners of the T (pymunk's vertex order) in world coordinates, shape ``(8, 2)``."""
    return block_local_to_world(TEE_KEYPOINTS_LOCAL, block_pose)


def goal_keypoints(goal_pose: np.ndarray = GOAL_POSE) -> np.ndarray:
    """The 8 corners of the goal T in world coordinates, shape ``(8, 2)``."""
    return block_keypoints(goal_pose)


@functools.lru_cache(maxsize=1)
def _scratch_tee() -> tuple[pymunk.Space, pymunk.Body, list[pymunk.Poly]]:
    # A tee built by gym-pusht's own add_tee, so the geometry cannot drift from the simulator's. The
    # space and shapes are returned too: pymunk keeps only weak references to a body's shapes.
    space = pymunk.Space()
    body, shapes = PushTEnv.add_tee(space, (256, 300), 0)
    return space, body, shapes


def coverage(block_pose: np.ndarray, goal_pose: np.ndarray = GOAL_POSE) -> float:
    """Fraction of the goal T covered by the block, computed exactly as gym-pusht's ``_get_coverage``.

    Args:
        block_pose: ``(3,)`` block pose as in ``info["block_pose"]``.
        goal_pose: ``(3,)`` goal pose (gym-pusht's is fixed at ``GOAL_POSE``).

    Returns:
        Coverage in [0, 1]; gym-pusht's success is ``coverage > SUCCESS_THRESHOLD``.
    """
    _, block, shapes = _scratch_tee()
    block.angle = float(block_pose[2])  # angle first: setting it rotates about the CoG and moves position
    block.position = (float(block_pose[0]), float(block_pose[1]))
    goal_body = PushTEnv.get_goal_pose_body(np.asarray(goal_pose, dtype=np.float64))
    goal_geom = pymunk_to_shapely(goal_body, shapes)
    block_geom = pymunk_to_shapely(block, shapes)
    return float(goal_geom.intersection(block_geom).area / goal_geom.area)


def reward_from_coverage(cov: float) -> float:
    """gym-pusht's reward for a coverage: ``clip(coverage / 0.95, 0, 1)``."""
    return float(np.clip(cov / SUCCESS_THRESHOLD, 0.0, 1.0))


def is_success(cov: float) -> bool:
    """gym-pusht's success test: coverage strictly above 0.95."""
    return bool(cov > SUCCESS_THRESHOLD)


def initial_frame(seed: int, env: gym.Env | None = None) -> np.ndarray:
    """The first 96 x 96 RGB frame of the gym-pusht episode reset with ``seed``.

    Args:
        seed: gym-pusht reset seed.
        env: a pixel-observation env to reuse; a fresh one is made (and closed) when omitted.

    Returns:
        ``(96, 96, 3)`` uint8 frame.
    """
    own = env is None
    env = make_pusht_env() if env is None else env
    try:
        obs, _ = env.reset(seed=seed)
    finally:
        if own:
            env.close()
    return np.asarray(obs["pixels"] if isinstance(obs, dict) else obs, dtype=np.uint8)


class StateRenderer:
    """gym-pusht's own renderer, put into a given state without stepping the physics.

    >>> frame, cov = StateRenderer().render(GOAL_POSE, np.array([80.0, 80.0]))
    >>> frame.shape, round(cov, 6)
    ((96, 96, 3), 1.0)
    """

    def __init__(self) -> None:
        self.env = make_pusht_env().unwrapped
        self.env.reset(seed=0)

    def render(self, block_pose: np.ndarray, agent: np.ndarray) -> tuple[np.ndarray, float]:
        """Frame and coverage of a block pose ``(x, y, angle)`` (as ``info["block_pose"]``) and agent."""
        env = self.env
        env.block.angle = float(block_pose[2])  # angle first: setting it moves the position (pymunk CoG)
        env.block.position = (float(block_pose[0]), float(block_pose[1]))
        env.agent.position = (float(agent[0]), float(agent[1]))
        for shape in (*env.block.shapes, *env.agent.shapes):
            shape.cache_bb()  # the debug drawing reads the shapes' cached world vertices
        return env.get_obs(), float(env._get_coverage())
