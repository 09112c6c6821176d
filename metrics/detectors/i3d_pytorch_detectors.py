"""FVD detectors on the PyTorch I3D (``i3d_pretrained_400.pt``): VideoGPT, TATS and cd-fvd preprocessing.

All three feed 400-d time-averaged logits of the same network; they differ only in how frames reach
224x224 and [-1, 1], with each reference's arithmetic order kept so float32 results are bit-identical:

- ``i3d-videogpt`` (``videogpt/data.py`` + ``videogpt/fvd/fvd.py``): x/255, bilinear resize of the
  shorter side to 224 (``align_corners=False``, no antialias, long side ``ceil(w * 224 / h)``), center crop
  224x224 at ``(size - 224) // 2``, then ``(x - 0.5) * 2``.
- ``i3d-tats`` (``tats/fvd/fvd.py``): float 0..255, whole frame squashed to 224x224 (bilinear,
  ``align_corners=False``), then ``2 * x / 255 - 1``.
- ``i3d-cd-fvd`` (``cdfvd/third_party/i3d/utils.py::preprocess_i3d``): identical to TATS (cd-fvd copied
  it), and the same weight file. Listed separately because cd-fvd's FVD uses other statistics (divisor
  N, scipy sqrtm) and its folder loader adds its own resize first (``cdfvd_loader_transform``).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F

from evalkit.metrics.detectors.i3d_pytorch import (
    MIN_FRAMES,
    NUM_CLASSES,
    InceptionI3d,
    build_i3d,
    load_i3d_state_dict,
)
from evalkit.metrics.detectors.video_base import (
    RANDOM_WEIGHTS_SEED,
    VideoDetector,
    frames_to_bcthw,
    to_float_frames,
)
from evalkit.registry import DETECTORS

TARGET = 224


def preprocess_tats(videos: torch.Tensor, size: int = TARGET, channels_last: bool = False) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float32 (B, 3, T, size, size) in [-1, 1], TATS / cd-fvd arithmetic.

    ``channels_last`` returns the same values in the channels-last layout (for the fast form).
    """
    frames = to_float_frames(videos)
    frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
    frames.mul_(2.0).div_(255.0).sub_(1)  # 2 * x / 255 - 1, in the reference's order, without temporaries
    return frames_to_bcthw(frames, videos.shape[0], channels_last)


def shorter_side_size(h: int, w: int, size: int) -> tuple[int, int]:
    """VideoGPT's target size: shorter side ``size``, the other ``ceil(other * size / shorter)``."""
    scale = size / min(h, w)
    if h < w:
        return size, math.ceil(w * scale)
    return math.ceil(h * scale), size


def preprocess_videogpt(videos: torch.Tensor, size: int = TARGET, channels_last: bool = False) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float32 (B, 3, T, size, size) in [-1, 1], VideoGPT arithmetic.

    ``channels_last`` returns the same values in the channels-last layout (for the fast form).
    """
    frames = to_float_frames(videos) / 255.0
    h, w = frames.shape[-2:]
    frames = F.interpolate(frames, size=shorter_side_size(h, w, size), mode="bilinear", align_corners=False)
    h, w = frames.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    frames = frames[:, :, top : top + size, left : left + size]
    return frames_to_bcthw(frames, videos.shape[0], channels_last).sub_(0.5).mul_(2)


def cdfvd_loader_transform(videos: torch.Tensor, resolution: int) -> torch.Tensor:
    """What cd-fvd's video/frame-folder loaders do before the detector (``utils/data_utils.preprocess``).

    Shorter side to ``resolution`` with antialiased bilinear resizing, center crop, then back to uint8 by
    ``(x * 255).byte()`` (truncation, as ``compute_real_stats`` does). Returns uint8 (B, T, r, r, 3).
    Dataset loaders that reproduce cd-fvd's reference statistics apply this before ``i3d-cd-fvd``.
    """
    frames = to_float_frames(videos) / 255.0
    h, w = frames.shape[-2:]
    frames = F.interpolate(
        frames, size=shorter_side_size(h, w, resolution), mode="bilinear", align_corners=False, antialias=True
    )
    h, w = frames.shape[-2:]
    top, left = (h - resolution) // 2, (w - resolution) // 2
    frames = frames[:, :, top : top + resolution, left : left + resolution]
    b, t = videos.shape[:2]
    out = (frames * 255).to(torch.uint8)  # truncation toward zero, like Tensor.byte()
    return out.permute(0, 2, 3, 1).reshape(b, t, resolution, resolution, 3).contiguous()


class _PytorchI3DDetector(VideoDetector):
    weights: ClassVar[str | None] = "i3d-pretrained-400"
    feature_dim: ClassVar[int] = NUM_CLASSES
    min_frames: ClassVar[int] = MIN_FRAMES
    batch_size: ClassVar[int] = 16
    frames_reason: ClassVar[str] = (
        "I3D halves time three times and its final (2, 7, 7) average pool needs 2 steps, so T >= 9"
    )
    conv_dims: ClassVar[int] = 3  # convolutional: a fast form on the CPU

    def _load(self, path: str | None) -> InceptionI3d:
        state = None if path is None else load_i3d_state_dict(path)
        return build_i3d(state, seed=RANDOM_WEIGHTS_SEED)

    def _preprocess(self, videos: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _forward(self, videos: torch.Tensor) -> torch.Tensor:
        return self.model(self._preprocess(videos))


@DETECTORS.register("i3d-videogpt")
class I3DVideoGPT(_PytorchI3DDetector):
    """VideoGPT FVD features: shorter side to 224, center crop, [-1, 1], PyTorch I3D logits."""

    name: ClassVar[str] = "i3d-videogpt"

    def _preprocess(self, videos: torch.Tensor) -> torch.Tensor:
        return preprocess_videogpt(videos, channels_last=self.fast_form)


@DETECTORS.register("i3d-tats")
class I3DTats(_PytorchI3DDetector):
    """TATS FVD features: frames squashed to 224x224, [-1, 1], PyTorch I3D logits."""

    name: ClassVar[str] = "i3d-tats"

    def _preprocess(self, videos: torch.Tensor) -> torch.Tensor:
        return preprocess_tats(videos, channels_last=self.fast_form)


@DETECTORS.register("i3d-cd-fvd")
class I3DCdFvd(_PytorchI3DDetector):
    """cd-fvd's I3D path (``cdfvd(model='i3d')``): TATS preprocessing and weights, float32."""

    name: ClassVar[str] = "i3d-cd-fvd"

    def _preprocess(self, videos: torch.Tensor) -> torch.Tensor:
        return preprocess_tats(videos, channels_last=self.fast_form)
