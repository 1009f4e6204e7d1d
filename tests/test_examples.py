"""The example scripts' env setup (the scripts themselves run for minutes: their figures are in README)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_ppo_example_trains_in_the_pose_state_env_unless_told_otherwise(monkeypatch):
    ppo = _load("ppo_pusht")
    monkeypatch.setattr(sys, "argv", ["ppo_pusht.py", "--chunk-size", "2"])
    args = ppo.parse()
    assert args.env == "PoseState-PushT-v0" and args.num_inference_steps is None and not args.compile
    env = ppo.make_env(args)
    assert env.spec.id == "PoseState-PushT-v0"
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.full((2, 2), 256.0, np.float32))
    assert info["frames"].shape == (2, 96, 96, 3) and np.isfinite(reward)
    monkeypatch.setattr(sys, "argv", ["ppo_pusht.py", "--env", "IRASim-PushT-v0", "--num-inference-steps", "2"])
    args = ppo.parse()
    assert args.env == "IRASim-PushT-v0" and args.num_inference_steps == 2
