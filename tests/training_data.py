"""A tiny dataset in the LeRobotDataset on-disk layout (parquet with PNG image cells), for tests."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def write_tiny_dataset(root: Path, episodes: int = 3, length: int = 12, size: int = 32, seed: int = 0) -> Path:
    """Episodes of a dot moving toward its action target on a white board, written like LeRobot.

    The privileged columns: ``observation.state`` is the dot's position; ``observation.block_pose``
    (an undrawn block) moves by one unit a frame in the first half of odd episodes, else stays.
    """
    rng = np.random.default_rng(seed)
    keys = ("observation.image", "action", "episode_index", "frame_index", "observation.coverage",
            "observation.state", "observation.block_pose")
    rows: dict[str, list] = {k: [] for k in keys}
    for ep in range(episodes):
        pos = rng.uniform(100, 400, 2)
        for t in range(length):
            target = rng.uniform(0, 512, 2)
            frame = np.full((size, size, 3), 255, np.uint8)
            px = (pos / 512 * size).astype(int).clip(1, size - 2)
            frame[px[1] - 1 : px[1] + 2, px[0] - 1 : px[0] + 2] = (0, 0, 255)
            buf = io.BytesIO()
            Image.fromarray(frame).save(buf, format="PNG")
            rows["observation.image"].append({"bytes": buf.getvalue(), "path": None})
            rows["action"].append(target.astype(np.float32).tolist())
            rows["episode_index"].append(ep)
            rows["frame_index"].append(t)
            rows["observation.coverage"].append([float(t) / length])
            rows["observation.state"].append(pos.astype(np.float32).tolist())
            shift = float(min(t, length // 2)) if ep % 2 else 0.0
            rows["observation.block_pose"].append([256.0 + shift, 256.0, 0.5])
            pos = pos + 0.3 * (target - pos)
    path = root / "data" / "chunk-000" / "file-000.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({
        "observation.image": pa.array(rows["observation.image"], type=image_type),
        "action": pa.array(rows["action"], type=pa.list_(pa.float32(), 2)),
        "episode_index": pa.array(rows["episode_index"], type=pa.int64()),
        "frame_index": pa.array(rows["frame_index"], type=pa.int64()),
        "observation.coverage": pa.array(rows["observation.coverage"], type=pa.list_(pa.float32(), 1)),
        "observation.state": pa.array(rows["observation.state"], type=pa.list_(pa.float32(), 2)),
        "observation.block_pose": pa.array(rows["observation.block_pose"], type=pa.list_(pa.float32(), 3)),
    })
    # shuffled rows: the reader must restore episode / frame order
    pq.write_table(table.take(np.random.default_rng(1).permutation(len(table))), path)
    # the metadata a reader checks the data against (LeRobot's meta/info.json and meta/episodes)
    meta = root / "meta" / "episodes" / "chunk-000"
    meta.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"episode_index": pa.array(range(episodes), type=pa.int64()),
                             "length": pa.array([length] * episodes, type=pa.int64())}), meta / "file-000.parquet")
    info = {"total_episodes": episodes, "total_frames": episodes * length,
            "features": {"observation.image": {"dtype": "image", "shape": [size, size, 3]}}}
    (root / "meta" / "info.json").write_text(json.dumps(info))
    return root


def training_overrides(tmp: Path) -> list[str]:
    """Hydra overrides of a tiny codec + dynamics run on the datasets :func:`make_pipeline` writes under ``tmp``."""
    return [
        f"data.train_root={tmp / 'train'}", f"data.heldout_root={tmp / 'heldout'}", "data.frame_size=[32,32]",
        "codec.block_out_channels=[8,16]", "codec.norm_num_groups=8",
        f"codec_dir={tmp / 'codec'}", f"out_dir={tmp / 'dyn'}",
        "dynamics.size=tiny", "dynamics.num_frames=5", "dynamics.history=2", "dynamics.patch_size=4",
        "trainer.batch_size=4", "trainer.threads=1", "trainer.log_every=1", "trainer.ckpt_every=1",
        "dynamics.sampler.num_inference_steps=2",
    ]


def make_pipeline(tmp: Path) -> Path:
    """A tiny train / heldout dataset under ``tmp``, a 3-step codec trained on it and its latents encoded."""
    from world_gym.training.common import compose
    from world_gym.training.train_codec import encode_dataset, train_codec

    write_tiny_dataset(tmp / "train", episodes=3)
    write_tiny_dataset(tmp / "heldout", episodes=1, seed=5)
    codec_overrides = [o for o in training_overrides(tmp) if o.startswith(("data.", "codec."))]
    codec_cfg = compose("train_codec", [*codec_overrides, f"out_dir={tmp / 'codec'}", "trainer.steps=3",
                                        "trainer.eval_every=2", "trainer.batch_size=4", "trainer.threads=1", "trainer.crop=16"])
    train_codec(codec_cfg)
    encode_dataset(codec_cfg)
    return tmp


def play_behaviour(policy, seed: int, steps: int) -> dict[str, np.ndarray]:
    """Actions, agent positions and block poses of ``steps`` gym-pusht steps (state observations) of an
    info-reading ``policy`` (a stress or broad family) from reset ``seed``, until success at most."""
    from world_gym.envs.pusht.ground_truth import PushTEnv

    env = PushTEnv(obs_type="state")
    _, info = env.reset(seed=seed)
    policy.reset(seed=seed)
    out: dict[str, list] = {"action": [], "agent": [info["pos_agent"]], "block": [info["block_pose"]]}
    for _ in range(steps):
        action = policy.act(None, info)
        _, _, terminated, _, info = env.step(action)
        out["action"].append(action)
        out["agent"].append(info["pos_agent"])
        out["block"].append(info["block_pose"])
        if terminated:
            break
    return {k: np.array(v) for k, v in out.items()}
