"""Frame FID and CLIP-FID variants, each named after the reference it reproduces.

All take one feature row per frame from an image detector (``per_frame = True``).

| variant            | detector                 | covariance | square root        |
|--------------------|--------------------------|------------|--------------------|
| fid:pytorch-fid    | inception-pytorch-fid    | N-1        | scipy, pytorch-fid |
| fid:clean          | inception-clean          | N-1        | scipy, clean-fid   |
| fid:legacy-pytorch | inception-legacy-pytorch | N-1        | scipy, clean-fid   |
| clip-fid           | clip-fid-vit-b-32        | N-1        | scipy, clean-fid   |
"""

from __future__ import annotations

from typing import ClassVar

from evalkit.metrics.frechet import FrechetMetric, SqrtMethod
from evalkit.metrics.stats import CovDivisor
from evalkit.registry import METRICS


@METRICS.register("fid:pytorch-fid")
class FidPytorchFid(FrechetMetric):
    """Frame FID as pytorch-fid 0.3.0: bilinear 299, pool3, np.cov, sqrtm with its retry and imaginary check."""

    name: ClassVar[str] = "fid"
    variant: ClassVar[str] = "pytorch-fid"
    detector: ClassVar[str] = "inception-pytorch-fid"
    cov_divisor: ClassVar[CovDivisor] = "N-1"
    sqrt_method: ClassVar[SqrtMethod] = "scipy-pytorch-fid"


@METRICS.register("fid:clean")
class FidClean(FrechetMetric):
    """Frame FID as clean-fid ``clean`` mode: PIL float bicubic 299, TorchScript Inception, sqrtm real part."""

    name: ClassVar[str] = "fid"
    variant: ClassVar[str] = "clean"
    detector: ClassVar[str] = "inception-clean"
    cov_divisor: ClassVar[CovDivisor] = "N-1"
    sqrt_method: ClassVar[SqrtMethod] = "scipy-clean-fid"


@METRICS.register("fid:legacy-pytorch")
class FidLegacyPytorch(FrechetMetric):
    """Frame FID as clean-fid ``legacy_pytorch`` mode (torch bilinear resize, pytorch-fid Inception)."""

    name: ClassVar[str] = "fid"
    variant: ClassVar[str] = "legacy-pytorch"
    detector: ClassVar[str] = "inception-legacy-pytorch"
    cov_divisor: ClassVar[CovDivisor] = "N-1"
    sqrt_method: ClassVar[SqrtMethod] = "scipy-clean-fid"


@METRICS.register("clip-fid")
class ClipFid(FrechetMetric):
    """CLIP-FID as clean-fid ``model_name='clip_vit_b_32'``: OpenAI ViT-B/32 image features per frame."""

    name: ClassVar[str] = "clip-fid"
    variant: ClassVar[str] = ""
    detector: ClassVar[str] = "clip-fid-vit-b-32"
    cov_divisor: ClassVar[CovDivisor] = "N-1"
    sqrt_method: ClassVar[SqrtMethod] = "scipy-clean-fid"
