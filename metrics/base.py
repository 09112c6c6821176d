"""Contracts for detectors (videos -> per-sample features) and metrics (features -> a number).

A detector reproduces one reference's preprocessing and network; a metric holds streaming state
(torchmetrics style: ``update``/``compute``/``reset``) that can be merged across shards and
synchronised across processes, so 1 process and N processes give the same number.
Per-sample features are what the runner stores, caches and resumes from.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch

from evalkit.metrics.detector_form import apply_form, uses_fast_form
from evalkit.registry import DETECTORS, METRICS


@dataclasses.dataclass
class MetricValue:
    """The outcome of ``Metric.compute``: a value, an optional spread and details for the record."""

    value: float
    std: float | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


class Detector(ABC):
    """Turns uint8 videos (B, T, H, W, 3) into float features (B, D) exactly as its reference does."""

    name: ClassVar[str]
    #: entry in the weights registry (``evalkit weights list``); None for weight-free detectors
    weights: ClassVar[str | None] = None
    min_frames: ClassVar[int] = 1
    needs_prompts: ClassVar[bool] = False
    #: 2 or 3 for convolutional networks that have a fast form on the CPU (``metrics.detector_form``), else 0
    conv_dims: ClassVar[int] = 0

    def __init__(self, device: str | torch.device = "cpu", allow_random_weights: bool = False):
        self.device = torch.device(device)
        self.allow_random_weights = allow_random_weights
        #: digest of the weights actually loaded (recorded with every result)
        self.weights_digest: str | None = None
        #: False when anything but the reference weights is in use
        self.comparable: bool = True
        #: runs in the fast form (channels-last kernels, BatchNorm folded; float32 rounding apart, the same features)
        self.fast_form: bool = self.conv_dims > 0 and uses_fast_form(self.device)

    def _place(self, module: Any) -> Any:
        """``module`` on the detector's device, in the detector's form (``metrics.detector_form``)."""
        return apply_form(module.to(self.device), self.conv_dims, self.fast_form)

    @abstractmethod
    def __call__(self, videos: torch.Tensor, prompts: list[str] | None = None) -> torch.Tensor:
        """Features (B, D) as float32 or float64 on CPU."""

    @property
    def fingerprint(self) -> str:
        """Identifies the features this detector produces (name + weights), for caches."""
        return f"{self.name}@{self.weights_digest or 'none'}"


class Metric(ABC):
    """A metric variant. Register factories in ``METRICS`` under ``"name:variant"``."""

    name: ClassVar[str]
    variant: ClassVar[str]
    #: key in ``DETECTORS`` of the detector whose features this metric consumes
    detector: ClassVar[str]
    higher_is_better: ClassVar[bool] = False
    uses_real: ClassVar[bool] = True

    @property
    def full_name(self) -> str:
        return f"{self.name}:{self.variant}" if self.variant else self.name

    @abstractmethod
    def update(self, features: torch.Tensor | np.ndarray, *, real: bool) -> None:
        """Add a batch of per-sample features of the real or the generated set."""

    @abstractmethod
    def compute(self) -> MetricValue: ...

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def state_dict(self) -> dict[str, np.ndarray]:
        """Plain arrays that ``merge_state`` can add together (float64 sums, or kept features)."""

    @abstractmethod
    def merge_state(self, state: dict[str, np.ndarray]) -> None:
        """Merge the state of another shard into this one."""

    @property
    @abstractmethod
    def n_real(self) -> int: ...

    @property
    @abstractmethod
    def n_fake(self) -> int: ...

    def sync(self) -> None:
        """Merge the state of every process into every process (no-op without torch.distributed)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        states: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(states, self.state_dict())
        self.reset()
        for state in states:
            self.merge_state(state)


def build_metric(full_name: str) -> Metric:
    """Instantiate a registered metric variant such as ``fvd:styleganv``."""
    return METRICS.get(full_name)()


def build_detector(name: str, device: str | torch.device = "cpu", allow_random_weights: bool = False) -> Detector:
    """Instantiate a registered detector; missing reference weights raise ``WeightsError``."""
    return DETECTORS.get(name)(device=device, allow_random_weights=allow_random_weights)
