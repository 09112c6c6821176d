"""The shapes protocol dataset (``DATASETS["shapes"]``) and a training stream for generators.

Three seed streams keep the sets independent: the prompts of the generated set
(``shapes/<split>/prompt``), the reference set (``shapes/<split>/real``) and training data
(``shapes/<split>/train``). Generated sample ``i`` gets seed ``sample_seed(base_seed, i)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np
import torch

from evalkit.datasets.base import ProtocolDataset, Sample
from evalkit.datasets.shapes.attributes import (
    BACKGROUNDS,
    COLORS,
    SHAPES,
    SPEEDS,
    VIDEO_MOTIONS,
    ShapeAttributes,
    sample_attributes,
)
from evalkit.datasets.shapes.captions import caption, parse_caption
from evalkit.datasets.shapes.render import render_batch
from evalkit.registry import DATASETS
from evalkit.seeding import numpy_rng, sample_seed
from evalkit.video import VideoSpec


@dataclasses.dataclass
class ShapesConfig:
    """Which attribute values the protocol draws from, and the split that names its seed streams."""

    shapes: list[str] = dataclasses.field(default_factory=lambda: list(SHAPES))
    colors: list[str] = dataclasses.field(default_factory=lambda: list(COLORS))
    motions: list[str] = dataclasses.field(default_factory=lambda: list(VIDEO_MOTIONS))
    speeds: list[str] = dataclasses.field(default_factory=lambda: list(SPEEDS))
    backgrounds: list[str] = dataclasses.field(default_factory=lambda: list(BACKGROUNDS))
    #: name mixed into every seed stream; "test" for protocols, "train" for generator training
    split: str = "test"

    def __post_init__(self) -> None:
        allowed = {
            "shapes": SHAPES,
            "colors": tuple(COLORS),
            "motions": VIDEO_MOTIONS + ("still",),
            "speeds": SPEEDS,
            "backgrounds": tuple(BACKGROUNDS),
        }
        for field, values in allowed.items():
            chosen = getattr(self, field)
            if not chosen:
                raise ValueError(f"{field} must name at least one of {list(values)}")
            bad = [v for v in chosen if v not in values]
            if bad:
                raise ValueError(f"{field}: unknown value(s) {bad}; expected a subset of {list(values)}")

    def draw(self, rng: np.random.Generator) -> ShapeAttributes:
        return sample_attributes(
            rng,
            shapes=self.shapes,
            colors=self.colors,
            motions=self.motions,
            speeds=self.speeds,
            backgrounds=self.backgrounds,
        )


def draw_clip(config: ShapesConfig, base_seed: int, index: int, stream: str) -> tuple[ShapeAttributes, int]:
    """Attributes and render seed of clip ``index`` of a seed stream (independent of any batch)."""
    rng = numpy_rng(sample_seed(base_seed, index, f"shapes/{config.split}/{stream}"))
    attrs = config.draw(rng)
    return attrs, int(rng.integers(0, 2**63 - 1))


@DATASETS.register("shapes")
class ShapesDataset(ProtocolDataset):
    """Procedural text-to-video data: the real set is rendered on demand, as many clips as asked."""

    Config = ShapesConfig

    def plan(self, num_samples: int, base_seed: int) -> list[Sample]:
        samples = []
        for i in range(num_samples):
            attrs, _ = draw_clip(self.config, base_seed, i, "prompt")
            samples.append(
                Sample(index=i, prompt=caption(attrs), seed=sample_seed(base_seed, i), label=attrs.label,
                       meta=attrs.to_dict())
            )
        return samples

    def num_real(self, requested: int) -> int:
        return requested

    def real_clips(self, indices: list[int], base_seed: int) -> torch.Tensor:
        draws = [draw_clip(self.config, base_seed, int(i), "real") for i in indices]
        return render_batch([a for a, _ in draws], [s for _, s in draws], self.spec)

    def real_captions(self, indices: list[int], base_seed: int) -> list[str]:
        """Captions of reference clips (for CLIPSIM on the real set)."""
        return [caption(draw_clip(self.config, base_seed, int(i), "real")[0]) for i in indices]

    def reference_videos(self, prompts: list[str], seeds: list[int]) -> torch.Tensor:
        """Fresh clips showing what each prompt says; the nuisances come from each seed."""
        return render_batch([parse_caption(p) for p in prompts], [int(s) for s in seeds], self.spec)


class ShapesTrainingData(torch.utils.data.Dataset):
    """Training clips for generators: item ``i`` is deterministic in (seed, i).

    A fraction ``image_ratio`` of items are images, rendered as T identical frames at infinite
    fps (``fps = math.inf``) with a caption without a motion phrase; a generator encodes that fps
    as it likes (e.g. the frame interval 1/fps = 0). With ``fps_choices`` each video item draws
    its frame rate from the list (variable frame-rate training); otherwise every video uses
    ``spec.fps``. Items are (video uint8 (T, H, W, 3), caption, fps, is_image).
    """

    def __init__(
        self,
        spec: VideoSpec,
        image_ratio: float = 0.5,
        seed: int = 0,
        *,
        length: int = 1_000_000,
        fps_choices: list[float] | None = None,
        config: ShapesConfig | None = None,
    ):
        if not 0.0 <= image_ratio <= 1.0:
            raise ValueError(f"image_ratio must be in [0, 1], got {image_ratio}")
        if fps_choices is not None and (not fps_choices or min(fps_choices) <= 0):
            raise ValueError(f"fps_choices must be a non-empty list of positive frame rates, got {fps_choices}")
        self.spec = spec
        self.image_ratio = image_ratio
        self.seed = seed
        self.length = length
        self.fps_choices = fps_choices
        self.config = config or ShapesConfig(split="train")

    def __len__(self) -> int:
        return self.length

    def draw(self, index: int) -> tuple[ShapeAttributes, int, float, bool]:
        """What item ``index`` shows: (attributes, render seed, fps, is_image); ``batch`` renders it."""
        rng = numpy_rng(sample_seed(self.seed, index, f"shapes/{self.config.split}/train"))
        is_image = bool(rng.uniform() < self.image_ratio)
        fps = float(rng.choice(self.fps_choices)) if self.fps_choices else float(self.spec.fps)
        attrs = self.config.draw(rng)
        render_seed = int(rng.integers(0, 2**63 - 1))
        return attrs, render_seed, (math.inf if is_image else fps), is_image

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, list[str], torch.Tensor, torch.Tensor]:
        """Vectorised items: videos uint8 (B, T, H, W, 3), captions, fps (B,) float, is_image (B,) bool."""
        draws = [self.draw(int(i)) for i in indices]
        videos = torch.empty((len(indices), *self.spec.shape), dtype=torch.uint8)
        by_fps: dict[float, list[int]] = {}
        for k, (_, _, fps, _) in enumerate(draws):
            by_fps.setdefault(fps, []).append(k)
        for fps, ks in by_fps.items():
            spec = dataclasses.replace(self.spec, fps=fps)
            videos[ks] = render_batch([draws[k][0] for k in ks], [draws[k][1] for k in ks], spec)
        captions = [caption(a.as_still() if img else a) for a, _, _, img in draws]
        fps = torch.tensor([d[2] for d in draws], dtype=torch.float64)
        is_image = torch.tensor([d[3] for d in draws], dtype=torch.bool)
        return videos, captions, fps, is_image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str, float, bool]:
        if not 0 <= index < self.length:
            raise IndexError(f"ShapesTrainingData index {index} out of range [0, {self.length})")
        videos, captions, fps, is_image = self.batch([index])
        return videos[0], captions[0], float(fps[0]), bool(is_image[0])

    def iter_batches(self, batch_size: int, start: int = 0) -> Iterator[tuple[torch.Tensor, list[str], torch.Tensor, torch.Tensor]]:
        """Consecutive vectorised batches from item ``start`` on (faster than a DataLoader of items)."""
        for first in range(start, self.length, batch_size):
            yield self.batch(list(range(first, min(first + batch_size, self.length))))
