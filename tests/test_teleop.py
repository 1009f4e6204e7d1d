"""Tests for world_gym/teleop (the pygame window, its controllers, recording) and ``world-gym teleop``.

Headless: SDL's dummy video driver (set in conftest.py), input as pygame events posted from the
session's ``on_tick`` hook, a micro random-weight model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
pygame = pytest.importorskip("pygame")
pytest.importorskip("lerobot")

import gymnasium as gym  # noqa: E402

import world_gym  # noqa: E402, F401
from world_gym.action_spec import ActionSpec  # noqa: E402
from world_gym.data.integrity import check_dataset  # noqa: E402
from world_gym.data.lerobot_io import SOURCE  # noqa: E402
from world_gym.teleop import ArmKeys, DeltaKeys, MouseTarget, TeleopSession, make_controller  # noqa: E402

PUSHT = ActionSpec(dim=2, low=[0, 0], high=[512, 512])


def _env(model, frames, chunk_size: int = 4):
    return gym.make("IRASim-PushT-v0", model=model, initial_states=frames, chunk_size=chunk_size, device="cpu",
                    reward_model="zero")


def _load(root: Path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("world-gym/test", root=root)


def _column(ds, key: str) -> np.ndarray:
    return np.asarray([np.asarray(v) for v in ds.hf_dataset[key]])


def _key(key: int, down: bool = True) -> pygame.event.Event:
    return pygame.event.Event(pygame.KEYDOWN if down else pygame.KEYUP, key=key, mod=0, unicode="", scancode=0)


def _script(events: dict[int, list], then=None):
    def on_tick(session: TeleopSession, tick: int) -> None:
        for event in events.get(tick, []):
            if isinstance(event, BaseException):
                raise event
            pygame.event.post(event)
        if then is not None:
            then(session, tick)
    return on_tick


def test_mouse_path_drives_the_targets_and_the_recording_round_trips(tmp_path, micro_model, micro_frames) -> None:
    session = TeleopSession(_env(micro_model, micro_frames), "IRASim-PushT-v0", record=tmp_path / "rec",
                            max_frames=12, realtime=False)
    width, height = session.frame_rect[2:]
    path = [(int(width * (0.1 + 0.07 * t)), int(height * (0.8 - 0.05 * t))) for t in range(12)]
    shown: dict[str, list] = {}

    def keep(s: TeleopSession, tick: int) -> None:
        shown.setdefault("frames", s._episode["frames"])

    events = {t: [pygame.event.Event(pygame.MOUSEMOTION, pos=p, rel=(0, 0), buttons=(0, 0, 0))]
              for t, p in enumerate(path)}
    stats = session.run(_script(events, keep))
    assert stats.frames == 12 and stats.episodes_saved == 1 and not stats.interrupted
    expected = np.array([[x / width * 512, y / height * 512] for x, y in path], np.float32)
    ds = _load(tmp_path / "rec")
    actions = _column(ds, "action")
    np.testing.assert_allclose(actions[:-1], expected, atol=1e-3)  # window pixels -> [0, 512]^2
    assert np.all(np.diff(actions[:-1, 0]) > 0) and np.all(np.diff(actions[:-1, 1]) < 0)  # along the path
    frames = np.stack([(ds[i]["observation.image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                       for i in range(ds.num_frames)])
    np.testing.assert_array_equal(frames, np.stack(shown["frames"]))  # the imagined frames, exactly
    np.testing.assert_array_equal(frames[0], micro_frames.frames[0])
    assert _column(ds, "episode_label").reshape(-1).tolist() == [-1] * 13
    source = json.loads((tmp_path / "rec" / SOURCE).read_text())
    assert source["generator"] == "world-gym teleop" and source["env_id"] == "IRASim-PushT-v0"


def test_reset_marks_and_quit_end_episodes(tmp_path, micro_model, micro_frames) -> None:
    session = TeleopSession(_env(micro_model, micro_frames, chunk_size=1), "IRASim-PushT-v0",
                            record=tmp_path / "rec", max_frames=100, realtime=False)
    events = {3: [_key(pygame.K_TAB)], 5: [_key(pygame.K_y)], 6: [_key(pygame.K_p)], 8: [_key(pygame.K_p)],
              10: [_key(pygame.K_ESCAPE)]}
    stats = session.run(_script(events))
    assert stats.episodes_saved == 3 and stats.frames == 3 + 2 + 3  # ticks 6 and 7 were paused
    ds = _load(tmp_path / "rec")
    seeds, labels = _column(ds, "episode_seed").reshape(-1), _column(ds, "episode_label").reshape(-1)
    episodes = _column(ds, "episode_index").reshape(-1)
    assert [int((episodes == e).sum()) for e in range(3)] == [4, 3, 4]
    assert [int(seeds[episodes == e][0]) for e in range(3)] == [0, 1, 2]
    assert [int(labels[episodes == e][0]) for e in range(3)] == [-1, 1, -1]
    # a second session appends, starting from the next seed
    again = TeleopSession(_env(micro_model, micro_frames, chunk_size=1), "IRASim-PushT-v0",
                          record=tmp_path / "rec", max_frames=2, realtime=False)
    assert again.episode_seed == 3 and again.run().episodes_saved == 1
    assert check_dataset(tmp_path / "rec")["episodes"] == 4


def test_closed_window_saves_and_ctrl_c_drops_only_the_open_episode(tmp_path, micro_model, micro_frames) -> None:
    closed = TeleopSession(_env(micro_model, micro_frames, chunk_size=1), "IRASim-PushT-v0",
                           record=tmp_path / "closed", realtime=False)
    assert closed.run(_script({3: [pygame.event.Event(pygame.QUIT)]})).episodes_saved == 1
    assert _load(tmp_path / "closed").num_frames == 4
    interrupted = TeleopSession(_env(micro_model, micro_frames, chunk_size=1), "IRASim-PushT-v0",
                                record=tmp_path / "ctrl_c", realtime=False)
    stats = interrupted.run(_script({2: [_key(pygame.K_BACKSPACE)], 5: [KeyboardInterrupt()]}))
    assert stats.interrupted and stats.episodes_saved == 1 and stats.frames == 5
    assert check_dataset(tmp_path / "ctrl_c") == {"episodes": 1, "frames": 3}
    assert _load(tmp_path / "ctrl_c").num_episodes == 1
    nothing = TeleopSession(_env(micro_model, micro_frames, chunk_size=1), "IRASim-PushT-v0",
                            record=tmp_path / "none", realtime=False)
    nothing.run(_script({0: [KeyboardInterrupt()]}))
    assert not (tmp_path / "none").exists()  # no episode: no dataset left behind


def test_controllers_map_keys_to_actions() -> None:
    mouse = make_controller(PUSHT, (0, 0, 480, 480))
    assert isinstance(mouse, MouseTarget)
    frame = np.full((96, 96, 3), 255, np.uint8)
    frame[20:24, 70:74] = (65, 105, 225)  # the agent's disc, centred at column 72, row 22
    mouse.reset(frame)
    np.testing.assert_allclose(mouse.action(), [72 * 512 / 96, 22 * 512 / 96], atol=1.0)  # no input: hold still
    mouse.handle(_key(pygame.K_LEFT))
    np.testing.assert_allclose(mouse.action()[0], 72 * 512 / 96 - 8, atol=1.0)
    mouse.handle(pygame.event.Event(pygame.MOUSEMOTION, pos=(480 - 1, 0), rel=(0, 0), buttons=(0, 0, 0)))
    np.testing.assert_allclose(mouse.action(), [479 / 480 * 512, 0.0], atol=1e-3)
    delta = make_controller(ActionSpec(dim=2, low=[-0.1, -0.1], high=[0.1, 0.1]), (0, 0, 10, 10))
    assert isinstance(delta, DeltaKeys)
    delta.handle(_key(pygame.K_w))
    delta.handle(_key(pygame.K_d))
    np.testing.assert_allclose(delta.action(), [-0.0375, 0.0375])
    delta.handle(_key(pygame.K_w, down=False))
    np.testing.assert_allclose(delta.action(), [0.0, 0.0375])
    arm = make_controller(ActionSpec(dim=7, low=[-np.inf] * 7, high=[np.inf] * 7), (0, 0, 10, 10))
    assert isinstance(arm, ArmKeys)
    for key in (pygame.K_r, pygame.K_l, pygame.K_g):
        arm.handle(_key(key))
    np.testing.assert_allclose(arm.action(), [0, 0, 0.01, 0, 0, -0.05, 1.0])
    with pytest.raises(ValueError, match="no teleop controller for a 3-D"):
        make_controller(ActionSpec(dim=3, low=[0] * 3, high=[1] * 3), (0, 0, 10, 10))


def test_cli_headless_with_mirror_records_a_loadable_dataset(tmp_path: Path, capsys) -> None:
    pytest.importorskip("gym_pusht")
    from world_gym.cli import main

    out = tmp_path / "teleop"
    assert main(["teleop", "IRASim-PushT-v0", "--model", "tiny-pusht", "--record", str(out), "--max-frames", "3",
                 "--device", "cpu", "--mirror"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames"] == 3 and summary["episodes_saved"] == 1
    ds = _load(out)
    assert ds.num_episodes == 1 and ds.num_frames == 4
