"""Metric variants of the shapes benchmark, on the shapes detectors.

+--------------------+---------------------+---------------------------------------------------------+
| variant            | detector            | computation                                             |
+====================+=====================+=========================================================+
| ``fvd:shapes``     | shapes-video        | Fréchet distance, covariance divisor N-1, pytorch-fid   |
|                    |                     | style sqrtm, real set first                             |
| ``fid:shapes``     | shapes-frame        | the same on per-frame features (every frame a sample)   |
| ``is:shapes``      | shapes-video-logits | Inception Score over shape x motion classes, 4 splits   |
| ``clipsim:shapes`` | shapes-clip         | mean per-sample cosine of clip and caption embeddings   |
+--------------------+---------------------+---------------------------------------------------------+

These numbers compare generators with each other on this benchmark only; they are not on the
scale of the Inception/I3D/CLIP metrics of the papers.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from evalkit.metrics.base import MetricValue
from evalkit.metrics.clipsim import ClipSim
from evalkit.metrics.frechet import FrechetMetric, SqrtMethod
from evalkit.metrics.inception_score import InceptionScore
from evalkit.metrics.stats import CovDivisor
from evalkit.registry import METRICS


@METRICS.register("fvd:shapes")
class FVDShapes(FrechetMetric):
    """Fréchet distance between shapes-video features of real and generated clips."""

    name: ClassVar[str] = "fvd"
    variant: ClassVar[str] = "shapes"
    detector: ClassVar[str] = "shapes-video"
    cov_divisor: ClassVar[CovDivisor] = "N-1"
    sqrt_method: ClassVar[SqrtMethod] = "scipy-pytorch-fid"
    real_first: ClassVar[bool] = True


@METRICS.register("fid:shapes")
class FIDShapes(FrechetMetric):
    """Fréchet distance between per-frame shapes-frame features (all frames of all clips)."""

    name: ClassVar[str] = "fid"
    variant: ClassVar[str] = "shapes"
    detector: ClassVar[str] = "shapes-frame"
    cov_divisor: ClassVar[CovDivisor] = "N-1"
    sqrt_method: ClassVar[SqrtMethod] = "scipy-pytorch-fid"
    real_first: ClassVar[bool] = True


@METRICS.register("is:shapes")
class ISShapes(InceptionScore):
    """Inception Score of the shape x motion class distribution of generated clips (max 43)."""

    variant: ClassVar[str] = "shapes"
    detector: ClassVar[str] = "shapes-video-logits"
    input_kind: ClassVar[Literal["probs", "logits"]] = "logits"
    convention: ClassVar[Literal["splits", "runs"]] = "splits"
    splits: ClassVar[int] = 4
    eps: ClassVar[float] = 0.0


@METRICS.register("clipsim:shapes")
class CLIPSIMShapes(ClipSim):
    """Mean cosine of shapes-clip video and caption embeddings (raw cosine, not x100)."""

    variant: ClassVar[str] = "shapes"
    detector: ClassVar[str] = "shapes-clip"

    def compute(self) -> MetricValue:
        value = super().compute()
        value.details["reduction"] = "one embedding per video (not per frame), mean over videos"
        return value
