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


def shipped_models() -> list[str]:
    """Names of the world models shipped in the package (``gym.make(id, model=name)`` takes them)."""
    return sorted(p.name for p in ASSETS_DIR.iterdir() if (p / "config.json").is_file())


def bundled_model_path(name: str) -> Path:
    """Directory of a world model shipped in the package (``config.json`` + ``model.safetensors``).

    Args:
        name: a shipped model's name, one of :func:`shipped_models`.

    Returns:
        The model's directory.

    Raises:
        FileNotFoundError: no shipped model has that name (the message lists the shipped ones).
    """
    if name not in shipped_models():
        raise FileNotFoundError(f"no shipped world model named {name!r}; shipped: {shipped_models()}")
    return ASSETS_DIR / name
