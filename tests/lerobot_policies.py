"""Tiny randomly initialised LeRobot policies saved locally, for adapter and lerobot-eval tests."""

from __future__ import annotations

from pathlib import Path

import torch


def save_tiny_act(directory: Path, with_state: bool = False, chunk_size: int = 4, frame: int = 96) -> Path:
    """An ACT policy (1-layer transformer, ResNet-18 without downloaded weights) with its processors."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    inputs = {"observation.image": PolicyFeature(type=FeatureType.VISUAL, shape=(3, frame, frame))}
    if with_state:
        inputs["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(2,))
    config = ACTConfig(
        input_features=inputs, output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(2,))},
        chunk_size=chunk_size, n_action_steps=chunk_size, dim_model=32, n_heads=2, dim_feedforward=64,
        n_encoder_layers=1, n_decoder_layers=1, use_vae=False, pretrained_backbone_weights=None, device="cpu",
    )
    torch.manual_seed(0)
    policy = ACTPolicy(config)
    stats = {
        "observation.image": {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25)},
        "observation.state": {"mean": torch.full((2,), 256.0), "std": torch.full((2,), 100.0)},
        "action": {"mean": torch.full((2,), 256.0), "std": torch.full((2,), 100.0)},
    }
    pre, post = make_pre_post_processors(config, dataset_stats=stats)
    directory.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(directory)
    pre.save_pretrained(directory)
    post.save_pretrained(directory)
    return directory
