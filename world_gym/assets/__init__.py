"""Files shipped inside the package: small world models, reward-head weights, initial states."""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent


def asset_path(*parts: str) -> Path:
    """Path of a shipped file; raises ``FileNotFoundError`` naming it when it is absent."""
    path = ASSETS_DIR.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"asset {'/'.join(parts)} is not in this installation ({ASSETS_DIR})")
    return path


def bundled_model_path(name: str) -> Path:
    """Directory of a world model shipped in the package (``config.json`` + ``model.safetensors``)."""
    path = asset_path(name)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} holds no world model (no config.json)")
    return path
