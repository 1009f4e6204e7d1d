"""No code runs from a checkpoint: a malicious pickle planted wherever world-gym reads one.

Every ``torch.load`` in the package reads with ``weights_only=True``; the IRASim converter is the
one place that may unpickle fully, and only with ``trust_pickle=True`` (``--trust-pickle``).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Callable

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("world_gym", "envs", "reward_models", "policies")


class Planted:
    """Unpickling this runs ``exec``: it writes a marker file (the proof that code ran)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",)


def plant(path: Path, marker: Path, legacy: bool, payload: Callable[[Planted], object]) -> Path:
    """``torch.save`` a checkpoint-shaped object with the planted payload inside."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload(Planted(marker)), path, _use_new_zipfile_serialization=not legacy)
    return path


def resume_reward_head(path: Path) -> None:
    from world_gym.reward_models.train_resnet_iou import TrainConfig, train

    train(TrainConfig(out=str(path.parent), steps=1, batch_size=2, eval_every=100, warmup=1))


def training_common(path: Path) -> None:
    from world_gym.training.common import load_checkpoint

    load_checkpoint(path)


def irasim_latent_video(path: Path) -> None:
    from world_gym.envs.irasim_official import load_latent_video

    load_latent_video(path)


def converter_without_trust(path: Path) -> None:
    from world_gym.convert_irasim import load_official_checkpoint

    load_official_checkpoint(path)


def reward_head_training_loader(path: Path) -> None:
    from world_gym.reward_models.train_resnet_iou import load_training_checkpoint

    load_training_checkpoint(path)


READERS = {
    # reader: (file name it reads, where the payload hides)
    "train-reward-head resume": (resume_reward_head, "checkpoint.pt",
                                 lambda p: {"net": p, "opt": {}, "state": {"step": 0}}),
    "load_training_checkpoint": (reward_head_training_loader, "checkpoint.pt",
                                 lambda p: {"net": {}, "opt": {}, "state": p}),
    "training.common.load_checkpoint": (training_common, "ckpt.pt", lambda p: {"model": p, "step": 3}),
    "irasim_official.load_latent_video": (irasim_latent_video, "episode.pt", lambda p: {"obs": p}),
    "convert-irasim (no --trust-pickle)": (converter_without_trust, "0300000.pt",
                                           lambda p: {"ema": {"x": torch.zeros(1)}, "args": p}),
}


def test_the_planted_payload_runs_when_unpickled(tmp_path: Path) -> None:
    """The payload is live: plain unpickling runs it (so the tests below can fail)."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(Planted(marker)))
    assert marker.read_text() == "code ran"


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_no_reader_runs_planted_code(tmp_path: Path, reader: str, legacy: bool) -> None:
    read, name, payload = READERS[reader]
    marker = tmp_path / "marker"
    path = plant(tmp_path / "run" / name, marker, legacy, payload)
    with pytest.raises((ValueError, pickle.UnpicklingError, RuntimeError)):
        read(path)
    assert not marker.exists(), f"{reader} ran code from {path}"


def test_reward_head_resume_refusal_is_explained(tmp_path: Path) -> None:
    path = plant(tmp_path / "run" / "checkpoint.pt", tmp_path / "marker", False,
                 lambda p: {"net": p, "opt": {}, "state": {}})
    with pytest.raises(ValueError, match="not loaded.*never unpickled"):
        reward_head_training_loader(path)


def test_converter_names_the_opt_in_and_trust_pickle_is_the_only_way_in(tmp_path: Path) -> None:
    from world_gym.convert_irasim import load_official_checkpoint

    marker = tmp_path / "marker"
    path = plant(tmp_path / "0300000.pt", marker, False, lambda p: {"ema": {"x": torch.zeros(1)}, "args": p})
    with pytest.raises(ValueError, match="--trust-pickle"):
        load_official_checkpoint(path)
    assert not marker.exists()
    state, args = load_official_checkpoint(path, trust_pickle=True)  # exec returned None: no args
    assert args == {} and marker.exists()  # the explicit opt-in does unpickle: that is what --trust-pickle means


def test_reward_head_checkpoints_of_plain_values_resume(tmp_path: Path) -> None:
    """A checkpoint as train-reward-head writes it (tensors, optimizer state, counters) loads."""
    from world_gym.reward_models.train_resnet_iou import load_training_checkpoint

    net = torch.nn.Linear(2, 1)
    opt = torch.optim.AdamW(net.parameters())
    net(torch.ones(1, 2)).sum().backward()
    opt.step()
    torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "state": {"step": 4, "wall_s": 1.5}},
               tmp_path / "checkpoint.pt")
    saved = load_training_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["state"]["step"] == 4 and torch.equal(saved["net"]["weight"], net.weight.detach())
    (tmp_path / "truncated.pt").write_bytes((tmp_path / "checkpoint.pt").read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated.pt"):
        load_training_checkpoint(tmp_path / "truncated.pt")


def _sources() -> list[Path]:
    return [p for d in SOURCE_DIRS if (REPO / d).is_dir() for p in (REPO / d).rglob("*.py")]


def test_every_torch_load_reads_weights_only() -> None:
    """Static guard: every ``torch.load`` call in the package passes ``weights_only=True``, except
    the converter's explicit ``trust_pickle`` branch; nothing calls ``pickle.load(s)``."""
    offenders = []
    for path in _sources():
        text = path.read_text()
        rel = path.relative_to(REPO).as_posix()
        for match in re.finditer(r"torch\.load\(", text):
            call = text[match.start(): text.find("\n", match.start())]
            if "weights_only=True" in call:
                continue
            if rel == "world_gym/convert_irasim.py" and "weights_only=False" in call:
                before = text[:match.start()].rsplit("\n", 3)
                if any("if trust_pickle" in line for line in before):
                    continue
            offenders.append(f"{rel}: {call.strip()}")
        offenders += [f"{rel}: {m.group(0)}" for m in re.finditer(r"pickle\.loads?\(", text)]
    assert not offenders, "reads that can unpickle code:\n" + "\n".join(offenders)
