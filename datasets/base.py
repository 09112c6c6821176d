"""The dataset side of a protocol: what to generate (the sample plan) and what to compare with.

A ``ProtocolDataset`` is registered in ``evalkit.registry.DATASETS`` by kind (``shapes``,
``ucf101``, ``msrvtt``, ``folder``) with a dataclass ``Config`` of its own settings, which a
protocol YAML fills under ``dataset.params``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from evalkit.video import VideoSpec


@dataclasses.dataclass
class NoParams:
    """For datasets without settings."""


@dataclasses.dataclass
class Sample:
    """One generated sample of a plan: everything needed to regenerate it alone."""

    index: int
    prompt: str
    seed: int
    #: class / attribute label for per-class breakdowns (None where the protocol has none)
    label: str | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


class ProtocolDataset(ABC):
    """Prompts for the generated set, and clips of the real (reference) set."""

    Config: ClassVar[type] = NoParams

    def __init__(self, config: Any, spec: VideoSpec):
        self.config = config
        self.spec = spec
        #: files skipped with ``--skip-unreadable`` (reported with the results, never dropped silently)
        self.skipped: list[str] = []

    @abstractmethod
    def plan(self, num_samples: int, base_seed: int) -> list[Sample]:
        """Deterministic prompts and seeds of the generated set."""

    @abstractmethod
    def num_real(self, requested: int) -> int:
        """How many real clips the reference set holds when ``requested`` are asked for."""

    @abstractmethod
    def real_clips(self, indices: list[int], base_seed: int) -> torch.Tensor:
        """uint8 (len(indices), T, H, W, 3) clips of the reference set, at ``self.spec``."""

    def reference_videos(self, prompts: list[str], seeds: list[int]) -> torch.Tensor:
        """Real-data videos that match ``prompts`` (fresh draws, not the reference set).

        The ``oracle`` generator returns these: the floor of every metric.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot draw real videos for prompts")

    def fingerprint(self) -> str:
        """Identifies the real set (for the real-feature cache)."""
        from evalkit.config import config_hash

        return config_hash({"kind": type(self).__name__, "config": self.config, "spec": self.spec})
