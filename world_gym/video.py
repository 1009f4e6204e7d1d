"""Writing frames to video files (mp4 through imageio's bundled ffmpeg, or gif)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_video(path: str | Path, frames: np.ndarray, fps: float = 10.0) -> Path:
    """Write uint8 frames ``(T, H, W, 3)`` to ``path`` (``.mp4`` or ``.gif``); returns the path."""
    import imageio.v2 as imageio

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 (T, H, W, 3) with T >= 1, got {frames.dtype} {frames.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gif":
        imageio.mimsave(path, list(frames), duration=1000 / fps, loop=0)
    else:
        # macro_block_size=1 keeps odd sizes such as 96x96 unpadded.
        with imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=1, quality=8) as writer:
            for frame in frames:
                writer.append_data(frame)
    return path


def side_by_side(*videos: np.ndarray, gap: int = 2) -> np.ndarray:
    """Concatenate equally long videos ``(T, H, W, 3)`` left to right with a white gap."""
    length = min(len(v) for v in videos)
    height = max(v.shape[1] for v in videos)
    parts = []
    for i, v in enumerate(videos):
        v = v[:length]
        if v.shape[1] < height:
            v = np.pad(v, ((0, 0), (0, height - v.shape[1]), (0, 0), (0, 0)), constant_values=255)
        parts.append(v)
        if gap and i < len(videos) - 1:
            parts.append(np.full((length, height, gap, 3), 255, np.uint8))
    return np.concatenate(parts, axis=2)
