"""A short stable-baselines3 PPO run starts and steps in a world-model env."""

import numpy as np
import pytest
import torch

from world_gym.env import WorldModelEnv


@pytest.mark.parametrize("chunk_size", [1, 2])
def test_ppo_learns_a_few_steps(micro_model, micro_frames, chunk_size):
    from stable_baselines3 import PPO

    env = WorldModelEnv(model=micro_model, initial_states=micro_frames, device="cpu", chunk_size=chunk_size,
                        max_episode_frames=6)
    model = PPO("MlpPolicy", env, n_steps=8, batch_size=8, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"net_arch": [16]})
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=16)
    assert model.num_timesteps == 16
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(np.clip(action, env.action_space.low, env.action_space.high))
