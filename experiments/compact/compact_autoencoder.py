"""Reconstruction of held-out frames by compact-model autoencoders, and their pose read-out.

    python benchmarks/compact_autoencoder.py runs/pusht/cae_conv runs/pusht/cae_kp_implicit

For each ``world-gym train compact-ae`` output directory (``autoencoder.pt`` + ``config_ae.yaml``),
``--frames`` frames spread evenly over the held-out episodes go codec -> autoencoder -> codec. The
table gives the frame metrics of ``benchmarks/fidelity.py`` (PSNR, block IoU, agent error in
units of 512, agent found, T shape error) against the true frames. The read-out columns compare
the linear pose head the autoencoder trained with (``autoencoder.pose_weight``) to the privileged
pose columns: agent and block position error (units of 512) and block angle error (degrees). They
are blank for autoencoders trained without one. Prints a markdown table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fidelity import frame_metrics  # noqa: E402
from compact import CompactAutoencoder  # noqa: E402
from world_gym.training.common import load_checkpoint  # noqa: E402
from world_gym.data.episodes import load_episodes  # noqa: E402
from world_gym.training.train_codec import load_codec  # noqa: E402
from train_compact import POSE_COLUMNS, model_config  # noqa: E402


def read_out_errors(head: torch.nn.Linear, states: torch.Tensor, agent: np.ndarray, block: np.ndarray
                    ) -> dict[str, float]:
    """Mean errors of a pose head's read-out against privileged agent ``(N, 2)`` and block ``(N, 3)``."""
    with torch.no_grad():
        p = head(states).numpy()
    agent_err = np.linalg.norm(p[:, :2] * 256 + 256 - agent, axis=1)
    block_err = np.linalg.norm(p[:, 2:4] * 256 + 256 - block[:, :2], axis=1)
    angle = np.arctan2(p[:, 5], p[:, 4]) - block[:, 2]
    angle_err = np.degrees(np.abs(np.angle(np.exp(1j * angle))))
    return {"readout_agent": float(agent_err.mean()), "readout_block": float(block_err.mean()),
            "readout_angle_deg": float(angle_err.mean())}


def evaluate(out_dir: Path, latents: torch.Tensor, frames: np.ndarray, codec, agent: np.ndarray,
             block: np.ndarray) -> dict:
    cfg = OmegaConf.load(out_dir / "config_ae.yaml")
    state = load_checkpoint(out_dir / "autoencoder.pt")
    if state is None:
        raise FileNotFoundError(f"no {out_dir / 'autoencoder.pt'}")
    net = CompactAutoencoder(model_config(cfg, tuple(latents.shape))).eval()
    net.load_state_dict(state["model"])
    with torch.no_grad():
        states = net.encode(latents)
        recon = codec.decode(net.decode(states))
    m = frame_metrics(recon[:, None], frames[:, None], "cpu", shape=True)
    row = {"dir": str(out_dir), "step": int(state["step"]), "psnr": float(m["psnr"].mean()),
           "block_iou": float(np.nanmean(m["block_iou"])),
           "agent_error": float(np.nanmean(m["agent_error"])),
           "agent_found": float(m["agent_found"].mean()), "t_shape": float(m["t_shape"].mean())}
    if float(cfg.autoencoder.get("pose_weight", 0.0)) > 0 and "pose_head" in state:
        head = torch.nn.Linear(states.shape[1], 6)
        head.load_state_dict(state["pose_head"])
        row |= read_out_errors(head, states, agent, block)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", help="compact-ae output directories")
    parser.add_argument("--data", default="data/pusht/heldout", help="held-out LeRobotDataset root")
    parser.add_argument("--codec", default="runs/pusht/codec_f4", help="the codec the autoencoders work on")
    parser.add_argument("--frames", type=int, default=160)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    held = load_episodes(args.data, extra_columns=POSE_COLUMNS, progress=False)
    idx = np.linspace(0, len(held) - 1, args.frames).astype(int)
    frames = held.frames[idx]
    agent = held.extras[POSE_COLUMNS[0]][idx][:, :2]
    block = held.extras[POSE_COLUMNS[1]][idx]
    codec = load_codec(args.codec)
    with torch.no_grad():
        latents = codec.encode(frames).float()
    rows = [evaluate(Path(d), latents, frames, codec, agent, block) for d in args.dirs]
    print(f"{args.frames} frames of {args.data}, evenly spread\n")
    print("| autoencoder | steps | PSNR | block IoU | agent err | agent found | T shape err "
          "| read-out: agent | block | angle (deg) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        readout = " | ".join(f"{r[k]:.1f}" if k in r else "-"
                             for k in ("readout_agent", "readout_block", "readout_angle_deg"))
        print(f"| {r['dir']} | {r['step']:,} | {r['psnr']:.2f} | {r['block_iou']:.3f} "
              f"| {r['agent_error']:.1f} | {r['agent_found']:.2f} | {r['t_shape']:.3f} | {readout} |")
    print()
    print(json.dumps({"benchmark": "compact_autoencoder", "frames": args.frames, "rows": rows}))


if __name__ == "__main__":
    main()
