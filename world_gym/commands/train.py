"""``world-gym train {codec,codec-from-model,encode,decoder,fast-decoder,dynamics,export,shards,consistency*,pose-*}
[overrides]``: the training pipelines."""

from __future__ import annotations

import argparse

STAGES = {
    "codec": "world_gym.training.train_codec:main_codec",
    "codec-from-model": "world_gym.training.train_codec:main_codec_from_model",
    "encode": "world_gym.training.train_codec:main_encode",
    "decoder": "world_gym.training.train_codec:main_decoder",
    "fast-decoder": "world_gym.training.train_codec:main_fast_decoder",
    "dynamics": "world_gym.training.train_dynamics:main",
    "export": "world_gym.training.train_dynamics:main_export",
    "shards": "world_gym.training.train_dynamics:main_shards",
    "consistency": "world_gym.training.train_consistency:main",
    "consistency-tokens": "world_gym.training.train_consistency:main_tokens",
    "consistency-export": "world_gym.training.train_consistency:main_export",
    "pose-decoder": "world_gym.envs.pusht.train_pose:main_decoder",
    "pose-encoder": "world_gym.envs.pusht.train_pose:main_encoder",
    "pose-dynamics": "world_gym.envs.pusht.train_pose:main_dynamics",
    "pose-export": "world_gym.envs.pusht.train_pose:main_export",
    "pose-tokens": "world_gym.envs.pusht.train_pose:main_tokens",
    "pose-renderer": "world_gym.envs.pusht.train_pose:main_renderer",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a world model: codec, codec-from-model (a trained model's codec, e.g. the "
        "shipped one's, as a codec stage's output), encode (pre-encode latents), decoder (fine-tune "
        "on whole frames), fast-decoder (a small decoder of the encoded latents, added to the "
        "world models in fast_decoder_attach=[...]), dynamics, export, shards (EMA weights in <=15 MiB bf16 files, for "
        "trainer.init_from); consistency, consistency-tokens, consistency-export (a 1-2 step consistency "
        "student distilled from a world model, train_consistency.yaml); "
        "pose-decoder, pose-encoder, pose-dynamics, pose-export, pose-tokens (the pose-state model, train_pose.yaml), "
        "pose-renderer (a pose codec's sprite renderer, added to the world models in renderer_attach=[...])",
        description="Stages run with the Hydra configs shipped in the package (world_gym/configs: "
        "train_codec.yaml, train_dynamics.yaml, train_pose.yaml, train_consistency.yaml; WORLD_GYM_CONFIGS "
        "points at another folder); "
        "pass overrides such as trainer.steps=100 data.train_root=data/pusht/train. export takes "
        "export_to=DIR, shards shards_to=DIR.",
    )
    p.add_argument("stage", choices=sorted(STAGES))
    p.add_argument("overrides", nargs="*", help="Hydra overrides, key=value")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import importlib

    module, func = STAGES[args.stage].split(":")
    return int(getattr(importlib.import_module(module), func)(args.overrides) or 0)
