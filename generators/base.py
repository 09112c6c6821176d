"""The Generator contract: prompts + per-sample seeds + a VideoSpec -> uint8 videos (B, T, H, W, 3).

Same seed, same video, whatever batch it is in. Every generator declares a dataclass ``Config``
(validated strictly from YAML) that is saved with each result and rebuilds the same generator.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch

from evalkit.config import from_dict, to_dict
from evalkit.errors import InputError
from evalkit.registry import GENERATORS
from evalkit.video import VideoSpec, check_video_spec


@dataclasses.dataclass
class NoConfig:
    """For generators without settings."""


class Generator(ABC):
    """Base class of every generator the runner can drive."""

    Config: ClassVar[type] = NoConfig
    #: network evaluations per video of the last ``generate`` call (for speed/quality reports)
    last_nfe: float | None = None

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()
        self.device = torch.device("cpu")

    @abstractmethod
    def _generate(self, prompts: list[str], seeds: list[int], spec: VideoSpec) -> torch.Tensor:
        """Produce uint8 videos (B, T, H, W, 3); ``generate`` has already checked the request."""

    def generate(self, prompts: list[str], seeds: list[int], spec: VideoSpec) -> torch.Tensor:
        check_request(prompts, seeds, spec)
        if not prompts:  # nothing to sample; generators never see an empty batch
            return torch.zeros((0, *spec.shape), dtype=torch.uint8)
        videos = self._generate(list(prompts), [int(s) for s in seeds], spec)
        videos = check_video_spec(videos, spec, name=f"{type(self).__name__} output")
        if videos.shape[0] != len(prompts):
            raise InputError(f"{type(self).__name__} returned {videos.shape[0]} videos for {len(prompts)} prompts")
        return videos.cpu()

    def bind(self, dataset: Any) -> None:
        """Give the generator access to the protocol's dataset (reference generators use it).

        Most generators need nothing from the dataset, so the default keeps no reference.
        """
        return None

    def info(self) -> dict[str, Any]:
        """Facts recorded next to every result row: parameter count, weights, training cost.

        Keys the reports know: ``parameters`` (int), ``training`` ({steps, samples, wall_s, device}).
        """
        return {}

    def to(self, device: str | torch.device) -> Generator:
        self.device = torch.device(device)
        return self

    def config_dict(self) -> dict:
        return to_dict(self.config)


def check_request(prompts: list[str], seeds: list[int], spec: VideoSpec) -> None:
    if not isinstance(spec, VideoSpec):
        raise InputError(f"spec: expected a VideoSpec, got {type(spec).__name__}")
    if isinstance(prompts, str):
        raise InputError("prompts: expected a list of strings, got a single string")
    if len(prompts) != len(seeds):
        raise InputError(f"prompts and seeds must have the same length, got {len(prompts)} prompts and {len(seeds)} seeds")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise InputError(f"prompts[{i}]: expected a string, got {type(p).__name__}")


def build_generator(name: str, params: dict | None = None, *, file: str | Path | None = None, path: str = "") -> Generator:
    """Instantiate registered generator ``name`` from raw ``params`` (validated strictly)."""
    cls = GENERATORS.get(name)
    config = from_dict(cls.Config, params or {}, file=file, path=path)
    return cls(config)
