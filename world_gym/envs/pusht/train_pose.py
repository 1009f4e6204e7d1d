"""Train the pose-state world model (:mod:`world_gym.envs.pusht.pose_state`) on pre-encoded latents.

    world-gym train pose-decoder        # poses -> latents (the sprite decoder)
    world-gym train pose-encoder        # latents -> poses
    world-gym train pose-dynamics       # the step, on multi-step rollouts of itself over true poses
    world-gym train pose-export export_to=runs/pusht/wm_pose
    world-gym train pose-tokens         # a codec directory of pose tokens for IRASim (train dynamics)
    world-gym train pose-renderer renderer_attach=[world_gym/assets/pusht-irasim-pose]   # poses -> pixels

Every stage learns from the privileged pose columns of the datasets that ``latents.json`` names
(:func:`pose_targets`), so the three are independent and can run
at once. Each checkpoints every ``trainer.ckpt_every`` steps into ``out_dir/{decoder,encoder,
dynamics}.pt``, resumes when run again, logs to ``log_{stage}.csv`` and stops after
``trainer.max_minutes``; the learning rate decays on a cosine from ``lr`` to ``lr_min``.

``pose-renderer`` learns the :class:`~world_gym.envs.pusht.sprite_renderer.SpriteRenderer` (a pose
codec's ``render`` decoder) from the frames of the same datasets and their poses, scores it on the
held-out dataset's frames (``renderer.json``) and adds it to the world models in ``renderer_attach``.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from world_gym.envs.pusht import metrics
from world_gym.envs.pusht.pose_codec import (
    POSE_CODEC_FILE,
    RIGID_READERS,
    check_block_reader,
    check_render_refine,
    gate_distance,
)
from world_gym.envs.pusht.pose_state import (
    TOKEN_CHANNELS,
    PoseEncoder,
    PoseStateConfig,
    PoseStateDynamics,
    PoseStep,
    SpriteDecoder,
    pose_to_state,
    wrap_angle,
)
from world_gym.envs.pusht.sprite_renderer import SpriteRenderer, SpriteRendererConfig
from world_gym.envs.pusht.step_growth import grow_weights, grown_config
from world_gym.training.common import CsvLog, compose, export_main, load_checkpoint, save_checkpoint, save_config
from world_gym.data.episodes import clip_starts, load_episodes, load_training_episodes
from world_gym.training.state_space import (
    load_latents,
    object_weight,
    save_state_space_model,
    train_loop,
)
from world_gym.training.train_codec import build_pose_codec, to_tensor
from world_gym.training.train_dynamics import action_spec, learning_rate

if TYPE_CHECKING:
    from world_gym.world_model import WorldModel

# position errors are measured in units of 4 of gym-pusht's 512 (0.75 px of a 96x96 frame)
POSITION_SCALE = 64.0


POSE_COLUMNS = ("observation.state", "observation.block_pose")


def pose_rows(extras: dict[str, np.ndarray]) -> np.ndarray:
    """The ``POSE_COLUMNS`` of a dataset read by :func:`load_episodes` as ``(N, 6)`` float32: agent
    ``x, y`` and block ``x, y`` mapped from ``[0, 512]`` to ``[-1, 1]``, and the cosine and sine of
    the block's angle."""
    agent, block = extras[POSE_COLUMNS[0]], extras[POSE_COLUMNS[1]]
    return np.concatenate([(agent[:, :2] - 256.0) / 256.0, (block[:, :2] - 256.0) / 256.0,
                           np.cos(block[:, 2:3]), np.sin(block[:, 2:3])], axis=1).astype(np.float32)


def pose_targets(cfg: DictConfig, num_frames: int) -> np.ndarray:
    """The privileged pose of every latent frame, ``(N, 6)`` float32 (:func:`pose_rows`).

    Read from the dataset roots that ``latents.json`` names, in the order ``train encode`` read
    them; raises where they are gone, were replayed or disagree with the latents in length.
    """
    meta = json.loads((Path(cfg.codec_dir) / "latents.json").read_text())
    roots = [r for r in meta["roots"] if not r.startswith("replay:")]
    if len(roots) != len(meta["roots"]):
        raise ValueError("autoencoder.pose_weight needs the datasets themselves, not a replay manifest")
    poses = dataset_poses(cfg, roots)[0]
    if len(poses) != num_frames:
        raise ValueError(f"the roots of latents.json hold {len(poses)} frames, latents.npy {num_frames}")
    return poses


def moving_starts(poses: np.ndarray, starts: np.ndarray, length: int, threshold: float = 0.002) -> np.ndarray:
    """The clip starts among ``starts`` whose ``length`` frames see the block move: its position
    (``poses[:, 2:4]``, ``[-1, 1]`` units: 0.002 is half a workspace unit) or its angle's cosine and
    sine change by more than ``threshold`` between two of them. Contact is what the step must learn,
    and the block moves in only a fifth of Push-T's frames."""
    change = np.abs(np.diff(poses[:, 2:6], axis=0)).max(axis=1) > threshold  # frame t -> t + 1
    window = np.concatenate([[0], np.cumsum(change)])
    hits = window[starts + length - 1] - window[starts] > 0
    if not hits.any():
        raise ValueError("dynamics.moving_share > 0, but the block never moves in a training clip")
    return starts[hits]


def model_config(cfg: DictConfig, latent_shape: tuple[int, ...]) -> PoseStateConfig:
    """The model of ``cfg.model`` for latents of shape ``(N, C, h, w)``."""
    fields = OmegaConf.to_container(cfg.model, resolve=True)
    return PoseStateConfig(latent_channels=int(latent_shape[1]), latent_size=tuple(latent_shape[2:]),
                           action_dim=int(cfg.data.action.dim), **fields)  # type: ignore[arg-type]


def true_states(cfg: DictConfig, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The privileged poses of the latent frames: ``(N, 6)`` as the encoder outputs them and
    ``(N, 5)`` states (the angle in radians)."""
    poses = pose_targets(cfg, num_frames)
    return poses, pose_to_state(torch.from_numpy(poses)).numpy()


def _run(cfg: DictConfig, stage: str, net: nn.Module,
         batch_loss: Callable[[np.random.Generator], torch.Tensor]) -> Path:
    """Train ``net`` on ``batch_loss`` with the options of ``cfg[stage]``, resuming ``out_dir/{stage}.pt``."""
    out = Path(cfg.out_dir)
    tc = cfg[stage]
    opt = torch.optim.AdamW(net.parameters(), lr=float(tc.lr), weight_decay=float(tc.get("weight_decay", 0.01)))
    step = 0
    state = load_checkpoint(out / f"{stage}.pt")
    if state is not None:
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = int(state["step"])
    rng = np.random.default_rng(int(cfg.trainer.seed) + step)
    torch.manual_seed(int(cfg.trainer.seed) + 7919 * step)
    schedule = OmegaConf.create({"lr": float(tc.lr), "lr_min": float(tc.lr_min), "steps": int(tc.steps),
                                 "warmup_steps": 1, "lr_schedule": "cosine", "decay_from": 0})

    def save(step: int) -> None:
        save_checkpoint(out / f"{stage}.pt", {"model": net.state_dict(), "opt": opt.state_dict(), "step": step})

    train_loop(cfg, f"pose {stage}", step, int(tc.steps), opt, float(tc.grad_clip), lambda: batch_loss(rng), save,
               CsvLog(out / f"log_{stage}.csv", ["step", "loss", "lr", "seconds"]),
               lambda step: learning_rate(schedule, step))
    return out


def _prepare(cfg: DictConfig, stage: str) -> None:
    """Threads, seed, ``out_dir`` and its ``config_{stage}.yaml``."""
    torch.set_num_threads(int(cfg.trainer.threads))
    torch.manual_seed(int(cfg.trainer.seed))
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / f"config_{stage}.yaml")


def _setup(cfg: DictConfig, stage: str) -> tuple[torch.Tensor, PoseStateConfig, np.ndarray, np.ndarray]:
    """:func:`_prepare`, then the latents in memory, the model config and the true poses and states."""
    _prepare(cfg, stage)
    latents = torch.from_numpy(np.array(load_latents(cfg), dtype=np.float16))  # in memory: random rows
    poses, states = true_states(cfg, len(latents))
    return latents, model_config(cfg, tuple(latents.shape)), poses, states


def train_decoder(cfg: DictConfig) -> Path:
    """Train (or resume) the sprite decoder on (true pose, latents) pairs."""
    latents, config, _, states_np = _setup(cfg, "decoder")
    states = torch.from_numpy(states_np)
    net = SpriteDecoder(config)
    tc = cfg.decoder
    mean = latents[: int(tc.mean_frames)].float().mean(0)

    def batch_loss(rng: np.random.Generator) -> torch.Tensor:
        rows = torch.from_numpy(rng.integers(0, len(latents), int(tc.batch_size)))
        x = latents[rows].float()
        return (object_weight(x, mean, float(tc.object_weight)) * (net(states[rows]) - x) ** 2).mean()

    return _run(cfg, "decoder", net, batch_loss)


def train_encoder(cfg: DictConfig) -> Path:
    """Train (or resume) the pose encoder on (latents, true pose) pairs."""
    latents, config, poses_np, _ = _setup(cfg, "encoder")
    poses = torch.from_numpy(poses_np)
    net = PoseEncoder(config)
    tc = cfg.encoder
    # the angle's cosine and sine at the block's lever arm (about 60 of 512), positions as they are
    weight = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.25, 0.25]) * POSITION_SCALE

    def batch_loss(rng: np.random.Generator) -> torch.Tensor:
        rows = torch.from_numpy(rng.integers(0, len(latents), int(tc.batch_size)))
        return ((net(latents[rows].float()) - poses[rows]) * weight).pow(2).mean()

    return _run(cfg, "encoder", net, batch_loss)


RENDERER_WEIGHTS = "renderer.safetensors"
RENDERER_META = "renderer.json"


@torch.no_grad()
def score_renderer(renderer: SpriteRenderer, frames: np.ndarray, states: np.ndarray,
                   batch: int = 256) -> dict[str, float]:
    """PSNR, block IoU and agent error (units of 512, over the frames where both show the agent; nan
    where none does) of ``frames`` ``(N, H, W, 3)`` against the renderer's drawing of their true
    ``states`` ``(N, 5)``: the fidelity benchmark's metrics, PSNR capped at 60 dB."""
    drawn = torch.cat([renderer(torch.from_numpy(states[i : i + batch])) for i in range(0, len(states), batch)])
    pred = ((drawn.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    agent = metrics.agent_error(pred, frames)
    found = agent[~np.isnan(agent)]  # frames where both show the agent's colour
    return {"psnr": float(np.mean(np.minimum(metrics.psnr(pred, frames), 60.0))),
            "block_iou": float(np.mean(metrics.block_iou(pred, frames))),
            "agent_error": float(found.mean() * metrics.PUSHT_WORKSPACE / frames.shape[2]) if len(found) else np.nan,
            "frames": len(frames)}


def load_renderer(directory: str | Path) -> SpriteRenderer:
    """The :class:`SpriteRenderer` that ``train pose-renderer`` wrote to ``directory``."""
    directory = Path(directory)
    meta = json.loads((directory / RENDERER_META).read_text())
    renderer = SpriteRenderer(SpriteRendererConfig.from_dict(meta["config"]))
    renderer.load_state_dict(load_file(str(directory / RENDERER_WEIGHTS)))
    return renderer.eval()


def attach_renderer(renderer_dir: str | Path, model_dir: str | Path) -> Path:
    """Add the renderer of ``renderer_dir`` to the pose-codec world model in ``model_dir`` (rewritten in
    place, its backbone stored in the dtype it was stored in; the metadata's ``renderer`` records the
    renderer's steps, data and held-out scores)."""
    from world_gym.world_model import WEIGHTS_NAME, WorldModel

    with safe_open(str(Path(model_dir) / WEIGHTS_NAME), "pt") as f:
        stored = {f.get_slice(k).get_dtype() for k in f.keys() if k.startswith("backbone.")}
    model = WorldModel.from_pretrained(model_dir)
    model.attach_renderer(load_renderer(renderer_dir))
    if getattr(model.codec, "render_refine_steps", 0):  # it reads through the renderer: its readings change
        model.start_encodings = None
    meta = json.loads((Path(renderer_dir) / RENDERER_META).read_text())
    model.config.metadata = {**model.config.metadata, "renderer": {k: v for k, v in meta.items() if k != "config"}}
    model.save_pretrained(model_dir, backbone_dtype=torch.bfloat16 if stored == {"BF16"} else None)
    return Path(model_dir)


def train_renderer(cfg: DictConfig) -> Path:
    """Train (or resume) the sprite renderer on (true pose, frame) pairs; writes ``renderer.safetensors``
    and ``renderer.json`` (its config and held-out scores) to ``out_dir``."""
    _prepare(cfg, "renderer")
    out, tc = Path(cfg.out_dir), cfg.renderer
    if tc.get("roots"):  # datasets with frames named directly
        roots = [str(r) for r in tc.roots]
        train = load_training_episodes(roots, progress=False)
        states = pose_to_state(torch.from_numpy(dataset_poses(cfg, roots)[0]))
        if len(states) != len(train):
            raise ValueError(f"renderer.roots hold {len(train)} frames but {len(states)} poses")
    else:  # the datasets codec_dir's latents were encoded from
        roots = json.loads((Path(cfg.codec_dir) / "latents.json").read_text())["roots"]
        train = load_training_episodes(roots, progress=False)
        states = torch.from_numpy(true_states(cfg, len(train))[1])
    frames = train.frames
    config = SpriteRendererConfig(frame_size=frames.shape[1:3], block_extent=float(tc.block_extent),
                                  block_centre=tuple(tc.block_centre), agent_extent=float(tc.agent_extent),
                                  texels_per_unit=float(tc.texels_per_unit), canvas=int(tc.get("canvas", 0)))
    # the board as most frames show it: the median of frames spread over the data
    spread = np.linspace(0, len(frames) - 1, min(len(frames), int(tc.background_frames))).astype(int)
    net = SpriteRenderer(config, to_tensor(np.median(frames[spread], 0)[None].astype(np.uint8))[0])

    def batch_loss(rng: np.random.Generator) -> torch.Tensor:
        rows = np.sort(rng.integers(0, len(frames), int(tc.batch_size)))
        return (net(states[rows]) - to_tensor(frames[rows])).pow(2).mean()

    _run(cfg, "renderer", net, batch_loss)
    net.eval()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out / RENDERER_WEIGHTS))
    heldout = load_episodes(cfg.data.heldout_root, extra_columns=POSE_COLUMNS, progress=False)
    pick = np.linspace(0, len(heldout) - 1, min(len(heldout), int(tc.eval_frames))).astype(int)
    held_states = pose_to_state(torch.from_numpy(pose_rows({k: v[pick] for k, v in heldout.extras.items()}))).numpy()
    scores = score_renderer(net, np.asarray(heldout.frames[pick]), held_states)
    step = int(load_checkpoint(out / "renderer.pt")["step"])
    (out / RENDERER_META).write_text(json.dumps({"config": config.to_dict(), "steps": step, "frames": len(frames),
                                                 "roots": roots, "heldout": scores}, indent=1) + "\n")
    print(f"renderer, {step} steps: held-out PSNR {scores['psnr']:.2f} dB, block IoU {scores['block_iou']:.3f}, "
          f"agent error {scores['agent_error']:.2f} units of 512 ({scores['frames']} frames)")
    for model_dir in cfg.get("renderer_attach", []) or []:
        attach_renderer(out, model_dir)
    return out


def pose_loss(pred: torch.Tensor, target: torch.Tensor, angle_weight: float) -> torch.Tensor:
    """Squared position error (units of 4 of 512) plus ``angle_weight`` x squared angle error (radians)."""
    positions = ((pred[..., :4] - target[..., :4]) * POSITION_SCALE).pow(2).mean()
    return positions + angle_weight * wrap_angle(pred[..., 4] - target[..., 4]).pow(2).mean()


def rollout_loss(model: PoseStateDynamics, states: torch.Tensor, actions: torch.Tensor, context_noise: float,
                 pad_history_prob: float, angle_weight: float, one_step_weight: float = 0.0) -> torch.Tensor:
    """:func:`pose_loss` of the step's own ``L - 2``-step rollout from each clip's first two true states,
    plus ``one_step_weight`` x that of its single steps from every pair of true states in the clip.

    The rollout term keeps long rollouts stable; alone it lets the single step stay blunt (under
    the errors of its own earlier steps the best guess of a contact is a cautious one), and the
    one-step term holds each step to what gym-pusht did from the true states.

    Args:
        states: ``(B, L, 5)`` true states of consecutive frames.
        actions: ``(B, L, 2)`` normalised; ``actions[:, t]`` leads from frame ``t`` to ``t + 1``.
        context_noise: both context states get one Gaussian offset of a std drawn per clip from
            ``U(0, context_noise)``: a misread pose, not a misread motion.
        pad_history_prob: share of clips whose context is the second frame twice, its target where the
            agent stands, as a rollout starts right after ``reset``.
    """
    b = states.shape[0]
    offset = context_noise * torch.rand(b, 1) * torch.randn(b, 5)
    prev, state = states[:, 0] + offset, states[:, 1] + offset
    prev_action = actions[:, 0]
    pad = torch.rand(b, 1) < pad_history_prob
    prev = torch.where(pad, state, prev)
    prev_action = torch.where(pad, state[:, 0:2], prev_action)
    pred = model.rollout_states(prev, state, prev_action, actions[:, 1:-1])
    loss = pose_loss(pred, states[:, 2:], angle_weight)
    if one_step_weight > 0:
        single = model.step(states[:, :-2], states[:, 1:-1], actions[:, :-2], actions[:, 1:-1])
        loss = loss + one_step_weight * pose_loss(single, states[:, 2:], angle_weight)
    return loss


def dataset_poses(cfg: DictConfig, roots: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poses ``(N, 6)`` (:func:`pose_rows`), normalised actions ``(N, 2)`` and episode ids ``(N,)``
    (distinct across roots) of the datasets at ``roots``, read without their frames: a root collected
    with ``world-gym collect --no-images`` serves as well as one with frames."""
    poses, actions, episodes, offset = [], [], [], 0
    for root in roots:
        data = load_episodes(root, extra_columns=POSE_COLUMNS, progress=False, images=False)
        poses.append(pose_rows(data.extras))
        actions.append(action_spec(cfg).normalize(data.actions))
        episodes.append(data.episode_index + offset)
        offset = int(episodes[-1].max()) + 1
    return np.concatenate(poses), np.concatenate(actions).astype(np.float32), np.concatenate(episodes)


def step_config(cfg: DictConfig) -> PoseStateConfig:
    """The model of a step trained on dataset roots (``dynamics.roots``): the backbone config of
    ``dynamics.init_from`` when given, else ``cfg.model`` on pose tokens (``tokens.token_scale``), the
    form the shipped pose-state model steps."""
    init = cfg.dynamics.get("init_from")
    if init:
        from world_gym.model_files import CONFIG_NAME, resolve_model_dir
        from world_gym.world_model import read_config

        config = read_config(resolve_model_dir(init) / CONFIG_NAME)
        if config.backbone != "PoseState":
            raise ValueError(f"dynamics.init_from={init} holds a {config.backbone!r} backbone, not 'PoseState'")
        return grown_config(PoseStateConfig.from_dict(config.backbone_config), cfg.dynamics.get("grow"))
    fields = OmegaConf.to_container(cfg.model, resolve=True)
    return PoseStateConfig(latent_channels=TOKEN_CHANNELS, latent_size=(1, 1), action_dim=int(cfg.data.action.dim),
                           token_scale=float(cfg.tokens.token_scale), **fields)  # type: ignore[arg-type]


def init_step(model: PoseStateDynamics, init_from: str) -> None:
    """Load the step weights (``backbone.step_net.*``) of the world model at ``init_from`` into ``model``,
    growing them where ``model``'s step is wider (:func:`grow_weights`)."""
    from world_gym.model_files import read_model_weights

    state = read_model_weights(init_from, "backbone.step_net.")
    model.step_net.load_state_dict(grow_weights({k: v.float() for k, v in state.items()},
                                                model.step_net.state_dict()))


def train_dynamics(cfg: DictConfig) -> Path:
    """Train (or resume) the pose step on clips of true poses and their actions: those of ``codec_dir``'s
    latents, or of the datasets ``dynamics.roots`` names (no latents needed), starting from the step of
    ``dynamics.init_from`` when given."""
    _prepare(cfg, "dynamics")
    tc = cfg.dynamics
    roots = list(tc.get("roots") or [])
    if roots:
        poses, actions_np, episodes = dataset_poses(cfg, roots)
        states = pose_to_state(torch.from_numpy(poses))
        actions = torch.from_numpy(actions_np)
        model = PoseStateDynamics(step_config(cfg))
        print(f"pose dynamics on {len(poses)} frames of {len(np.unique(episodes))} episodes from {len(roots)} roots")
    else:
        episodes = np.load(Path(cfg.codec_dir) / "episode_index.npy")
        poses, states_np = true_states(cfg, len(episodes))
        states = torch.from_numpy(states_np)
        actions = torch.from_numpy(action_spec(cfg).normalize(np.load(Path(cfg.codec_dir) / "actions.npy")))
        model = PoseStateDynamics(model_config(cfg, load_latents(cfg).shape))
    if tc.get("init_from"):
        init_step(model, str(tc.init_from))  # a checkpoint in out_dir, if any, replaces it
    length = int(tc.unroll) + 2
    starts = clip_starts(episodes, length)
    if len(starts) == 0:
        raise ValueError(f"no episode is {length} frames long")
    moving_share = float(tc.moving_share)
    moving = moving_starts(poses, starts, length) if moving_share > 0 else starts

    def batch_loss(rng: np.random.Generator) -> torch.Tensor:
        first = rng.choice(starts, int(tc.batch_size))
        n_moving = int(rng.binomial(len(first), moving_share))
        first[:n_moving] = rng.choice(moving, n_moving)
        # an episode's angle may cross +-pi inside a clip: unwrap it from the clip's first frame
        rows = torch.from_numpy(first[:, None] + np.arange(length))
        clip = states[rows].clone()
        clip[..., 4] = clip[:, :1, 4] + torch.cumsum(
            torch.cat([torch.zeros_like(clip[:, :1, 4]), wrap_angle(torch.diff(clip[..., 4], dim=1))], 1), 1)
        return rollout_loss(model, clip, actions[rows], float(tc.context_noise), float(tc.pad_history_prob),
                            float(tc.angle_weight), float(tc.get("one_step_weight", 0.0)))

    return _run(cfg, "dynamics", model.step_net, batch_loss)


def export_step(cfg: DictConfig, target: str | Path) -> Path:
    """The world model at ``base_model`` with the step of ``out_dir/dynamics.pt`` in place of its own,
    written to ``target``: codec, renderer and start encodings unchanged; ``metadata`` gets the step's
    training steps, datasets and options (``dynamics_steps``, ``dynamics_roots``, ``dynamics_config``,
    from ``out_dir/config_dynamics.yaml``)."""
    from world_gym.world_model import WorldModel

    state = load_checkpoint(Path(cfg.out_dir) / "dynamics.pt")
    if state is None:
        raise FileNotFoundError(f"{cfg.out_dir} has no dynamics.pt: train pose-dynamics first")
    model = WorldModel.from_pretrained(cfg.base_model)
    if model.config.backbone != "PoseState":
        raise ValueError(f"base_model={cfg.base_model} holds a {model.config.backbone!r} backbone, not 'PoseState'")
    saved = Path(cfg.out_dir) / "config_dynamics.yaml"  # the options the step trained with, not the export's
    trained_cfg = OmegaConf.load(saved) if saved.is_file() else cfg
    trained = trained_cfg.dynamics
    # the step's own form: its init_from's (grown) when it had one, else the base model's (grown)
    step = (step_config(trained_cfg) if trained.get("init_from")
            else grown_config(model.backbone.config, trained.get("grow")))
    if step.token_scale != model.backbone.config.token_scale:
        raise ValueError(f"the step in {cfg.out_dir} steps pose tokens of scale {step.token_scale}, "
                         f"base_model={cfg.base_model}'s codec {model.backbone.config.token_scale}")
    if step != model.backbone.config:  # another form of step replaces the base model's (encoder and decoder kept)
        model.backbone.step_net = PoseStep(step).to(model.dtype)
        model.backbone.config = step
        model.config.backbone_config = step.to_dict()
    model.backbone.step_net.load_state_dict(state["model"])
    if cfg.get("block_gate_deadband") is not None:
        set_gate_deadband(model, cfg.block_gate_deadband)
    refine = any(cfg.get(f"render_refine_{key}") is not None for key in ("steps", "lr", "method"))
    steps = model.codec.render_refine_steps if cfg.get("render_refine_steps") is None else int(cfg.render_refine_steps)
    # in the order whose in-between codec is valid too ('rigid_fit' needs steps > 0; any reader works with them)
    for option in (("refine", "reader") if steps > 0 else ("reader", "refine")):
        if option == "refine" and refine:
            set_render_refine(model, steps, cfg.get("render_refine_lr"), cfg.get("render_refine_method"))
        if option == "reader" and cfg.get("block_reader") is not None:
            set_block_reader(model, str(cfg.block_reader))
    model.config.metadata = {**model.config.metadata, "dynamics_steps": int(state["step"]),
                             "dynamics_roots": list(trained.get("roots") or []),
                             "dynamics_config": OmegaConf.to_container(trained, resolve=True)}
    return model.save_pretrained(target)


def set_gate_deadband(model: WorldModel, deadband: float) -> None:
    """Give ``model``'s pose codec the untouched-block gate's ``deadband`` (pixels of 512) in its
    config too. The gate acts on rollouts, not on what the codec reads, so the model's start
    encodings stay valid: they are keyed to the changed config."""
    from world_gym.model_files import codec_digest

    if not hasattr(model.codec, "block_gate_deadband"):
        raise ValueError("block_gate_deadband needs a model on pose tokens (a pose codec)")
    deadband = gate_distance("block_gate_deadband", deadband)
    valid = model.start_encodings is not None and model.start_encodings.mismatch(model) is None
    model.codec.block_gate_deadband = deadband
    _set_pose_options(model, block_gate_deadband=deadband)
    if valid:
        model.start_encodings = replace(model.start_encodings, codec_digest=codec_digest(model))


def set_render_refine(model: WorldModel, steps: int, lr: float | None = None, method: str | None = None) -> None:
    """Give ``model``'s pose codec ``steps`` of render-and-compare refinement of what it reads
    (``render_refine_steps``, in its config too) at rate ``lr`` (``render_refine_lr``) by ``method``
    (``render_refine_method``: ``"adam"`` or ``"gauss_newton"``); None keeps the codec's. What the
    codec reads changes, so the model's start encodings are dropped: write them again with
    ``world-gym start-encodings``."""
    if not hasattr(model.codec, "render_refine_steps") or model.codec.renderer is None:
        raise ValueError("render_refine_steps needs a model on pose tokens whose codec has a renderer")
    steps, lr, method = check_render_refine(steps, model.codec.render_refine_lr if lr is None else lr,
                                            model.codec.render_refine_method if method is None else method)
    check_block_reader(model.codec.block_reader, steps)
    model.codec.render_refine_steps, model.codec.render_refine_lr = steps, lr
    model.codec.render_refine_method = method
    _set_pose_options(model, render_refine_steps=steps, render_refine_lr=lr, render_refine_method=method)
    model.start_encodings = None


def set_block_reader(model: WorldModel, reader: str) -> None:
    """Give ``model``'s pose codec the ``block_reader`` where its reading of a start frame starts (in its
    config too). What the codec reads changes, so the model's start encodings are dropped: write them
    again with ``world-gym start-encodings``."""
    if not hasattr(model.codec, "block_reader"):
        raise ValueError("block_reader needs a model on pose tokens (a pose codec)")
    check_block_reader(reader, model.codec.render_refine_steps)
    if reader in RIGID_READERS and model.codec.render_refine_steps and model.codec.renderer is None:
        raise ValueError(f"block_reader={reader} with render_refine_steps needs a codec with a renderer")
    model.codec.block_reader = reader
    _set_pose_options(model, block_reader=reader)
    model.start_encodings = None


def _set_pose_options(model: WorldModel, **options: Any) -> None:
    """Write pose-codec ``options`` into ``model``'s config (what a saved model's codec is built with)."""
    model.config.codec = {**model.config.codec, "pose": {**model.config.codec["pose"], **options}}


def export_world_model(cfg: DictConfig, target: str | Path) -> Path:
    """Codec + pose-state backbone of ``out_dir`` as a world-model directory at ``target`` (with
    ``base_model``: :func:`export_step`).

    With ``export_tokens`` the encoder and decoder join the codec instead: a
    :class:`~world_gym.envs.pusht.pose_codec.PoseCodec` (``tokens.token_scale``, ``tokens.agent_from_pixels``)
    reads and draws the poses, and the backbone steps its tokens (``PoseStateConfig.token_scale``),
    so the model can read the agent from its colour and draw with a sprite renderer
    (``pose-renderer renderer_attach=[...]``) as ``IRASim-PushT-v0`` does."""
    if cfg.get("base_model"):
        return export_step(cfg, target)
    out = Path(cfg.out_dir)
    parts = {name: load_checkpoint(out / f"{name}.pt") for name in ("decoder", "encoder", "dynamics")}
    missing = [name for name, state in parts.items() if state is None]
    if missing:
        raise FileNotFoundError(f"{out} has no {', '.join(f'{m}.pt' for m in missing)}: train "
                                f"{', '.join(f'pose-{m}' for m in missing)} first")
    config = model_config(cfg, load_latents(cfg).shape)
    metadata = {"backbone_kind": "pose_state", **{f"{name}_steps": int(state["step"]) for name, state in parts.items()}}
    if not cfg.get("export_tokens", False):
        backbone = PoseStateDynamics(config)
        backbone.decoder.load_state_dict(parts["decoder"]["model"])
        backbone.encoder.load_state_dict(parts["encoder"]["model"])
        backbone.step_net.load_state_dict(parts["dynamics"]["model"])
        return save_state_space_model(cfg, target, "PoseState", backbone, metadata)
    scale = float(cfg.tokens.token_scale)
    pose = {**config.to_dict(), "token_scale": scale,
            "agent_from_pixels": bool(cfg.tokens.get("agent_from_pixels", False))}
    codec = build_pose_codec(cfg.codec_dir, out, pose)
    backbone = PoseStateDynamics(replace(config, latent_channels=TOKEN_CHANNELS, latent_size=(1, 1),
                                         token_scale=scale))
    backbone.step_net.load_state_dict(parts["dynamics"]["model"])
    return save_state_space_model(cfg, target, "PoseState", backbone, {**metadata, "pose_tokens": True}, codec=codec)


def write_tokens(cfg: DictConfig) -> Path:
    """``out_dir/tokens``: the privileged pose of every frame as a :class:`~world_gym.envs.pusht.pose_codec.PoseCodec`
    token (``latents.npy``, ``(N, 6, 1, 1)``), with ``codec_dir``'s actions and episode index, and
    ``pose_codec.json`` naming the VAE and this run's encoder and decoder, so that ``world-gym train
    dynamics codec_dir=<out_dir>/tokens`` trains IRASim on poses and ``train export`` ships it with a
    pose codec (``load_codec``)."""
    _prepare(cfg, "tokens")
    codec_dir, out = Path(cfg.codec_dir), Path(cfg.out_dir)
    missing = [name for name in ("decoder", "encoder") if not (out / f"{name}.pt").is_file()]
    if missing:
        raise FileNotFoundError(f"{out} has no {', '.join(m + '.pt' for m in missing)}: train "
                                f"{', '.join('pose-' + m for m in missing)} first")
    episodes = np.load(codec_dir / "episode_index.npy")
    scale = float(cfg.tokens.token_scale)
    tokens = (pose_targets(cfg, len(episodes)) * scale)[:, :, None, None].astype(np.float32)
    target = out / "tokens"
    target.mkdir(parents=True, exist_ok=True)
    np.save(target / "latents.npy", tokens)
    for name in ("actions.npy", "episode_index.npy"):
        shutil.copyfile(codec_dir / name, target / name)
    meta = json.loads((codec_dir / "latents.json").read_text())
    (target / "latents.json").write_text(json.dumps({**meta, "pose_tokens": "privileged poses",
                                                     "token_scale": scale}, indent=1) + "\n")
    config = model_config(cfg, load_latents(cfg).shape).to_dict()
    (target / POSE_CODEC_FILE).write_text(json.dumps({
        "vae_codec_dir": str(codec_dir.resolve()), "pose_dir": str(out.resolve()),
        "pose": {**config, "token_scale": scale,
                 "agent_from_pixels": bool(cfg.tokens.get("agent_from_pixels", False))}}, indent=1) + "\n")
    print(f"wrote {len(tokens)} pose tokens to {target}")
    return target


def main_tokens(overrides: list[str]) -> int:
    write_tokens(compose("train_pose", overrides))
    return 0


def main_renderer(overrides: list[str]) -> int:
    train_renderer(compose("train_pose", overrides))
    return 0


def main_decoder(overrides: list[str]) -> int:
    train_decoder(compose("train_pose", overrides))
    return 0


def main_encoder(overrides: list[str]) -> int:
    train_encoder(compose("train_pose", overrides))
    return 0


def main_dynamics(overrides: list[str]) -> int:
    train_dynamics(compose("train_pose", overrides))
    return 0


def main_export(overrides: list[str]) -> int:
    return export_main("train_pose", export_world_model, overrides)


if __name__ == "__main__":
    sys.exit(main_dynamics(sys.argv[1:]))
