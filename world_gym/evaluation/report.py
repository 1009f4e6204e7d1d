"""Human-readable outputs of an evaluation: a markdown report, a scatter plot, side-by-side videos.

The scatter plot (world model against ground truth, one point per policy, Clopper-Pearson error
bars on success and bootstrap bars on coverage) is a PNG drawn with matplotlib when it is
installed (``pip install 'world-gym[eval]'``), else a dependency-free SVG.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from world_gym.video import side_by_side, write_video


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _interval(summary: dict[str, Any], key: str, ci_key: str) -> str:
    value, ci = summary.get(key), summary.get(ci_key)
    if value is None:
        return "n/a"
    if not ci or ci[0] is None:
        return _fmt(value)
    return f"{_fmt(value)} [{_fmt(ci[0])}, {_fmt(ci[1])}]"


#: below this many policies a correlation across policies means nothing (two points always correlate +-1)
MIN_POLICIES_FOR_CORRELATION = 3


def correlation_cells(comparison: dict[str, Any]) -> tuple[str, str]:
    """Pearson and Spearman of one measure's comparison as report cells.

    Args:
        comparison: one entry of the summary's ``comparison`` (``pearson``, ``spearman``, ``policies``).

    Returns:
        The two cells, each ``"n/a (needs >= 3 policies)"`` when fewer policies were compared.
    """
    if comparison["policies"] < MIN_POLICIES_FOR_CORRELATION:
        na = f"n/a (needs >= {MIN_POLICIES_FOR_CORRELATION} policies)"
        return na, na
    return _fmt(comparison["pearson"], 3), _fmt(comparison["spearman"], 3)


def _side_name(env_id: str | None) -> str | None:
    """A short caption for an env id: ``"gym_pusht/PushT-v0"`` -> ``"gym-pusht"``."""
    if not env_id:
        return None
    namespace = env_id.split("/")[0] if "/" in env_id else env_id
    return namespace.replace("_", "-")


def markdown_report(summary: dict[str, Any], plot: str | None = None, videos: list[str] | None = None) -> str:
    """The report as markdown: settings, one row per policy, the comparison, links."""
    lines = [
        "# Policy evaluation: world model vs ground truth", "",
        f"- world model: `{summary['env_id']}` {summary.get('env_kwargs') or ''}",
        f"- reward head (world-model success and coverage): `{summary.get('reward_head')}`",
        f"- ground truth: `{summary.get('ground_truth_id')}`",
        f"- {len(summary['seeds'])} episodes per policy and side (seeds {summary['seeds'][0]}..{summary['seeds'][-1]}), "
        f"at most {summary['max_episode_frames']} frames, {summary['num_envs']} envs at a time", "",
        "Success rates with 95% Clopper-Pearson intervals; mean max coverage with 95% bootstrap intervals.", "",
        "| policy | success (WM) | success (GT) | max coverage (WM) | max coverage (GT) | length WM / GT | wall s WM / GT |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, sides in summary["policies"].items():
        wm, gt = sides.get("world_model"), sides.get("ground_truth")

        def cell(side: dict | None, key: str, ci: str) -> str:
            return _interval(side["summary"], key, ci) if side else "n/a"

        def pair(fn: Any) -> str:
            return " / ".join(fn(s) if s else "n/a" for s in (wm, gt))

        row = [name, cell(wm, "success_rate", "success_ci"), cell(gt, "success_rate", "success_ci"),
               cell(wm, "mean_max_coverage", "coverage_ci"), cell(gt, "mean_max_coverage", "coverage_ci"),
               pair(lambda s: _fmt(s["summary"]["mean_length"], 0)), pair(lambda s: _fmt(s["timing"]["wall_s"], 1))]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Agreement across policies", ""]
    if summary["comparison"]:
        lines += ["| measure | policies | Pearson | Spearman | MMRV |", "| --- | --- | --- | --- | --- |"]
        few = False
        for key, c in summary["comparison"].items():
            pearson, spearman = correlation_cells(c)
            few = few or c["policies"] < MIN_POLICIES_FOR_CORRELATION
            lines.append(f"| {key} | {c['policies']} | {pearson} | {spearman} | {_fmt(c['mmrv'], 3)} |")
        lines += ["", "MMRV (mean maximum rank violation, SIMPLER): 0 is a perfect ranking; in units of the measure."]
        if few:
            lines += ["", f"Pearson and Spearman are left out below {MIN_POLICIES_FOR_CORRELATION} policies: two points "
                      "always correlate perfectly (+1 or -1), so the figure would say nothing about the world model. "
                      "Evaluate more policies (for example the zoo: `--policy zoo:DIR`) to rank them."]
    else:
        lines.append("No comparison (fewer than two policies with both sides, or a measure missing on one side).")
    if plot:
        lines += ["", f"![world model vs ground truth]({plot})"]
    if videos:
        lines += ["", "## Videos (left: world model, right: ground truth)", ""]
        lines += [f"- [{Path(v).stem}]({v})" for v in videos]
    return "\n".join(lines) + "\n"


def _points(summary: dict[str, Any], key: str, ci_key: str) -> list[tuple[str, float, float, list, list]]:
    pts = []
    for name, sides in summary["policies"].items():
        gt = sides.get("ground_truth")
        wm = sides["world_model"]["summary"] if "world_model" in sides else {}
        if gt is None or wm.get(key) is None or gt["summary"].get(key) is None:
            continue
        pts.append((name, gt["summary"][key], wm[key], gt["summary"].get(ci_key) or [None, None],
                    wm.get(ci_key) or [None, None]))
    return pts


def scatter_plot(summary: dict[str, Any], path: str | Path) -> Path | None:
    """Scatter of world model (y) against ground truth (x) for success rate and max coverage.

    Args:
        summary: :func:`world_gym.evaluation.harness.evaluate_policies`'s summary.
        path: output path without suffix; ``.png`` (matplotlib) or ``.svg`` is appended.

    Returns:
        The written file, or None when no policy has both sides.
    """
    panels = [(k, ci, _points(summary, k, ci)) for k, ci in
              (("success_rate", "success_ci"), ("mean_max_coverage", "coverage_ci"))]
    panels = [p for p in panels if p[2]]
    if not panels:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _scatter_svg(panels, path.with_suffix(".svg"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.6), squeeze=False)
    for ax, (key, _, pts) in zip(axes[0], panels):
        for name, x, y, xci, yci in pts:
            xerr = [[x - xci[0]], [xci[1] - x]] if xci[0] is not None else None
            yerr = [[y - yci[0]], [yci[1] - y]] if yci[0] is not None else None
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", capsize=3)
            ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), xlabel=f"ground truth {key}", ylabel=f"world model {key}")
        c = summary["comparison"].get(key)
        if c:
            r, rho = correlation_cells(c)
            ax.set_title(f"r={r}  rho={rho}  MMRV={_fmt(c['mmrv'], 3)}", fontsize=9)
    fig.tight_layout()
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _scatter_svg(panels: list, path: Path) -> Path:
    size, pad = 320, 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{len(panels) * (size + 2 * pad)}" '
             f'height="{size + 2 * pad}" font-family="sans-serif" font-size="9">']
    for k, (key, _, pts) in enumerate(panels):
        ox = k * (size + 2 * pad) + pad

        def xy(x: float, y: float) -> tuple[float, float]:
            return ox + x * size, pad + (1 - y) * size  # noqa: B023

        parts.append(f'<rect x="{ox}" y="{pad}" width="{size}" height="{size}" fill="none" stroke="black"/>')
        parts.append(f'<line x1="{ox}" y1="{pad + size}" x2="{ox + size}" y2="{pad}" stroke="gray" stroke-dasharray="4"/>')
        parts.append(f'<text x="{ox}" y="{pad - 8}">{key}: world model (y) vs ground truth (x)</text>')
        for name, x, y, xci, yci in pts:
            cx, cy = xy(x, y)
            if xci[0] is not None:
                (x0, _), (x1, _) = xy(xci[0], y), xy(xci[1], y)
                parts.append(f'<line x1="{x0:.1f}" y1="{cy:.1f}" x2="{x1:.1f}" y2="{cy:.1f}" stroke="steelblue"/>')
            if yci[0] is not None:
                (_, y0), (_, y1) = xy(x, yci[0]), xy(x, yci[1])
                parts.append(f'<line x1="{cx:.1f}" y1="{y0:.1f}" x2="{cx:.1f}" y2="{y1:.1f}" stroke="steelblue"/>')
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="navy"/>')
            parts.append(f'<text x="{cx + 4:.1f}" y="{cy - 4:.1f}">{name}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts))
    return path


#: nearest-neighbour enlargement of the side-by-side videos (Push-T frames are 96x96)
VIDEO_SCALE = 4


def side_by_side_videos(out_dir: str | Path, fps: float = 10.0, labels: tuple[str, str] = ("world model", "ground truth"),
                        scale: int = VIDEO_SCALE) -> list[Path]:
    """One mp4 per recorded (policy, seed): world model left, ground truth right, each side captioned.

    The shorter episode holds its last frame so both play to the end.

    Args:
        out_dir: the evaluation folder (reads ``episodes/<side>/*.npz``, writes ``videos/``).
        fps: frame rate.
        labels: the captions of the world-model and the ground-truth side.
        scale: integer enlargement of the frames (nearest neighbour).

    Returns:
        The written videos.
    """
    out_dir = Path(out_dir)
    written = []
    for wm_path in sorted((out_dir / "episodes" / "world_model").glob("*.npz")):
        gt_path = out_dir / "episodes" / "ground_truth" / wm_path.name
        videos = [np.load(wm_path)["frames"]]
        if gt_path.is_file():
            videos.append(np.load(gt_path)["frames"])
        length = max(len(v) for v in videos)
        videos = [np.concatenate([v, np.repeat(v[-1:], length - len(v), axis=0)]) for v in videos]
        video = side_by_side(*videos, labels=list(labels[: len(videos)]), scale=scale)
        written.append(write_video(out_dir / "videos" / f"{wm_path.stem}.mp4", video, fps=fps))
    return written


def write_report(summary: dict[str, Any], out_dir: str | Path, fps: float = 10.0) -> dict[str, Any]:
    """Write the plot, the videos and ``report.md`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    plot = scatter_plot(summary, out_dir / "scatter")
    labels = ("world model", _side_name(summary.get("ground_truth_id")) or "ground truth")
    videos = side_by_side_videos(out_dir, fps, labels=labels)
    rel = [str(v.relative_to(out_dir)) for v in videos]
    report = out_dir / "report.md"
    report.write_text(markdown_report(summary, str(plot.relative_to(out_dir)) if plot else None, rel))
    return {"report": str(report), "plot": str(plot) if plot else None, "videos": [str(v) for v in videos]}
