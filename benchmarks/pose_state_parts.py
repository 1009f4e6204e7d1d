"""The pose-state world model's three parts, each against gym-pusht's privileged poses.

    python benchmarks/pose_state_parts.py runs/pusht/wm_pose
    python benchmarks/pose_state_parts.py runs/pusht/wm_pose --frames 160 --refine 0,20 --threads 1
    python benchmarks/pose_state_parts.py pusht-irasim-pose --threads 1      # IRASim on pose tokens

- decoder: frames drawn from the *true* poses of ``--frames`` held-out frames (spread evenly over
  the held-out episodes), through each of the codec's decoders: PSNR, block IoU and agent error
  against the true frames, beside the codec's own reconstruction (the decoder's upper bound);
- encoder: the pose read from the true frames, with each ``--refine`` number of analysis-by-synthesis
  steps: errors of the agent's and the block's positions (units of 512) and of the angle (degrees),
  and the frames drawn from that pose;
- step: the step rolled out open-loop on the true poses and actions of every held-out episode
  (from its first frame, ``--horizons`` steps; 15-step windows also from each episode's middle):
  mean and last-step position and angle errors.

For a model on pose tokens (a :class:`PoseCodec`: ``IRASim-PushT-v0``, whose DiT takes the step's
place, and a pose-state model exported with ``export_tokens``) the decoder part draws the true
poses with each of the pose codec's decoders (the sprite decoder through the VAE or the fast
decoder, and its sprite renderer if it has one), and the encoder part scores the codec's own
reading of the frames (``encode``, with its configured refinement and the agent from its colour
where it is set).

Prints markdown tables and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from world_gym.envs.pusht import metrics
from world_gym.envs.pusht.pose_codec import PoseCodec, states_to_tokens, tokens_to_states
from world_gym.envs.pusht.pose_state import PoseStateDynamics, pose_to_state, wrap_angle
from world_gym.data.episodes import EpisodeArrays, load_episodes
from world_gym.envs.pusht.train_pose import POSE_COLUMNS, pose_rows
from world_gym.world_model import WorldModel


def pose_errors(pred: torch.Tensor, true: torch.Tensor) -> dict[str, np.ndarray]:
    """Agent and block position errors (units of 512) and angle errors (degrees) of ``(..., 5)`` states."""
    return {"agent": (pred[..., :2] - true[..., :2]).norm(dim=-1).numpy() * 256,
            "block": (pred[..., 2:4] - true[..., 2:4]).norm(dim=-1).numpy() * 256,
            "angle": np.degrees(wrap_angle(pred[..., 4] - true[..., 4]).abs().numpy())}


def frame_scores(frames: np.ndarray, true: np.ndarray) -> dict[str, float]:
    return {"psnr": float(metrics.psnr(frames, true).mean()),
            "block_iou": float(np.nanmean(metrics.block_iou(frames, true))),
            "agent_error": float(np.nanmean(metrics.agent_error(frames, true))
                                 * metrics.PUSHT_WORKSPACE / true.shape[-2])}


def roll_states(model: WorldModel, prev: torch.Tensor, state: torch.Tensor, prev_action: torch.Tensor | None,
                actions: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """States ``(1, L, 5)`` that ``model``'s dynamics predict from two states ``(1, 5)`` and normalised
    actions ``(1, L, 2)``; ``prev_action`` (``(1, 2)``, the action that led to ``state``) is None
    right after a reset, where ``prev`` is ``state``."""
    backbone = model.backbone
    if isinstance(backbone, PoseStateDynamics):
        return backbone.rollout_states(prev, state, state[:, 0:2] if prev_action is None else prev_action, actions)
    scale = model.codec.token_scale
    context = states_to_tokens(torch.cat([prev, state]), scale)[None]
    context_actions = torch.zeros(1, 2, 2)
    mask = torch.zeros(1, 2, dtype=torch.bool)
    if prev_action is not None:
        context_actions[:, 1], mask[:, 1] = prev_action, True
    tokens = model.rollout_latents(context, context_actions, mask, actions, torch.Generator().manual_seed(seed))
    return tokens_to_states(tokens[0], scale)[None]


def step_errors(model: WorldModel, states: np.ndarray, actions: np.ndarray, episodes: np.ndarray,
                horizon: int) -> dict[str, float]:
    """Open-loop rollouts of the dynamics on true poses: from each episode's first frame (at rest) and,
    for horizons under 100, also from its middle (the two frames before it as context)."""
    runs = []
    for ep in np.unique(episodes):
        idx = np.nonzero(episodes == ep)[0]
        for start in ([0, len(idx) // 2] if horizon < 100 else [0]):
            if start + horizon + 1 > len(idx):
                continue
            rows = idx[start:start + horizon + 1]
            s, a = torch.from_numpy(states[rows]), torch.from_numpy(actions[rows])
            if start == 0:
                prev, prev_action = s[:1], None
            else:
                before = idx[start - 1]
                prev = torch.from_numpy(states[before][None])
                prev_action = torch.from_numpy(actions[before][None])
            with torch.no_grad():
                pred = roll_states(model, prev, s[:1], prev_action, a[None, :horizon])[0]
            runs.append(pose_errors(pred, s[1:]))
    out: dict[str, float] = {"rollouts": float(len(runs))}
    for key in ("agent", "block", "angle"):
        errs = np.stack([r[key] for r in runs])
        out[f"{key}_mean"], out[f"{key}_last"] = float(errs.mean()), float(errs[:, -1].mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a pose-state world model, or an IRASim one on pose tokens")
    parser.add_argument("--data", default="data/pusht/heldout")
    parser.add_argument("--frames", type=int, default=160)
    parser.add_argument("--refine", default="0,20", help="analysis-by-synthesis steps to compare (comma-separated)")
    parser.add_argument("--horizons", default="15,150")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--ensemble", type=int, default=None, help="a diffusion model's samples averaged per clip "
                        "(default: its sampler.ensemble)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = WorldModel.from_pretrained(args.model)
    if args.ensemble:
        model.config.sampler.ensemble = args.ensemble
    backbone = model.backbone
    if not isinstance(backbone, PoseStateDynamics) and not isinstance(model.codec, PoseCodec):
        raise SystemExit(f"{args.model} is a {model.config.backbone} model on latents, not on poses")
    data = load_episodes(args.data, extra_columns=POSE_COLUMNS, progress=False)
    states = pose_to_state(torch.from_numpy(pose_rows(data.extras))).numpy()
    actions = model.action_spec.normalize(data.actions)
    result: dict[str, dict] = {"decoder": {}, "encoder": {}, "step": {}}
    for horizon in [int(h) for h in args.horizons.split(",")]:
        result["step"][f"{horizon} steps"] = step_errors(model, states, actions, data.episode_index, horizon)
    if isinstance(model.codec, PoseCodec):
        codec_parts(model, data, states, args, result)
    else:
        parts(model, backbone, data, states, args, result)
    print_tables(result, args.frames)
    print(json.dumps({"model": args.model, **result}))


def parts(model: WorldModel, backbone: PoseStateDynamics, data: EpisodeArrays, states: np.ndarray,
          args: argparse.Namespace, result: dict[str, dict]) -> None:
    """The decoder's and the encoder's rows of ``result``."""
    rows = np.linspace(0, len(data.frames) - 1, args.frames).astype(int)
    true = data.frames[rows]
    truth = torch.from_numpy(states[rows])
    decoders = ["vae"] + (["fast"] if model.codec.fast_decoder is not None else [])
    with torch.no_grad():
        latents = model.codec.encode(true)
        drawn = backbone.decode_states(truth)
        for name in decoders:
            model.codec.decoder = name
            result["decoder"][f"true pose, {name}"] = frame_scores(model.codec.decode(drawn), true)
            result["decoder"][f"codec reconstruction, {name}"] = frame_scores(model.codec.decode(latents), true)
    default_refine = backbone.config.refine_steps
    for steps in [int(s) for s in args.refine.split(",")]:
        backbone.config.refine_steps = steps
        with torch.no_grad():
            read = backbone.encode_states(latents)
            errs = {k: float(v.mean()) for k, v in pose_errors(read, truth).items()}
            model.codec.decoder = "vae"
            errs.update(frame_scores(model.codec.decode(backbone.decode_states(read)), true))
        result["encoder"][f"refine {steps}"] = errs
    backbone.config.refine_steps = default_refine


def codec_parts(model: WorldModel, data: EpisodeArrays, states: np.ndarray, args: argparse.Namespace,
                result: dict[str, dict]) -> None:
    """The decoder's and the encoder's rows of ``result`` for a model whose codec is a :class:`PoseCodec`."""
    codec = model.codec
    rows = np.linspace(0, len(data.frames) - 1, args.frames).astype(int)
    true = np.asarray(data.frames[rows])
    truth = torch.from_numpy(states[rows])
    default = codec.decoder
    with torch.no_grad():
        tokens = states_to_tokens(truth, codec.token_scale)
        read = codec.encode(true)
        for name in codec.decoders:
            codec.decoder = name
            result["decoder"][f"true pose, {name}"] = frame_scores(codec.decode(tokens), true)
            result["decoder"][f"codec round trip, {name}"] = frame_scores(codec.decode(read), true)
    codec.decoder = default
    errs = {k: float(v.mean()) for k, v in pose_errors(tokens_to_states(read, codec.token_scale), truth).items()}
    errs.update(result["decoder"][f"codec round trip, {default}"])
    result["encoder"][f"codec (refine {codec.pose_config.refine_steps}, drawn with {default})"] = errs


def print_tables(result: dict[str, dict], frames: int) -> None:
    if result["decoder"]:
        print(f"\n### decoder ({frames} held-out frames)\n\n| frames from | PSNR | block IoU | agent err (512) |\n"
              "| --- | ---: | ---: | ---: |")
        for k, r in result["decoder"].items():
            print(f"| {k} | {r['psnr']:.2f} | {r['block_iou']:.3f} | {r['agent_error']:.2f} |")
    if result["encoder"]:
        print("\n### encoder\n\n| | agent (512) | block (512) | angle (deg) | PSNR | block IoU | agent err (512) |\n"
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for k, r in result["encoder"].items():
            print(f"| {k} | {r['agent']:.2f} | {r['block']:.2f} | {r['angle']:.2f} | {r['psnr']:.2f} | "
                  f"{r['block_iou']:.3f} | {r['agent_error']:.2f} |")
    print("\n### step (open loop on true poses)\n\n| horizon | rollouts | agent mean / last | block mean / last | "
          "angle mean / last (deg) |\n| --- | ---: | ---: | ---: | ---: |")
    for k, r in result["step"].items():
        print(f"| {k} | {int(r['rollouts'])} | {r['agent_mean']:.2f} / {r['agent_last']:.2f} | "
              f"{r['block_mean']:.2f} / {r['block_last']:.2f} | {r['angle_mean']:.2f} / {r['angle_last']:.2f} |")


if __name__ == "__main__":
    main()
