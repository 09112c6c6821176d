"""Shared plumbing of the video detectors: input checks, weight resolution, batched inference.

Every video detector takes uint8 videos (B, T, H, W, 3) RGB and returns float32 features (B, D) on
the CPU. Subclasses implement ``_load`` (network from a weight file, or a seeded random network when
the user asked for random weights) and ``_forward`` (one uint8 batch already on the device -> (b, D)).
Batches are moved to the device as uint8 (4x less traffic than float) and resized there; results are
written into one preallocated output tensor, so memory stays linear in the number of videos.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import torch

from evalkit import weights as weights_registry
from evalkit.errors import InputError
from evalkit.metrics.base import Detector
from evalkit.video import as_video_tensor

#: seed of the random-weight networks built with ``allow_random_weights``
RANDOM_WEIGHTS_SEED = 0


class VideoDetector(Detector):
    """Base class: checks the input, batches it, and records which weights produced the features."""

    #: feature dimension of the output
    feature_dim: ClassVar[int]
    #: videos per forward pass
    batch_size: ClassVar[int] = 16
    #: exact number of frames the reference network accepts (None: any number >= min_frames)
    exact_frames: ClassVar[int | None] = None
    #: why min_frames/exact_frames is what it is (shown in the error)
    frames_reason: ClassVar[str] = ""

    def __init__(
        self,
        device: str | torch.device = "cpu",
        allow_random_weights: bool = False,
        *,
        weights_path: str | None = None,
        batch_size: int | None = None,
    ):
        super().__init__(device=device, allow_random_weights=allow_random_weights)
        if batch_size is not None:
            if batch_size < 1:
                raise InputError(f"{self.name}: batch_size must be a positive integer, got {batch_size}")
            self.batch_size = batch_size
        resolved = resolve_detector_weights(self.weights, allow_random_weights, weights_path)
        path = None if resolved.path is None else str(resolved.path)
        self.weights_path = path
        self.weights_digest = resolved.digest if path is not None else f"random-seed{RANDOM_WEIGHTS_SEED}"
        self.comparable = bool(resolved.comparable) and path is not None
        self.model = self._place(self._load(path))

    @abstractmethod
    def _load(self, path: str | None) -> Any:
        """The network, from ``path`` or (``path is None``) with seeded random weights."""

    @abstractmethod
    def _forward(self, videos: torch.Tensor) -> torch.Tensor:
        """Features (b, D) for a uint8 batch (b, T, H, W, 3) already on ``self.device``."""

    def check_videos(self, videos: torch.Tensor) -> torch.Tensor:
        """uint8 (B, T, H, W, 3) with enough frames, or a clear ``InputError``."""
        videos = as_video_tensor(videos, name=f"{self.name} input")
        frames = videos.shape[1]
        why = f" ({self.frames_reason})" if self.frames_reason else ""
        if self.exact_frames is not None and frames != self.exact_frames:
            raise InputError(
                f"{self.name}: expected exactly {self.exact_frames} frames per video, got {frames} "
                f"(videos shaped {tuple(videos.shape)}){why}; select a {self.exact_frames}-frame clip first"
            )
        if frames < self.min_frames:
            raise InputError(
                f"{self.name}: needs at least {self.min_frames} frames per video, got {frames} "
                f"(videos shaped {tuple(videos.shape)}){why}"
            )
        if videos.shape[2] < 2 or videos.shape[3] < 2:
            raise InputError(f"{self.name}: frames must be at least 2x2 pixels, got {tuple(videos.shape[2:4])}")
        return videos

    @torch.inference_mode()
    def __call__(self, videos: torch.Tensor, prompts: list[str] | None = None) -> torch.Tensor:
        videos = self.check_videos(videos)
        n = videos.shape[0]
        out = torch.empty((n, self.feature_dim), dtype=torch.float32)
        pin = self.device.type == "cuda"
        for start in range(0, n, self.batch_size):
            batch = videos[start : start + self.batch_size]
            if pin:
                batch = batch.pin_memory()
            batch = batch.to(self.device, non_blocking=pin)
            features = self._forward(batch)
            if features.shape != (batch.shape[0], self.feature_dim):
                raise InputError(
                    f"{self.name}: network returned features shaped {tuple(features.shape)}, expected "
                    f"({batch.shape[0]}, {self.feature_dim}); is {self.weights_path} the right weight file?"
                )
            out[start : start + batch.shape[0]] = features.float().cpu()
        return out


def resolve_detector_weights(
    name: str | None, allow_random: bool, weights_path: str | None = None
) -> weights_registry.ResolvedWeights:
    """The weight file of ``name`` (or the user's ``weights_path``) from the weights registry.

    A missing file raises ``WeightsError`` with the file, URL and ``evalkit weights add`` command, unless
    random weights were asked for (then ``path`` is None and the detector builds a seeded network).
    """
    if name is None:
        return weights_registry.ResolvedWeights(None, None, True)
    if weights_path is not None:
        return weights_registry.resolve_file(name, weights_path)
    return weights_registry.resolve(name, allow_random=allow_random)


def to_float_frames(videos: torch.Tensor) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float32 (B*T, 3, H, W), values 0..255."""
    b, t, h, w, c = videos.shape
    return videos.reshape(b * t, h, w, c).permute(0, 3, 1, 2).float()


def frames_to_bcthw(frames: torch.Tensor, batch: int, channels_last: bool = False) -> torch.Tensor:
    """(B*T, C, H, W) -> (B, C, T, H, W), contiguous or (``channels_last``) channels-last.

    Channels-last frames, as a resize of permuted uint8 video returns them, already are a channels-last
    (B, C, T, H, W) tensor in memory, so that form costs no copy, and a channels-last network takes it
    as it is.
    """
    bt, c, h, w = frames.shape
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    return frames.view(batch, bt // batch, c, h, w).transpose(1, 2).contiguous(memory_format=fmt)
