"""Convert the official IRASim checkpoints (github.com/bytedance/IRASim) into world-model directories.

The release ships one ``.pt`` file per dataset and conditioning variant
(``{languagetable,rt1,bridge}/checkpoints/{frame_ada,video_ada}/0300000.pt``): a torch pickle
``{"model", "ema", "opt", "args"}`` whose ``args`` is an OmegaConf ``DictConfig``. This module turns
one of them, plus the SDXL VAE, into a world-model directory (``config.json`` +
``model.safetensors``) that :meth:`WorldModel.from_pretrained` and ``gym.make`` load.

.. warning::
   This is the ONE place in world-gym that unpickles a file, and only when asked to by
   :func:`load_official_checkpoint` (``world-gym convert-irasim``). By default it unpickles with
   ``torch.load(weights_only=True)`` and an allow-list of the OmegaConf classes the release's
   ``args`` needs, which cannot run code. ``trust_pickle=True`` (``--trust-pickle``) falls back to
   full unpickling, which CAN RUN ARBITRARY CODE hidden in the file: use it only on a checkpoint
   you downloaded from the authors yourself. Nothing else in world-gym reads pickles; converted
   directories hold safetensors only.

>>> # world-gym convert-irasim languagetable/checkpoints/frame_ada/0300000.pt \\
>>> #     --dataset languagetable --variant frame_ada --vae stabilityai/stable-diffusion-xl-base-1.0 \\
>>> #     --out ~/.cache/world_gym/models/irasim-languagetable-frame_ada
"""

from __future__ import annotations

import argparse
import math
import os
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL

from world_gym.action_spec import ActionSpec
from world_gym.samplers.diffusion import SamplerConfig
from world_gym.codecs.vae import LatentCodec
from world_gym.backbones.embeddings import sincos_1d, sincos_2d
from world_gym.backbones.irasim import SIZES, IRASim, IRASimConfig
from world_gym.world_model import WorldModel, WorldModelConfig, load_state_dict_strict

INF = math.inf
POSE_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
# The release's ``extras`` code for each conditioning variant (``args.extras``).
VARIANT_EXTRAS = {"frame_ada": 3, "video_ada": 5}
# What the authors sample with: diffusers PNDM (PRK warm-up kept, since their scheduler config does
# not skip it), linspace timesteps, 50 steps (configs/base/diffusion.yaml, pretrained_models/scheduler).
OFFICIAL_SAMPLER = SamplerConfig(
    name="pndm", num_inference_steps=50, options={"skip_prk_steps": False, "timestep_spacing": "linspace"}
)
CHECKPOINT_URL = (
    "https://lf-robot-opensource.bytetos.com/obj/lab-robot-public/opensource_IRASim_v1/{dataset}_checkpoints_data.tar.gz"
)
SDXL_VAE_HUB_ID = "stabilityai/stable-diffusion-xl-base-1.0"


@dataclass(frozen=True)
class OfficialRelease:
    """What one dataset of the IRASim release fixes: frame size, action convention, fps.

    Attributes:
        dataset: the release's ``args.dataset`` (``languagetable``, ``rt1``, ``bridge``).
        frame_size: ``(H, W)`` of the frames the model was trained on.
        action_names, action_scale: per-dimension names and the scaling the release's dataset
            applies before the model (``c_act_scaler``).
        action_low, action_high: bounds in env units (Language-Table's ``[-0.1, 0.1]`` delta box;
            the 7-D arm deltas are left unbounded).
        action_embedder: the backbone's action-embedding layout (see :class:`IRASimConfig`).
        fps: control rate of the source dataset.
    """

    dataset: str
    frame_size: tuple[int, int]
    action_names: tuple[str, ...]
    action_scale: tuple[float, ...]
    action_low: float
    action_high: float
    action_embedder: str
    fps: float

    @property
    def action_spec(self) -> ActionSpec:
        dim = len(self.action_names)
        return ActionSpec(
            dim=dim, low=[self.action_low] * dim, high=[self.action_high] * dim,
            scale=list(self.action_scale), offset=0.0, names=list(self.action_names),
        )


RELEASES: dict[str, OfficialRelease] = {
    "languagetable": OfficialRelease("languagetable", (288, 512), ("dx", "dy"), (20.0,) * 2, -0.1, 0.1, "linear2", 5.0),
    "rt1": OfficialRelease("rt1", (256, 320), tuple(POSE_NAMES), (20.0,) * 6 + (1.0,), -INF, INF, "mlp", 3.0),
    "bridge": OfficialRelease("bridge", (256, 320), tuple(POSE_NAMES), (20.0,) * 6 + (1.0,), -INF, INF, "mlp", 5.0),
}


def _safe_globals() -> list[Any]:
    """Classes the release's pickles need beyond tensors: OmegaConf containers for ``args``."""
    import collections
    import typing

    from omegaconf import DictConfig, ListConfig, nodes
    from omegaconf.base import ContainerMetadata, Metadata

    node_types = [getattr(nodes, n) for n in ("AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode")]
    return [
        DictConfig, ListConfig, ContainerMetadata, Metadata, *node_types, typing.Any,
        dict, list, tuple, set, int, float, str, bool, collections.defaultdict, collections.OrderedDict,
        argparse.Namespace,
    ]


#: The first bytes of ``torch.save``'s legacy (non-zip) format: a pickled magic number.
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def check_torch_checkpoint(path: Path) -> None:
    """Raise ``ValueError`` unless ``path`` is in a ``torch.save`` format (read without unpickling).

    A ``torch.save`` file is a zip archive with a ``data.pkl`` record, or, in the legacy format,
    starts with a pickled magic number. Anything else (random bytes, a safetensors file, text, a
    plain pickle) is refused here, so its owner is not advised to unpickle it with ``--trust-pickle``.
    """
    with path.open("rb") as f:
        head = f.read(16)
    if head.startswith(_LEGACY_TORCH_MAGIC):
        return
    if head.startswith(b"PK\x03\x04") and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            raise ValueError(f"{path} is not a PyTorch checkpoint: a damaged zip archive ({err})") from err
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return
        raise ValueError(f"{path} is not a PyTorch checkpoint: a zip archive without the data.pkl of torch.save")
    kind = "an empty file" if not head else "a file of another format"
    if len(head) >= 8 and int.from_bytes(head[:8], "little") < 100_000_000 and head[8:9] == b"{":
        kind = "a safetensors file (it needs no conversion if it already is a world-model directory's weights)"
    elif head[:1] == b"\x80":
        kind = "a plain pickle, not written by torch.save"
    elif head and all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        kind = "a text file"
    raise ValueError(f"{path} is not a PyTorch checkpoint ({kind}); convert-irasim reads the official "
                     "IRASim .pt files written by torch.save")


def _unpickle(path: Path, trust_pickle: bool) -> Any:
    def load(mmap: bool) -> Any:
        # mmap keeps the optimizer state (two more copies of the weights) out of memory.
        if trust_pickle:
            return torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)

    try:
        try:
            return load(mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            return load(mmap=False)  # legacy (non-zip) torch.save format
    except Exception as err:  # noqa: BLE001  (torch raises UnpicklingError or RuntimeError here)
        refused_by_allow_list = "weights_only" in str(err).lower() or "global" in str(err).lower()
        if trust_pickle or not refused_by_allow_list:
            raise
        raise ValueError(
            f"{path} holds Python objects outside the safe allow-list, so it was not unpickled.\n"
            f"torch said: {_refusal_reason(str(err))}\n"
            "If you downloaded this file from the IRASim authors yourself, re-run with --trust-pickle "
            "(trust_pickle=True); full unpickling can run code hidden in the file."
        ) from err


def _refusal_reason(message: str) -> str:
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message)
    return f"it contains {found.group(1)}" if found else message.strip().splitlines()[0]


def load_official_checkpoint(
    path: str | os.PathLike, weights: str = "ema", trust_pickle: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read an official IRASim ``.pt`` checkpoint: its backbone state dict and its training args.

    This unpickles ``path`` (see the module warning): with ``weights_only=True`` and an
    allow-list by default, fully with ``trust_pickle=True``.

    Args:
        path: the ``.pt`` file.
        weights: ``"ema"`` (what the authors sample with) or ``"model"`` (the raw weights).
        trust_pickle: allow full unpickling (runs code from the file; trusted files only).

    Returns:
        ``(state_dict, args)``: float32 tensors with any ``module.`` prefix stripped, and the
        ``args`` entry as a plain dict (empty if the file has none).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model', got {weights!r}")
    check_torch_checkpoint(path)
    ckpt = _unpickle(path, trust_pickle)
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path} holds a {type(ckpt).__name__}, not the release's dict of model/ema/opt/args")
    if weights in ckpt:
        state = ckpt[weights]
    elif all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        state = ckpt  # a bare state dict, as some re-saved checkpoints are
    else:
        raise ValueError(f"{path} has no {weights!r} entry; its keys are {sorted(map(str, ckpt))}")
    state = {re.sub(r"^module\.", "", k): v.float() for k, v in state.items()}
    return state, _args_to_dict(ckpt.get("args"))


def _args_to_dict(args: Any) -> dict[str, Any]:
    if args is None:
        return {}
    if isinstance(args, argparse.Namespace):
        return dict(vars(args))
    if isinstance(args, dict):
        return dict(args)
    from omegaconf import DictConfig, OmegaConf

    if isinstance(args, DictConfig):
        return OmegaConf.to_container(args, resolve=False)  # type: ignore[return-value]
    raise ValueError(f"unexpected type of the checkpoint's args: {type(args).__name__}")


def detect_variant(state: dict[str, torch.Tensor], action_dim: int) -> str:
    """``frame_ada`` or ``video_ada``, from the action-embedding weights."""
    if "mlp.fc1.weight" in state:
        return "video_ada"
    if "embed_state.fc1.weight" in state:
        return "frame_ada" if state["embed_state.fc1.weight"].shape[1] == action_dim else "video_ada"
    return "frame_ada"


def infer_backbone_config(
    state: dict[str, torch.Tensor],
    release: OfficialRelease,
    variant: str,
    latent_hw: tuple[int, int],
    args: dict[str, Any] | None = None,
    num_heads: int | None = None,
) -> IRASimConfig:
    """The :class:`IRASimConfig` whose parameters have exactly the shapes in ``state``.

    Width, depth, patch, channels, frames and action-embedding widths are read from the weights;
    the number of attention heads (invisible in the weights) comes from ``num_heads``, else from
    the named size whose depth and width match (IRASim-XL: 28 blocks of width 1152, 16 heads).

    Raises:
        ValueError: a required tensor is missing, or ``args`` contradict ``release``/``variant``.
    """
    args = args or {}
    if args.get("dataset") not in (None, release.dataset):
        raise ValueError(f"the checkpoint was trained on {args['dataset']!r}, not {release.dataset!r}")
    extras = args.get("extras")
    if extras is not None and extras != VARIANT_EXTRAS[variant]:
        raise ValueError(f"the checkpoint has extras={extras} ({_variant_of(extras)}), not {variant}")
    for key in ("x_embedder.proj.weight", "temp_embed", "final_layer.linear.weight"):
        if key not in state:
            raise ValueError(f"not an IRASim state dict: missing key {key!r}")
    hidden, in_channels, patch, _ = state["x_embedder.proj.weight"].shape
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    out_channels = state["final_layer.linear.weight"].shape[0] // (patch * patch)
    if num_heads is None:
        num_heads = next((h for d, w, h in SIZES.values() if (d, w) == (depth, hidden)), None)
    if num_heads is None:
        raise ValueError(f"cannot tell the attention heads of a depth-{depth} width-{hidden} model; pass num_heads")
    if release.action_embedder == "linear2":
        inner = state["embed_arm_state.weight"].shape[0]
    else:
        inner = state["embed_state.fc1.weight"].shape[0]
    video_mlp_hidden = state["mlp.fc1.weight"].shape[0] if "mlp.fc1.weight" in state else None
    return IRASimConfig(
        latent_channels=in_channels,
        latent_size=latent_hw,
        patch_size=patch,
        hidden_size=hidden,
        depth=depth,
        num_heads=num_heads,
        num_frames=state["temp_embed"].shape[1],
        action_dim=len(release.action_names),
        conditioning=variant,
        action_embedder=release.action_embedder,
        action_hidden_mult=inner // hidden,
        final_layer_action_conditioning=variant == "frame_ada" and bool(args.get("final_frame_ada", False)),
        video_mlp_hidden=video_mlp_hidden,
        learn_sigma=out_channels == 2 * in_channels,
    )


def _variant_of(extras: Any) -> str:
    return next((v for v, e in VARIANT_EXTRAS.items() if e == extras), f"unsupported extras={extras}")


def check_position_embeddings(state: dict[str, torch.Tensor], config: IRASimConfig) -> None:
    """Check the stored sin-cos tables against the token grid that ``config`` implies.

    The release stores ``pos_embed``/``temp_embed`` in the checkpoint; a grid of the right token
    count but the wrong aspect (a wrong frame size or VAE) shows up here instead of as garbage frames.
    """
    grid = (config.latent_size[0] // config.patch_size, config.latent_size[1] // config.patch_size)
    expected = {
        "pos_embed": sincos_2d(config.hidden_size, grid),
        "temp_embed": sincos_1d(config.hidden_size, np.arange(config.num_frames)),
    }
    for key, table in expected.items():
        stored = state[key].reshape(-1, config.hidden_size).float()
        if stored.shape[0] != table.shape[0]:
            raise ValueError(
                f"{key} in the checkpoint has {stored.shape[0]} positions, but frames of "
                f"{config.latent_size} latents cut in {config.patch_size}x{config.patch_size} patches give "
                f"{table.shape[0]}: wrong --dataset (frame size) or a VAE with another downsampling?"
            )
        if not torch.allclose(stored, torch.from_numpy(table).float(), atol=1e-4):
            raise ValueError(f"{key} in the checkpoint does not match the sin-cos table of a {grid} token grid")


def backbone_from_state(state: dict[str, torch.Tensor], config: IRASimConfig, source: str) -> IRASim:
    """Build the backbone without allocating it and adopt the tensors of ``state`` (strict).

    Raises:
        ValueError: naming every missing, unexpected or mis-shaped key.
    """
    with torch.device("meta"):
        backbone = IRASim(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "copying into a meta parameter is a no-op", per key
        load_state_dict_strict(backbone, state, source)  # names every mismatch; copies nothing on "meta"
    backbone.load_state_dict(state, strict=True, assign=True)
    return backbone.eval()


def load_vae(vae: str | os.PathLike) -> AutoencoderKL:
    """The VAE from a diffusers directory (with or without a ``vae/`` subfolder) or a Hub id.

    A Hub id (``stabilityai/stable-diffusion-xl-base-1.0``) is read from the local Hugging Face
    cache, or downloaded when online; its ``vae`` subfolder is used.
    """
    path = Path(vae).expanduser()
    if path.is_dir():
        sub = "vae" if (path / "vae" / "config.json").is_file() else None
        if sub is None and not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is neither an AutoencoderKL directory nor has a vae/ subfolder")
        return AutoencoderKL.from_pretrained(str(path), subfolder=sub)
    if path.exists() or str(vae).count("/") != 1:
        raise FileNotFoundError(f"no VAE directory at {vae!r} (and it is not a Hub id such as {SDXL_VAE_HUB_ID!r})")
    return AutoencoderKL.from_pretrained(str(vae), subfolder="vae")


def convert(
    checkpoint: str | os.PathLike,
    dataset: str,
    vae: str | os.PathLike | AutoencoderKL,
    out: str | os.PathLike,
    variant: str | None = None,
    weights: str = "ema",
    trust_pickle: bool = False,
    num_heads: int | None = None,
) -> Path:
    """Convert one official checkpoint into a world-model directory.

    Args:
        checkpoint: the release's ``.pt`` file.
        dataset: ``languagetable``, ``rt1`` or ``bridge``.
        vae: the SDXL VAE: a diffusers directory, a Hub id, or a loaded ``AutoencoderKL``.
        out: directory to write (created).
        variant: ``frame_ada`` or ``video_ada``; None reads it from the weights.
        weights, trust_pickle: see :func:`load_official_checkpoint`.
        num_heads: attention heads, for models of a non-standard size.

    Returns:
        The written directory.
    """
    if dataset not in RELEASES:
        raise ValueError(f"dataset must be one of {sorted(RELEASES)}, got {dataset!r}")
    release = RELEASES[dataset]
    state, args = load_official_checkpoint(checkpoint, weights, trust_pickle)
    found = detect_variant(state, len(release.action_names))
    if variant is not None and variant not in VARIANT_EXTRAS:
        raise ValueError(f"variant must be one of {sorted(VARIANT_EXTRAS)}, got {variant!r}")
    if variant is not None and variant != found:
        raise ValueError(f"--variant {variant} given, but the action-embedding weights are those of {found}")
    vae_model = vae if isinstance(vae, AutoencoderKL) else load_vae(vae)
    codec = LatentCodec(vae_model.float().eval())
    latent_hw = codec.latent_size(release.frame_size)
    config = infer_backbone_config(state, release, found, latent_hw, args, num_heads)
    check_position_embeddings(state, config)
    backbone = backbone_from_state(state, config, source=f"{checkpoint} [{weights}]")
    wm_config = WorldModelConfig(
        backbone_config=config.to_dict(),
        codec=codec.config_dict(),
        action=release.action_spec,
        frame_size=release.frame_size,
        fps=release.fps,
        chunk_size=config.num_frames - 1,
        history=1,
        sampler=OFFICIAL_SAMPLER,
        # the release trained on 16-frame clips only; a shorter chunk runs a whole clip padded with
        # zero (no-motion) actions rather than a shorter clip the weights never saw
        clip_padding="zeros",
        metadata={
            "family": f"irasim-{dataset}",
            "source": "IRASim official release (github.com/bytedance/IRASim), converted by world-gym",
            "dataset": dataset,
            "variant": found,
            "weights": weights,
            "checkpoint": Path(checkpoint).name,
            "train_args": {k: args[k] for k in ("model", "num_frames", "video_size", "extras") if k in args},
        },
    )
    model = WorldModel(wm_config, backbone=backbone, codec=codec)
    return model.save_pretrained(out)


def run(ns: argparse.Namespace) -> int:
    """Run a parsed ``convert-irasim`` command."""
    out = convert(
        ns.checkpoint, ns.dataset, ns.vae, Path(ns.out).expanduser(),
        variant=ns.variant, weights=ns.weights, trust_pickle=ns.trust_pickle, num_heads=ns.num_heads,
    )
    print(f"wrote {out} (load it with gym.make(..., checkpoint={str(out)!r}) or WorldModel.from_pretrained)")
    return 0
