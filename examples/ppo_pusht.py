"""PPO (stable-baselines3) inside the Push-T world model: a complete, runnable RL script.

    python examples/ppo_pusht.py --total-timesteps 2048
    python examples/ppo_pusht.py --env IRASim-PushT-v0 --num-inference-steps 4

Every env step imagines a chunk of frames with the world model (default ``PoseState-PushT-v0``, the
fast one; ``--compile`` compiles its step first, about a minute); the reward is the env's reward
head. The same script trains in the real simulator with --ground-truth (gym-pusht, pixels), which
is how you check that what the policy learned in imagination transfers.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

import world_gym  # noqa: F401  (registers the world-model envs)
from world_gym.wrappers import ChunkedAction


@dataclass
class Args:
    total_timesteps: int = 2048
    env: str = "PoseState-PushT-v0"
    chunk_size: int = 4
    num_inference_steps: int | None = None
    compile: bool = False
    reward_model: str | None = None
    ground_truth: bool = False
    seed: int = 0
    save_path: str = "outputs/ppo_pusht.zip"


def parse() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in vars(Args()).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, type=int if name == "num_inference_steps" else type(default) if default is not None
                                else str, default=default)
    return Args(**vars(parser.parse_args()))


def make_env(args: Args) -> gym.Env:
    if args.ground_truth:
        import gym_pusht  # noqa: F401

        return ChunkedAction(gym.make("gym_pusht/PushT-v0", obs_type="pixels"), args.chunk_size)
    kwargs = {"chunk_size": args.chunk_size, "num_inference_steps": args.num_inference_steps, "compile": args.compile}
    if args.reward_model:
        kwargs["reward_model"] = args.reward_model
    return gym.make(args.env, **kwargs)


def main() -> None:
    from stable_baselines3 import PPO

    args = parse()
    env = make_env(args)
    model = PPO("CnnPolicy", env, n_steps=256, batch_size=64, n_epochs=4, seed=args.seed, verbose=1)
    model.learn(total_timesteps=args.total_timesteps, progress_bar=False)
    model.save(args.save_path)

    obs, _ = env.reset(seed=args.seed + 1)
    returns, done = 0.0, False
    while not done:
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, info = env.step(np.asarray(action, np.float32))
        returns += float(reward)
        done = terminated or truncated
    print(f"saved {args.save_path}; evaluation episode return {returns:.3f}, success {info['is_success']}")


if __name__ == "__main__":
    main()
