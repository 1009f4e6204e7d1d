import json

import imageio.v2 as imageio

from world_gym.cli import build_parser, main


def test_rollout_writes_a_playable_video(tmp_path, capsys):
    out = tmp_path / "rollout.mp4"
    assert main(["rollout", "--frames", "4", "--chunk-size", "2", "--steps", "1", "--device", "cpu",
                 "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["frames"] == 4 and out.stat().st_size > 0
    frames = imageio.mimread(out)
    assert len(frames) == 5 and frames[0].shape == (96, 96, 3)


def test_parser_lists_rollout():
    assert "rollout" in build_parser().format_help()
