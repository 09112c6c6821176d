"""CLIPSIM: mean over generated videos of the per-video mean frame-text cosine (raw cosine, no x100).

The detector already reduces each video to one number (``clipsim-*`` detectors, (B, 1)); the metric
keeps float64 sums so shards merge by addition. ``std`` is the standard deviation over videos.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from evalkit.errors import InputError
from evalkit.metrics.base import Metric, MetricValue
from evalkit.metrics.stats import as_feature_matrix
from evalkit.registry import METRICS


class ClipSim(Metric):
    """Base of the CLIPSIM variants; features are per-video scores (B, 1)."""

    name: ClassVar[str] = "clipsim"
    variant: ClassVar[str] = ""
    detector: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    uses_real: ClassVar[bool] = False

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._count = 0
        self._sum = 0.0
        self._sumsq = 0.0

    def update(self, features: torch.Tensor | np.ndarray, *, real: bool = False) -> None:
        if real:
            raise InputError(f"{self.full_name}: CLIPSIM scores generated videos only (got real=True)")
        x = as_feature_matrix(features, name=f"{self.full_name} scores")
        if x.shape[1] != 1:
            raise InputError(f"{self.full_name}: expected per-video scores shaped (B, 1), got {tuple(x.shape)}")
        if (np.abs(x) > 1 + 1e-5).any():
            raise InputError(f"{self.full_name}: cosine similarities must lie in [-1, 1]")
        self._count += x.shape[0]
        self._sum += float(x.sum())
        self._sumsq += float((x * x).sum())

    def compute(self) -> MetricValue:
        if self._count == 0:
            raise InputError(f"{self.full_name}: no generated videos were scored")
        mean = self._sum / self._count
        var = max(self._sumsq / self._count - mean * mean, 0.0)
        return MetricValue(value=mean, std=float(np.sqrt(var)),
                           details={"n_fake": self._count, "scale": "raw cosine", "reduction": "mean over frames, then videos"})

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"count": np.array(self._count, dtype=np.int64), "sum": np.array(self._sum),
                "sumsq": np.array(self._sumsq)}

    def merge_state(self, state: dict[str, np.ndarray]) -> None:
        self._count += int(state["count"])
        self._sum += float(state["sum"])
        self._sumsq += float(state["sumsq"])

    @property
    def n_real(self) -> int:
        return 0

    @property
    def n_fake(self) -> int:
        return self._count


@METRICS.register("clipsim:vit-b-32")
class ClipSimViTB32(ClipSim):
    """CLIPSIM with OpenAI ViT-B/32 (Video LDM, LaVie, Make-A-Video style)."""

    variant: ClassVar[str] = "vit-b-32"
    detector: ClassVar[str] = "clipsim-vit-b-32"


@METRICS.register("clipsim:vit-b-16")
class ClipSimViTB16(ClipSim):
    """CLIPSIM with OpenAI ViT-B/16 (VideoPoet, Phenaki)."""

    variant: ClassVar[str] = "vit-b-16"
    detector: ClassVar[str] = "clipsim-vit-b-16"


@METRICS.register("clipsim:vit-l-14")
class ClipSimViTL14(ClipSim):
    """CLIPSIM with OpenAI ViT-L/14."""

    variant: ClassVar[str] = "vit-l-14"
    detector: ClassVar[str] = "clipsim-vit-l-14"
