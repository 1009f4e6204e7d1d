"""A hermetic test run: library caches in a scratch folder, and no test touches what the clone does not ship.

Imported by ``conftest.py`` before anything else, so that libraries which read their cache location
at import time (Hugging Face, LeRobot, torch hub, matplotlib) see the scratch folder.

A Python audit hook records every file a test opens or creates (``open``, ``os.mkdir``):
- reading or writing the checkout's ignored data folders (``data/``, ``runs/``, ``outputs/``) or
  anything under the user's real home (other than the Python installation itself);
- writing anywhere but the temporary folder (pytest's ``tmp_path`` lives there), ``__pycache__``
  and pytest's own cache.
``conftest.py`` fails the test that did it. Audit hooks do not follow subprocesses; those inherit
the scratch ``HOME`` and caches instead.
"""

from __future__ import annotations

import atexit
import os
import shutil
import site
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REAL_HOME = Path(os.path.expanduser("~")).resolve()
SCRATCH = Path(tempfile.mkdtemp(prefix="world-gym-tests-")).resolve()
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)

CACHE_VARS = {
    "HOME": "home",
    "XDG_CACHE_HOME": "home/.cache",
    "XDG_CONFIG_HOME": "home/.config",
    "HF_HOME": "huggingface",
    "HF_LEROBOT_HOME": "lerobot",
    "TORCH_HOME": "torch",
    "MPLCONFIGDIR": "matplotlib",
    "WANDB_DIR": "wandb",
}
# Variables that would point a test at files outside the clone, or at the network.
CLEARED_VARS = ("WORLD_GYM_MODELS", "WORLD_GYM_IRASIM_DATA", "HF_DATASETS_CACHE", "HF_HUB_CACHE",
                "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "OPENAI_API_KEY", "OPENAI_BASE_URL")

for _var, _sub in CACHE_VARS.items():
    (SCRATCH / _sub).mkdir(parents=True, exist_ok=True)
    os.environ[_var] = str(SCRATCH / _sub)
for _var in CLEARED_VARS:
    os.environ.pop(_var, None)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "disabled"

FORBIDDEN = tuple(REPO / name for name in ("data", "runs", "outputs"))
PYTHON_ROOTS = tuple({Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                                   sys.base_exec_prefix, *site.getsitepackages())})
WRITABLE = (Path(tempfile.gettempdir()).resolve(), SCRATCH, Path("/dev"))

violations: list[str] = []


def _within(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _check(path: Path, writing: bool) -> str | None:
    if _within(path, FORBIDDEN):
        return "a data folder the clone does not ship"
    if _within(path, (REAL_HOME,)) and not _within(path, (REPO, SCRATCH, *PYTHON_ROOTS)):
        return "the user's home"
    if not writing or "__pycache__" in path.parts or _within(path, (REPO / ".pytest_cache",)):
        return None
    if _within(path, (REPO,)):  # checked apart: a clone may itself lie in the temporary folder
        return "inside the clone"
    if not _within(path, WRITABLE):
        return "outside the temporary folder"
    return None


def _audit(event: str, args: tuple) -> None:
    if event == "open":
        target, mode, flags = args
        writing = bool(mode and any(c in mode for c in "wax+")) or bool(
            flags and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND))
    elif event == "os.mkdir":
        target, writing = args[0], True
    else:
        return
    if target is None or isinstance(target, int):
        return
    try:
        path = Path(os.path.abspath(os.fsdecode(target)))
    except (TypeError, ValueError):
        return
    where = _check(path, writing)
    if where is not None:
        violations.append(f"{'wrote' if writing else 'read'} {path} ({where})")


sys.addaudithook(_audit)
