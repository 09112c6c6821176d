"""Which frames of a real video make a clip, and how a clip is brought to the protocol's size.

Protocols differ exactly here: StyleGAN-V takes 16 consecutive frames from a random start,
VideoPoet the central 16 frames at the native 25 fps, DynamiCrafter every third frame. A
``ClipSampler`` states one such rule; the start is drawn from a generator seeded by the caller, so
a clip depends only on (seed, video), never on batching.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from evalkit import video_io
from evalkit.errors import InputError

ClipStart = Literal["random", "central", "first"]
ResizeMode = Literal["crop", "squash"]


class ClipTooShortError(InputError):
    """A video has fewer frames than the clip rule spans."""


@dataclasses.dataclass(frozen=True)
class ClipSampler:
    """``frames`` frames, ``stride`` apart or resampled to ``fps``, starting where ``start`` says.

    ``start``: ``random`` draws uniformly over every start that fits (StyleGAN-V, cd-fvd),
    ``central`` centres the span in the video (VideoPoet), ``first`` starts at frame 0.
    ``fps``: when set, frame ``k`` of the clip is the source frame shown at time ``k / fps``
    (``floor(k * native_fps / fps)``), so a 30 fps video sampled at 10 fps takes every third frame;
    ``stride`` must then be 1.
    """

    frames: int
    start: ClipStart = "random"
    stride: int = 1
    fps: float | None = None

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"clip frames must be >= 1, got {self.frames}")
        if self.stride < 1:
            raise ValueError(f"clip stride must be >= 1, got {self.stride}")
        if self.start not in ("random", "central", "first"):
            raise ValueError(f"clip start must be 'random', 'central' or 'first', got {self.start!r}")
        if self.fps is not None:
            if not self.fps > 0:
                raise ValueError(f"clip fps must be positive, got {self.fps}")
            if self.stride != 1:
                raise ValueError("give either a clip fps or a frame stride, not both")

    def offsets(self, native_fps: float) -> list[int]:
        """Frame offsets of the clip relative to its first frame."""
        if self.fps is None:
            return [k * self.stride for k in range(self.frames)]
        if not native_fps > 0:
            raise InputError("resampling a clip to a frame rate needs the video's own frame rate, which is unknown")
        step = native_fps / self.fps
        # the small epsilon keeps exact ratios (25 fps -> 12.5 fps) from rounding down by one
        return [int(math.floor(k * step + 1e-9)) for k in range(self.frames)]

    def span(self, native_fps: float) -> int:
        """How many source frames the clip covers."""
        return self.offsets(native_fps)[-1] + 1

    def indices(
        self, num_frames: int, native_fps: float = 0.0, rng: np.random.Generator | None = None,
        *, name: str = "video",
    ) -> list[int]:
        """Source frame numbers of one clip of a video with ``num_frames`` frames."""
        offsets = self.offsets(native_fps)
        span = offsets[-1] + 1
        room = num_frames - span
        if room < 0:
            rule = f"{self.frames} frames" + (f" at {self.fps:g} fps" if self.fps else f" with stride {self.stride}")
            raise ClipTooShortError(
                f"{name}: has {num_frames} frames, fewer than the {span} a clip of {rule} spans"
            )
        if self.start == "first":
            first = 0
        elif self.start == "central":
            first = room // 2
        else:
            if rng is None:
                raise ValueError("a random clip start needs a random generator")
            first = int(rng.integers(0, room + 1))
        return [first + o for o in offsets]


def resize_video(video: torch.Tensor | np.ndarray, height: int, width: int, mode: ResizeMode = "crop") -> torch.Tensor:
    """uint8 (T, H, W, 3) resized to (height, width): antialiased bilinear, values rounded.

    ``crop`` scales the shorter side to cover the target and cuts the centre (aspect kept);
    ``squash`` scales each side independently. Same size in and out: returned untouched.
    """
    if isinstance(video, np.ndarray):
        video = torch.from_numpy(np.ascontiguousarray(video))
    if video.dtype != torch.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise InputError(f"expected a uint8 video (T, H, W, 3), got {video.dtype} {tuple(video.shape)}")
    h, w = int(video.shape[1]), int(video.shape[2])
    if (h, w) == (height, width):
        return video
    if mode == "crop":
        scale = max(height / h, width / w)
        new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    elif mode == "squash":
        new_h, new_w = height, width
    else:
        raise ValueError(f"resize mode must be 'crop' or 'squash', got {mode!r}")
    x = video.permute(0, 3, 1, 2).float()
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    x = x[:, :, top:top + height, left:left + width]
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


class ClipReader:
    """Reads clips from video files or frame folders, resized to the protocol's size.

    ``read_many`` takes, for each clip, a list of candidate sources and a seed: the first candidate
    is the clip's own video; with ``skip_unreadable`` a source that fails to decode (or is too
    short) is recorded in ``skipped`` and the next candidate is used, so the set keeps its size and
    every substitution is reported. Without it the first failure raises. Decoding runs in a thread
    pool (``evalkit.video_io.iter_videos``).
    """

    def __init__(
        self, sampler: ClipSampler, height: int, width: int, *, resize: ResizeMode = "crop",
        backend: Literal["pyav", "decord"] = "pyav", workers: int = 4, skip_unreadable: bool = False,
        frame_folder_fps: float | None = None, skipped: list[str] | None = None,
    ):
        self.sampler = sampler
        self.height, self.width = height, width
        self.resize = resize
        self.backend = backend
        self.workers = workers
        self.skip_unreadable = skip_unreadable
        self.frame_folder_fps = frame_folder_fps
        #: "<file>: <reason>" for every source skipped (shared with the dataset's ``skipped``)
        self.skipped: list[str] = skipped if skipped is not None else []
        self._lock = threading.Lock()

    def read(self, source: str | Path, seed: int) -> torch.Tensor:
        """One clip of ``source`` whose start is drawn from ``seed``: uint8 (T, height, width, 3)."""
        rng = np.random.default_rng(seed)
        path = Path(source)
        if path.is_dir():
            count = video_io.frame_folder_length(path)
            fps = self.frame_folder_fps or 0.0
            indices = self.sampler.indices(count, fps, rng, name=str(path))
            frames = video_io.read_frame_folder(path, indices=indices)
        else:
            info = video_io.video_info(path)
            indices = self.sampler.indices(info.frames, info.fps, rng, name=str(path))
            frames = video_io.read_video(path, indices=indices, backend=self.backend)
        return resize_video(frames, self.height, self.width, self.resize)

    def _read_first_good(self, request: tuple[Sequence[str | Path], int]) -> torch.Tensor:
        candidates, seed = request
        failures = []
        for source in candidates:
            try:
                return self.read(source, seed)
            except InputError as exc:
                if not self.skip_unreadable:
                    raise
                failures.append(str(exc))
                with self._lock:
                    entry = f"{source}: {exc}"
                    if entry not in self.skipped:
                        self.skipped.append(entry)
        shown = "; ".join(failures[:3])
        raise InputError(f"no readable video among {len(failures)} candidates for this clip ({shown})")

    def read_many(self, requests: Sequence[tuple[Sequence[str | Path], int]]) -> torch.Tensor:
        """uint8 (N, T, height, width, 3), one clip per request, in request order."""
        if not requests:
            return torch.zeros((0, self.sampler.frames, self.height, self.width, 3), dtype=torch.uint8)
        clips = [clip for _, clip in video_io.iter_videos(
            list(requests), loader=self._read_first_good, workers=min(self.workers, len(requests)),
        )]
        return torch.stack(clips)
