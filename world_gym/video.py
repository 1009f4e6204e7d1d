"""Writing frames to video files (mp4 through imageio's bundled ffmpeg, or gif)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

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


def upscale(video: np.ndarray, factor: int) -> np.ndarray:
    """Enlarge frames ``(T, H, W, 3)`` by an integer ``factor`` (nearest neighbour: pixels stay sharp)."""
    if factor < 1:
        raise ValueError(f"scale factor must be an integer >= 1, got {factor}")
    return video if factor == 1 else video.repeat(factor, axis=1).repeat(factor, axis=2)


def add_label(video: np.ndarray, text: str, height: int | None = None) -> np.ndarray:
    """Put ``text`` in a white band above every frame of ``video`` ``(T, H, W, 3)`` uint8.

    Args:
        video: the frames.
        text: the caption, drawn in black (cut to the frame's width).
        height: the band's height in pixels (default: about a tenth of the frame, at least 14).

    Returns:
        Frames of shape ``(T, H + height, W, 3)``.
    """
    from PIL import Image, ImageDraw, ImageFont

    width = video.shape[2]
    height = height or max(14, video.shape[1] // 10)
    try:
        font = ImageFont.load_default(size=max(8, int(height * 0.6)))
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        font = ImageFont.load_default()
    band = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(band)
    top, bottom = draw.textbbox((0, 0), text, font=font)[1::2]
    draw.text((4, (height - (bottom - top)) // 2 - top), text, fill=(0, 0, 0), font=font)
    band_array = np.broadcast_to(np.asarray(band, np.uint8), (len(video), height, width, 3))
    return np.concatenate([band_array, video], axis=1)


def side_by_side(*videos: np.ndarray, gap: int = 2, labels: Sequence[str] | None = None,
                 scale: int = 1) -> np.ndarray:
    """Concatenate videos ``(T, H, W, 3)`` left to right with a white gap (cut to the shortest).

    Args:
        videos: uint8 frames, one array per side.
        gap: white pixels between two sides (after scaling).
        labels: one caption per side, drawn in a band above it (None: no captions).
        scale: integer nearest-neighbour enlargement of every side (96x96 frames are small to watch).

    Returns:
        The combined frames ``(T, H', W', 3)``.
    """
    if labels is not None and len(labels) != len(videos):
        raise ValueError(f"need one label per video: {len(videos)} videos, {len(labels)} labels")
    length = min(len(v) for v in videos)
    videos = tuple(upscale(np.asarray(v[:length]), scale) for v in videos)
    height = max(v.shape[1] for v in videos)
    parts = []
    for i, v in enumerate(videos):
        if v.shape[1] < height:
            v = np.pad(v, ((0, 0), (0, height - v.shape[1]), (0, 0), (0, 0)), constant_values=255)
        if labels is not None:
            v = add_label(v, labels[i])
        parts.append(v)
        if gap and i < len(videos) - 1:
            parts.append(np.full((length, v.shape[1], gap, 3), 255, np.uint8))
    return np.concatenate(parts, axis=2)
