"""Frames per second of each reward head on CPU; prints a table and one JSON line.

    .venv/bin/python benchmarks/reward_heads.py [--batch 4] [--chunk 16] [--repeats 3] [--threads 1]

Heads are scored on random 96x96 frames (Push-T's size), ``batch`` envs by ``chunk`` frames a call:

* ``goal_latent_mse`` encodes through a random-weight tiny ``AutoencoderKL`` (the CPU-trainable
  codec config), not the trained Push-T codec: its cost is that codec's encoder.
* ``vlm`` talks to a stub chat-completions server on 127.0.0.1 that answers at once, so the
  figure is the client's own cost (PNG encoding, HTTP, parsing) with caching off (distinct frames);
  a real VLM adds its own latency per request, divided by ``max_workers``.
* ``resnet_iou`` uses the shipped weights when present, else random weights (same speed). Random
  frames never pass its refiner's gate, so with a refiner a second row forces the refiner on every
  frame: the cost when every frame is near the goal. A third row scores exact gym-pusht renders with
  coverage in (0.94, 0.96) (``--fit-frames`` of them, one call): each is re-rendered until gym-pusht
  draws it (``render_fit``), which world-model frames never are: the cost of a ground-truth frame at
  the success threshold. Needs gym-pusht.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from world_gym.reward_models import RewardContext, RewardHead, make_reward_head


def stub_vlm_server() -> ThreadingHTTPServer:
    """A chat-completions endpoint on 127.0.0.1 that says ``{"success": false}`` immediately."""
    reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": '{"success": false}'}}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def build_heads(tmp: Path, vlm_url: str) -> dict[str, tuple[RewardHead, Callable[[np.ndarray], RewardContext]]]:
    """Each head with a function that builds its context for a batch of frames."""
    from world_gym.codecs.vae import LatentCodec, tiny_vae_config
    from world_gym.reward_models.resnet_iou import (
        RefinedCoverageNet,
        build_coverage_net,
        default_weights_path,
        save_coverage_net,
    )

    codec = LatentCodec.from_config(tiny_vae_config()).eval()

    def encode(x: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return codec.encode(x)

    weights = default_weights_path()
    if not weights.exists():
        weights = save_coverage_net(build_coverage_net(), tmp / "random_resnet_iou.safetensors")
    goal = lambda f: RewardContext(goal_images=f[:, 0].copy(), encode=encode)  # noqa: E731
    task = lambda f: RewardContext(task=["push the T block into the green goal"] * len(f))  # noqa: E731
    heads = {
        "zero": (make_reward_head("zero"), lambda f: RewardContext()),
        "goal_mse": (make_reward_head("goal_mse"), goal),
        "goal_latent_mse": (make_reward_head("goal_latent_mse"), goal),
        "vlm (stub server)": (make_reward_head("vlm", base_url=vlm_url, model="stub", frames="all",
                                               cache_size=0), task),
        "resnet_iou": (make_reward_head("resnet_iou", weights=str(weights)), lambda f: RewardContext()),
    }
    refined = make_reward_head("resnet_iou", weights=str(weights))
    if isinstance(refined.net, RefinedCoverageNet):  # random frames never pass the gate: force it (worst case)
        refined.net.gate = -math.inf
        heads["resnet_iou, all refined"] = (refined, lambda f: RewardContext())
    return heads


def time_render_fit(head: RewardHead, n: int) -> dict[str, float | str]:
    """One call on ``n`` exact gym-pusht renders with coverage in (0.94, 0.96), which the shipped
    head re-renders (random weights score them elsewhere: the row then times the network alone)."""
    from world_gym.reward_models.pusht_coverage import RenderedCoverage

    frames, _ = RenderedCoverage(boundary=1.0, band=(0.94, 0.96)).sample(n, np.random.default_rng(1))
    t0 = time.perf_counter()
    out = head(frames[None], RewardContext())
    dt = time.perf_counter() - t0
    fitted = int(out.info["render_fit"].sum())
    return {"head": "resnet_iou, render fit", "frames_per_s": n / dt, "ms_per_call": 1000 * dt,
            "fitted": f"{fitted}/{n}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4, help="envs per call (B)")
    parser.add_argument("--chunk", type=int, default=16, help="frames per env per call (T)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per head (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--fit-frames", type=int, default=8,
                        help="exact renders near the threshold for the render-fit row (0: skip it)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    server = stub_vlm_server()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        heads = build_heads(Path(tmp), f"http://127.0.0.1:{server.server_address[1]}/v1")
        for name, (head, make_context) in heads.items():
            batches = [rng.integers(0, 256, (args.batch, args.chunk, 96, 96, 3), dtype=np.uint8)
                       for _ in range(args.repeats + 1)]
            head(batches[0], make_context(batches[0]))  # warm-up
            t0 = time.perf_counter()
            for f in batches[1:]:
                head(f, make_context(f))
            dt = time.perf_counter() - t0
            n = args.batch * args.chunk * args.repeats
            rows.append({"head": name, "frames_per_s": n / dt, "ms_per_call": 1000 * dt / args.repeats})
        if args.fit_frames:
            rows.append(time_render_fit(heads["resnet_iou"][0], args.fit_frames))
    server.shutdown()
    print(f"reward heads on CPU ({platform.processor() or platform.machine()}, torch threads={args.threads}, "
          f"B={args.batch} T={args.chunk} 96x96)")
    print(f"| {'head':<24} | {'frames/s':>10} | {'ms/call':>9} |")
    print(f"|{'-' * 26}|{'-' * 12}|{'-' * 11}|")
    for r in rows:
        print(f"| {r['head']:<24} | {r['frames_per_s']:>10.1f} | {r['ms_per_call']:>9.1f} |")
    print(json.dumps({"benchmark": "reward_heads", "batch": args.batch, "chunk": args.chunk, "threads": args.threads,
                      "python": sys.version.split()[0], "torch": torch.__version__,
                      "results": {r["head"]: round(r["frames_per_s"], 1) for r in rows},
                      "render_fitted": next((r["fitted"] for r in rows if "fitted" in r), None)}))


if __name__ == "__main__":
    main()
