"""The video contract shared by generators, datasets and detectors.

Videos travel as uint8 tensors shaped (B, T, H, W, 3), RGB, values 0..255. Each detector owns any
resizing and normalisation after that point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from evalkit.errors import InputError


@dataclass(frozen=True)
class VideoSpec:
    """What a generator is asked to produce."""

    frames: int = 16
    height: int = 36
    width: int = 64
    fps: float = 24.0

    def __post_init__(self) -> None:
        for name in ("frames", "height", "width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"VideoSpec.{name} must be a positive integer, got {value!r}")
        if not self.fps > 0:
            raise ValueError(f"VideoSpec.fps must be positive, got {self.fps!r}")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.frames, self.height, self.width, 3)


def as_video_tensor(videos: torch.Tensor | np.ndarray, *, name: str = "videos") -> torch.Tensor:
    """Return ``videos`` as a uint8 torch tensor (B, T, H, W, 3), or raise a clear error."""
    if isinstance(videos, np.ndarray):
        videos = torch.from_numpy(videos)
    if not isinstance(videos, torch.Tensor):
        raise InputError(f"{name}: expected a uint8 tensor or array (B, T, H, W, 3), got {type(videos).__name__}")
    if videos.dtype != torch.uint8:
        raise InputError(
            f"{name}: expected dtype uint8 with values 0..255, got {videos.dtype}"
            " (convert float videos with (x * 255).round().clamp(0, 255).to(torch.uint8))"
        )
    if videos.ndim != 5 or videos.shape[-1] != 3:
        raise InputError(f"{name}: expected shape (B, T, H, W, 3), got {tuple(videos.shape)}")
    return videos


def check_video_spec(videos: torch.Tensor, spec: VideoSpec, *, name: str = "videos") -> torch.Tensor:
    """Check dtype and shape against ``spec``."""
    videos = as_video_tensor(videos, name=name)
    if tuple(videos.shape[1:]) != spec.shape:
        raise InputError(f"{name}: expected per-video shape {spec.shape} from {spec}, got {tuple(videos.shape[1:])}")
    return videos
