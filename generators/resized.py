"""``resized``: any generator's videos made at a fixed size and resized to the protocol's.

It is the bar a learned upsampler has to clear: the base stage of a cascade followed by plain
interpolation instead of the second stage, scored on the same protocol (e.g. ``shapes-hd``)::

    - name: resized
      label: fit-tiny-bilinear
      params:
        generator: snapvideo-fit
        params: {checkpoint: fit-tiny-shapes, steps: 16, guidance: 2.0}
        height: 36
        width: 64

Frames, frame rate, prompts and seeds pass through unchanged, so a seed gives the same video as the
wrapped generator's, resized. Reference generators (``oracle`` and its degradations) draw from the
protocol's dataset at the protocol's size and are not wrapped: the dataset is not passed on.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from evalkit.generators.base import Generator, build_generator
from evalkit.registry import GENERATORS
from evalkit.video import VideoSpec


@dataclasses.dataclass
class ResizedConfig:
    generator: str = "snapvideo-fit"   # registered generator that makes the videos
    params: dict[str, Any] = dataclasses.field(default_factory=dict)  # its config
    height: int = 36                   # size it makes them at
    width: int = 64
    mode: Literal["bilinear", "bicubic", "nearest", "area"] = "bilinear"

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(f"height and width must be positive, got {self.height}x{self.width}")
        if self.generator == "resized":
            raise ValueError("a resized generator cannot wrap another one; give the generator that makes videos")


def resize_videos(videos: torch.Tensor, height: int, width: int, mode: str = "bilinear") -> torch.Tensor:
    """uint8 videos (B, T, h, w, 3) -> uint8 (B, T, height, width, 3), interpolated per frame in float."""
    b, t, h, w, c = videos.shape
    frames = videos.reshape(b * t, h, w, c).permute(0, 3, 1, 2).float()
    kw = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    out = F.interpolate(frames, size=(height, width), mode=mode, **kw)
    out = out.round().clamp(0, 255).to(torch.uint8)
    return out.permute(0, 2, 3, 1).reshape(b, t, height, width, c).contiguous()


@GENERATORS.register("resized")
class ResizedGenerator(Generator):
    """A wrapped generator's videos at ``height`` x ``width``, interpolated to the requested size."""

    Config = ResizedConfig

    def __init__(self, config: ResizedConfig | None = None):
        super().__init__(config)
        self.inner = build_generator(self.config.generator, self.config.params, path="params")

    #: what the contract suite's test instance makes (tests/test_generator_contract.py)
    test_spec = VideoSpec(frames=4, height=16, width=32, fps=8.0)
    #: the wrapped test model makes 4 frames; resizing cannot add one
    test_bad_spec = VideoSpec(frames=5, height=16, width=32, fps=8.0)

    @classmethod
    def test_instance(cls, workdir: Path) -> ResizedGenerator:
        """The random-weight 4x8x16 Snap Video test model, resized."""
        inner = GENERATORS.get("snapvideo-fit").test_instance(workdir)
        return cls(ResizedConfig(generator="snapvideo-fit", params=inner.config_dict(), height=8, width=16))

    def to(self, device: str | torch.device) -> ResizedGenerator:
        super().to(device)
        self.inner.to(device)
        return self

    def info(self) -> dict[str, Any]:
        return self.inner.info()

    def _generate(self, prompts: list[str], seeds: list[int], spec: VideoSpec) -> torch.Tensor:
        small = dataclasses.replace(spec, height=self.config.height, width=self.config.width)
        videos = self.inner.generate(prompts, seeds, small)
        self.last_nfe = self.inner.last_nfe
        if (spec.height, spec.width) == (small.height, small.width):
            return videos
        return resize_videos(videos, spec.height, spec.width, self.config.mode)
