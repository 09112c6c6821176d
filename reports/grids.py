"""Sample grids: a few stored videos, a row of evenly spaced frames each, with their prompts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evalkit.errors import InputError


def frame_strip(video: np.ndarray, n_frames: int, gap: int = 2) -> np.ndarray:
    """``n_frames`` evenly spaced frames of one uint8 (T, H, W, 3) video side by side, white gaps between."""
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise InputError(f"sample grid: expected a uint8 video (T, H, W, 3), got {video.dtype} {video.shape}")
    t, h, _, _ = video.shape
    picks = np.unique(np.linspace(0, t - 1, min(n_frames, t)).round().astype(int))
    parts = []
    for k, i in enumerate(picks):
        if k:
            parts.append(np.full((h, gap, 3), 255, dtype=np.uint8))
        parts.append(video[i])
    return np.concatenate(parts, axis=1)


def sample_grid(videos: np.ndarray, prompts: list[str], path: Path, *, max_videos: int = 4, n_frames: int = 8,
                title: str = "") -> Path:
    """PNG with one row per video (at most ``max_videos``), its prompt above it."""
    if videos.ndim != 5 or len(videos) == 0:
        raise InputError(f"sample grid: expected uint8 videos (k, T, H, W, 3) with k >= 1, got {videos.shape}")
    k = min(max_videos, len(videos))
    strips = [frame_strip(videos[i], n_frames) for i in range(k)]
    aspect = strips[0].shape[1] / strips[0].shape[0]
    width = min(12.0, max(4.0, 1.6 * aspect))
    row_h = width / aspect + 0.45
    fig = Figure(figsize=(width, row_h * k + (0.3 if title else 0.0)))
    for i, strip in enumerate(strips):
        ax = fig.add_subplot(k, 1, i + 1)
        ax.imshow(strip, interpolation="nearest")
        ax.set_axis_off()
        prompt = prompts[i] if i < len(prompts) else ""
        ax.set_title("\n".join(textwrap.wrap(prompt, 110)[:2]), fontsize=8, loc="left")
    if title:
        fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path
