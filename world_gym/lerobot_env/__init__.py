"""LeRobot integration: ``lerobot-eval`` runs a LeRobot policy inside a world-gym world model.

Importing this package registers :class:`WorldGymEnv` with LeRobot as ``--env.type=world_gym`` and
the Gymnasium id ``world_gym/LeRobotWorldModel-v0`` that it builds::

    lerobot-eval --env.type=world_gym --env.task=IRASim-PushT-v0 \\
        --env.discover_packages_path=world_gym.lerobot_env \\
        --policy.path=outputs/train/act_pusht/checkpoints/last/pretrained_model \\
        --eval.n_episodes=50 --eval.batch_size=10 --policy.device=cpu

``--env.task`` names the world-model env (any registered id); ``--env.model``,
``--env.reward_model``, ``--env.num_inference_steps``, ``--env.device`` pass through to it.

Observations are what LeRobot's ``preprocess_observation`` expects: ``{"pixels": (H, W, 3) uint8}``
and, with ``--env.obs_type=pixels_agent_pos`` (the default, like LeRobot's ``pusht`` env),
``agent_pos``. A world model imagines frames, not states, so ``agent_pos`` is *estimated from the
imagined frame* (:func:`world_gym.envs.pusht.pixels.estimate_agent_pos`, Push-T's blue disc; about
0.6 px error on real frames): state-conditioned policies (LeRobot's ``diffusion_pusht``) run, but
they read the state the model drew. Use ``obs_type=pixels`` for image-only policies.

``reset(seed=s)`` starts from episode ``s`` of the env's initial-state source (``options={"episode":
s}``), which for Push-T is the first frame of ``gym_pusht/PushT-v0`` reset with seed ``s``: with
the same ``--seed``, ``lerobot-eval --env.type=pusht`` and ``--env.type=world_gym`` start from the
same states. ``info["is_success"]`` comes from the world model's reward head.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.envs.configs import EnvConfig
from lerobot.utils.constants import ACTION, OBS_IMAGE, OBS_STATE

GYM_ID = "world_gym/LeRobotWorldModel-v0"
OBS_TYPES = ("pixels", "pixels_agent_pos")


class LeRobotObservation(gym.Wrapper):
    """Give a world-model env LeRobot's observation dict and seed-as-episode resets.

    Args:
        env: a single-action world-model env (``chunk_size=1``).
        obs_type: ``"pixels"`` or ``"pixels_agent_pos"`` (agent position estimated from pixels).
        seed_as_episode: ``reset(seed=s)`` starts from initial state ``s`` (see module doc).
    """

    def __init__(self, env: gym.Env, obs_type: str = "pixels_agent_pos", seed_as_episode: bool = True) -> None:
        super().__init__(env)
        if obs_type not in OBS_TYPES:
            raise ValueError(f"obs_type must be one of {OBS_TYPES}, got {obs_type!r}")
        self.obs_type = obs_type
        self.seed_as_episode = seed_as_episode
        obs_spaces: dict[str, spaces.Space] = {"pixels": env.observation_space}
        if obs_type == "pixels_agent_pos":
            obs_spaces["agent_pos"] = spaces.Box(0.0, 512.0, (2,), np.float32)
        self.observation_space = spaces.Dict(obs_spaces)

    def _observation(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        obs = {"pixels": frame}
        if self.obs_type == "pixels_agent_pos":
            from world_gym.envs.pusht.pixels import estimate_agent_pos

            obs["agent_pos"] = estimate_agent_pos(frame)
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        options = dict(options or {})
        if seed is not None and self.seed_as_episode:
            options.setdefault("episode", int(seed))
        frame, info = self.env.reset(seed=seed, options=options or None)
        return self._observation(frame), info

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        frame, reward, terminated, truncated, info = self.env.step(np.asarray(action, np.float32))
        info = {k: v for k, v in info.items() if k != "frames"}  # one frame per step: obs already holds it
        return self._observation(frame), reward, terminated, truncated, info


def make_lerobot_env(task: str = "IRASim-PushT-v0", obs_type: str = "pixels_agent_pos", seed_as_episode: bool = True,
                     **kwargs: Any) -> gym.Env:
    """The world-model env ``task`` with one action per step, wrapped by :class:`LeRobotObservation`.

    Args:
        task: registered world-model env id.
        obs_type: see :class:`LeRobotObservation`.
        seed_as_episode: see :class:`LeRobotObservation`.
        **kwargs: world-model env arguments (``model``, ``reward_model``, ``device``, ``render_mode`` ...).
    """
    import world_gym  # noqa: F401  (registers the world-model ids)

    env = gym.make(task, chunk_size=1, disable_env_checker=True, **{k: v for k, v in kwargs.items() if v is not None})
    return LeRobotObservation(env, obs_type, seed_as_episode)


if GYM_ID not in gym.registry:
    gym.register(id=GYM_ID, entry_point="world_gym.lerobot_env:make_lerobot_env")


@EnvConfig.register_subclass("world_gym")
@dataclass
class WorldGymEnv(EnvConfig):
    """``--env.type=world_gym``: a world-gym world model as a LeRobot eval env.

    Attributes:
        task: world-model env id (``IRASim-PushT-v0``).
        fps: control rate (Push-T: 10).
        episode_length: steps before truncation.
        obs_type: ``pixels`` or ``pixels_agent_pos``.
        observation_height, observation_width: the model's frame size (Push-T: 96).
        model: world-model directory (default: the env's).
        reward_model: reward head name (default: the env's).
        num_inference_steps, sampler, device: sampling overrides.
    """

    task: str | None = "IRASim-PushT-v0"
    fps: int = 10
    episode_length: int = 300
    obs_type: str = "pixels_agent_pos"
    render_mode: str = "rgb_array"
    observation_height: int = 96
    observation_width: int = 96
    action_dim: int = 2
    model: str | None = None
    reward_model: str | None = None
    num_inference_steps: int | None = None
    sampler: str | None = None
    device: str | None = None
    features: dict[str, PolicyFeature] = field(default_factory=dict)
    features_map: dict[str, str] = field(
        default_factory=lambda: {ACTION: ACTION, "agent_pos": OBS_STATE, "pixels": OBS_IMAGE}
    )

    def __post_init__(self) -> None:
        if self.obs_type not in OBS_TYPES:
            raise ValueError(f"env.obs_type must be one of {OBS_TYPES}, got {self.obs_type!r}")
        self.features[ACTION] = PolicyFeature(type=FeatureType.ACTION, shape=(self.action_dim,))
        self.features["pixels"] = PolicyFeature(
            type=FeatureType.VISUAL, shape=(self.observation_height, self.observation_width, 3)
        )
        if self.obs_type == "pixels_agent_pos":
            self.features["agent_pos"] = PolicyFeature(type=FeatureType.STATE, shape=(2,))

    @property
    def package_name(self) -> str:
        return "world_gym.lerobot_env"

    @property
    def gym_id(self) -> str:
        return GYM_ID

    @property
    def gym_kwargs(self) -> dict:
        return {
            "task": self.task, "obs_type": self.obs_type, "render_mode": self.render_mode,
            "max_episode_steps": self.episode_length, "max_episode_frames": self.episode_length,
            "model": self.model, "reward_model": self.reward_model,
            "num_inference_steps": self.num_inference_steps, "sampler": self.sampler, "device": self.device,
        }
