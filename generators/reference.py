"""Reference generators: the protocol's own real data (``oracle``) and controlled degradations of it.

The oracle puts every metric at its floor; each degradation moves metrics in a known direction
(frozen or shuffled frames hurt FVD but hardly frame FID, swapped captions hurt CLIPSIM, noise is
monotone in its level). They are the first generators the runner, the tests and `evalkit sanity` use.
Every random choice is seeded by the sample's own seed, so a video never depends on its batch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torchvision.transforms.functional as TF

from evalkit.errors import InputError
from evalkit.generators.base import Generator
from evalkit.registry import GENERATORS
from evalkit.seeding import sample_seed, torch_generator
from evalkit.video import VideoSpec


@GENERATORS.register("oracle")
class Oracle(Generator):
    """Fresh real clips that match each prompt, drawn by the protocol's dataset."""

    def __init__(self, config: Any = None):
        super().__init__(config)
        self.dataset: Any = None

    def bind(self, dataset: Any) -> None:
        self.dataset = dataset

    def _real(self, prompts: list[str], seeds: list[int], spec: VideoSpec) -> torch.Tensor:
        if self.dataset is None:
            raise InputError(f"{type(self).__name__} draws real data: bind it to a protocol's dataset first")
        if self.dataset.spec != spec:
            raise InputError(f"{type(self).__name__}: asked for {spec} but the bound dataset yields {self.dataset.spec}")
        return self.dataset.reference_videos(prompts, seeds)

    def _generate(self, prompts: list[str], seeds: list[int], spec: VideoSpec) -> torch.Tensor:
        return self._real(prompts, seeds, spec)


class _Degradation(Oracle):
    """An oracle clip passed through ``degrade`` with a per-sample generator."""

    def _generate(self, prompts: list[str], seeds: list[int], spec: VideoSpec) -> torch.Tensor:
        videos = self._real(prompts, seeds, spec)
        out = [self.degrade(v, torch_generator(sample_seed(s, 0, "degrade"))) for v, s in zip(videos, seeds)]
        return torch.stack(out) if out else videos

    def degrade(self, video: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


@GENERATORS.register("oracle-frozen")
class FrozenFrame(_Degradation):
    """Every frame replaced by the first: appearance intact, motion gone."""

    def degrade(self, video: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return video[:1].expand_as(video).clone()


@GENERATORS.register("oracle-shuffled")
class ShuffledFrames(_Degradation):
    """Frames in a random order: the same set of frames, broken temporal coherence."""

    def degrade(self, video: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return video[torch.randperm(video.shape[0], generator=gen)]


@dataclasses.dataclass
class NoiseConfig:
    #: standard deviation of the additive Gaussian noise as a fraction of the 0..255 range
    level: float = 0.1

    def __post_init__(self) -> None:
        if self.level < 0:
            raise ValueError(f"level must be >= 0, got {self.level}")


@GENERATORS.register("oracle-noise")
class AdditiveNoise(_Degradation):
    Config = NoiseConfig

    def degrade(self, video: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        noise = torch.randn(video.shape, generator=gen) * (self.config.level * 255.0)
        return (video.float() + noise).round().clamp(0, 255).to(torch.uint8)


@dataclasses.dataclass
class BlurConfig:
    #: Gaussian blur standard deviation in pixels
    sigma: float = 1.5

    def __post_init__(self) -> None:
        if self.sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")


@GENERATORS.register("oracle-blur")
class Blur(_Degradation):
    Config = BlurConfig

    def degrade(self, video: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        kernel = 2 * int(round(3 * self.config.sigma)) + 1
        frames = video.permute(0, 3, 1, 2).float()
        blurred = TF.gaussian_blur(frames, [kernel, kernel], [self.config.sigma, self.config.sigma])
        return blurred.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


@dataclasses.dataclass
class ColourShiftConfig:
    #: hue rotation in turns (0.5 swaps opposite colours)
    hue: float = 0.25

    def __post_init__(self) -> None:
        if not -0.5 <= self.hue <= 0.5:
            raise ValueError(f"hue must be within [-0.5, 0.5], got {self.hue}")


@GENERATORS.register("oracle-colour-shift")
class ColourShift(_Degradation):
    Config = ColourShiftConfig

    def degrade(self, video: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        frames = video.permute(0, 3, 1, 2)
        return TF.adjust_hue(frames, self.config.hue).permute(0, 2, 3, 1).contiguous()


@GENERATORS.register("oracle-caption-swap")
class CaptionSwap(Oracle):
    """Real clips of another prompt drawn from the protocol's prompt distribution by the seed."""

    def _generate(self, prompts: list[str], seeds: list[int], spec: VideoSpec) -> torch.Tensor:
        if self.dataset is None:
            raise InputError("oracle-caption-swap draws real data: bind it to a protocol's dataset first")
        swapped = []
        for prompt, seed in zip(prompts, seeds):
            other = prompt
            for attempt in range(16):
                other = self.dataset.plan(1, sample_seed(seed, attempt, "caption-swap"))[0].prompt
                if other != prompt:
                    break
            swapped.append(other)
        return self._real(swapped, seeds, spec)
