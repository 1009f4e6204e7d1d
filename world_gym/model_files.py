"""The files of a world-model directory: where a model name points, and reading its config and weights.

Every error names the file (and the tensor) at fault. Weights are safetensors only: nothing here
unpickles.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def resolve_model_dir(name_or_path: str | os.PathLike) -> Path:
    """Where a world model lives, in the order diffusers' ``from_pretrained`` looks.

    1. an existing local directory (it must hold ``config.json``);
    2. a shipped model's name (:func:`~world_gym.assets.shipped_models`, e.g. ``"tiny-pusht"``);
    3. a Hub repo id ``"org/name"``, downloaded with ``huggingface_hub``.

    A string that is a path (absolute, ``./``, ``../``, ``~``, more than one ``/``) and does not
    exist is reported as missing without a Hub lookup.

    Raises:
        FileNotFoundError: none of the above.
    """
    from world_gym.assets import shipped_models

    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"a world model is named by a str or path, got {type(name_or_path).__name__}")
    name = os.fspath(name_or_path)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{path} is not a world-model directory: no {CONFIG_NAME}")
        return path
    if path.exists():
        raise FileNotFoundError(f"{path} is a file; a world model is a directory with {CONFIG_NAME} and {WEIGHTS_NAME}")
    if isinstance(name_or_path, str) and name in shipped_models():
        from world_gym.assets import bundled_model_path

        return bundled_model_path(name)
    if isinstance(name_or_path, str) and _HUB_ID.match(name) and ".." not in name:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=name, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME]))
    raise FileNotFoundError(
        f"no such directory: {name!r} is not a local world-model directory, a shipped model "
        f"({shipped_models()}) or a Hub repo id ('org/name')"
    )


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file, refusing a missing, truncated or non-finite one (the error names the file)."""
    from safetensors import SafetensorError

    if not path.is_file():
        raise FileNotFoundError(f"no weights file {path}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupt?): {err}") from err
    check_finite_weights(state, str(path))
    return state


def check_finite_weights(state: dict[str, torch.Tensor], source: str) -> None:
    """Raise ``ValueError`` naming ``source`` and the tensors that hold NaN or infinity."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(f"weights in {source} hold NaN or infinite values in {len(bad)} tensor(s): "
                         f"{', '.join(sorted(bad)[:20])}")


def check_finite_latents(latents: torch.Tensor) -> torch.Tensor:
    """Return ``latents``, or raise ``FloatingPointError`` if the model produced NaN or infinity."""
    if not bool(torch.isfinite(latents).all()):
        raise FloatingPointError(
            "the world model produced non-finite latents (NaN or infinity): its weights or the precision "
            "it runs in (dtype=float16 overflows more easily than bfloat16 or float32) are broken"
        )
    return latents


def read_json(path: Path) -> Any:
    """Parse a JSON file; a missing file, invalid JSON or non-UTF-8 text raise an error naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"no file {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 JSON text: {err}") from err


def load_state_dict_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` that names every missing, unexpected and mis-shaped key in its error."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
        for k in sorted(set(own) & set(state))
        if own[k].shape != state[k].shape
    ]
    if missing or unexpected or shapes:
        lines = [f"weights in {source} do not match the model:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing[:20])}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
        if shapes:
            lines.append(f"  mis-shaped ({len(shapes)}): {'; '.join(shapes[:20])}")
        raise ValueError("\n".join(lines))
    module.load_state_dict(state, strict=True)
