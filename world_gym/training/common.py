"""Pieces every training entry point shares: Hydra config composition, checkpoints, CSV logs, EMA."""

from __future__ import annotations

import copy
import csv
import math
import os
import time
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn


def configs_dir() -> Path:
    """The Hydra config folder: ``$WORLD_GYM_CONFIGS`` if set, else the package's ``world_gym/configs``.

    The configs ship as package data, so training works from an installed package as well as from
    a source checkout.

    Returns:
        The folder holding ``train_dynamics.yaml`` and the config groups.

    Raises:
        FileNotFoundError: when the folder has no ``train_dynamics.yaml``.
    """
    env = os.environ.get("WORLD_GYM_CONFIGS")
    path = Path(env) if env else Path(str(resources.files("world_gym").joinpath("configs")))
    if not (path / "train_dynamics.yaml").is_file():
        hint = "unset WORLD_GYM_CONFIGS or point it at" if env else "reinstall world-gym, or set WORLD_GYM_CONFIGS to"
        raise FileNotFoundError(f"no Hydra configs at {path}; {hint} a folder holding train_dynamics.yaml")
    return path


def compose(config_name: str, overrides: list[str] | None = None) -> DictConfig:
    """Compose ``<configs_dir()>/<config_name>.yaml`` with Hydra overrides such as ``trainer.steps=100``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(configs_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides or []))


def training_device(name: str) -> torch.device:
    """``trainer.device``: ``cpu``, ``cuda`` (this process's ``LOCAL_RANK`` GPU under torchrun), or
    ``auto`` (CUDA when there is one)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("trainer.device=cuda, but torch sees no CUDA device")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device(name)


def learning_rate(trainer: DictConfig, step: int, warm_from: int = 0) -> float:
    """The learning rate of ``step``: a linear warm-up of ``warmup_steps`` from ``warm_from``, then
    ``lr``, or with ``lr_schedule: cosine`` a cosine decay from ``lr`` at ``decay_from`` to ``lr_min``
    at ``steps`` (``decay_from`` lets a resumed run anneal only its own steps)."""
    base = float(trainer.lr)
    lr = base * min(1.0, (step - warm_from + 1) / max(1, int(trainer.warmup_steps)))
    schedule = str(trainer.get("lr_schedule", "constant"))
    if schedule == "constant":
        return lr
    if schedule != "cosine":
        raise ValueError(f"trainer.lr_schedule must be 'constant' or 'cosine', got {schedule!r}")
    start, end = int(trainer.get("decay_from", 0) or 0), int(trainer.steps)
    progress = min(1.0, max(0.0, (step - start) / max(1, end - start)))
    low = float(trainer.get("lr_min", 0.0))
    return min(lr, low + (base - low) * 0.5 * (1.0 + math.cos(math.pi * progress)))


class EMA:
    """Exponential moving average of a module's parameters (buffers copied as they are).

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so an early
    export is not dominated by the initial weights (with adaLN-Zero those predict zero noise,
    which a sampler turns into exploding latents).
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        # one fused update of all parameters: a loop of small kernels costs more than the step on a GPU
        torch._foreach_lerp_(list(self.module.parameters()), [p.detach() for p in module.parameters()], 1.0 - decay)
        for ema_b, b in zip(self.module.buffers(), module.buffers()):
            ema_b.copy_(b)


class CsvLog:
    """Appends rows of metrics to ``path`` (header written once), so a resumed run continues the file."""

    def __init__(self, path: str | Path, fields: list[str]) -> None:
        self.path = Path(path)
        self.fields = fields
        self.start = time.perf_counter()
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(fields)

    def write(self, **row: Any) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row.get(k, "") for k in self.fields])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically write a training checkpoint (tensors and plain values only)."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only``: no arbitrary unpickling)."""
    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def save_config(cfg: DictConfig, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(OmegaConf.to_yaml(cfg, resolve=True))


def export_dtype(name: Any) -> torch.dtype | None:
    """The torch dtype an ``export.backbone_dtype`` option names (``bfloat16``), None for none; a
    ``ValueError`` for a name that is not a torch dtype."""
    if not name:
        return None
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"export.backbone_dtype must name a torch dtype (e.g. bfloat16), got {name!r}")
    return dtype


def set_export_passes(model: Any, export: Any) -> None:
    """Set a world model's passes from an ``export`` config group: ``frames_per_pass`` (null leaves
    the model's) and ``clip_padding`` (null: no padding)."""
    model.set_passes(int(export["frames_per_pass"]) if export.get("frames_per_pass") else None,
                     str(export["clip_padding"]) if export.get("clip_padding") else "none")


def export_main(config_name: str, export: Callable[[DictConfig, Path | str], Path], overrides: list[str],
                compose_config: Callable[[str, list[str]], DictConfig] = compose) -> int:
    """``world-gym train *-export [export_to=DIR] [overrides]``: ``export`` to DIR (default ``out_dir/world_model``).

    Args:
        config_name: the Hydra config.
        export: writes the world model of a config to a directory.
        overrides: Hydra overrides, with ``export_to=DIR`` among them or not.
        compose_config: composes a config (default: from the package's configs).
    """
    target = [o.split("=", 1)[1] for o in overrides if o.startswith("export_to=")]
    cfg = compose_config(config_name, [o for o in overrides if not o.startswith("export_to=")])
    print(f"wrote {export(cfg, target[0] if target else Path(cfg.out_dir) / 'world_model')}")
    return 0
