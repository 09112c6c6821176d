"""A tiny dataset, detector and metric for testing the runner's mechanics in milliseconds.

Imported by tests and by the subprocesses they launch (``python -m`` / torchrun), so every process
registers the same components.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import torch

from evalkit.datasets.base import ProtocolDataset, Sample
from evalkit.generators.reference import Oracle
from evalkit.metrics.base import Detector
from evalkit.metrics.frechet import FrechetMetric
from evalkit.registry import DATASETS, DETECTORS, GENERATORS, METRICS
from evalkit.seeding import numpy_rng, sample_seed

PROMPTS = ["red drift", "green drift", "blue drift", "grey drift"]


def toy_clip(prompt: str, seed: int, frames: int, height: int, width: int) -> np.ndarray:
    """A noisy coloured gradient drifting by a seed-dependent speed."""
    rng = numpy_rng(seed)
    colour = np.array({"red": [200, 40, 40], "green": [40, 200, 40], "blue": [40, 40, 200]}.get(prompt.split()[0], [128] * 3))
    speed = rng.uniform(0.5, 2.0)
    x = np.arange(width)[None, None, :, None]
    t = np.arange(frames)[:, None, None, None]
    wave = 0.5 + 0.5 * np.sin((x + speed * t) / 3.0)
    clip = colour * wave + rng.normal(0, 8, size=(frames, height, width, 3))
    return np.clip(clip, 0, 255).astype(np.uint8)


@dataclasses.dataclass
class ToyConfig:
    num_prompts: int = 4


@DATASETS.register("toy")
class ToyDataset(ProtocolDataset):
    Config = ToyConfig

    def plan(self, num_samples: int, base_seed: int) -> list[Sample]:
        out = []
        for i in range(num_samples):
            seed = sample_seed(base_seed, i)
            prompt = PROMPTS[seed % self.config.num_prompts]
            out.append(Sample(index=i, prompt=prompt, seed=seed, label=prompt.split()[0]))
        return out

    def num_real(self, requested: int) -> int:
        return requested

    def real_clips(self, indices: list[int], base_seed: int) -> torch.Tensor:
        s = self.spec
        clips = [toy_clip(PROMPTS[i % 4], sample_seed(base_seed, i, "real"), s.frames, s.height, s.width) for i in indices]
        return torch.from_numpy(np.stack(clips))

    def reference_videos(self, prompts: list[str], seeds: list[int]) -> torch.Tensor:
        s = self.spec
        return torch.from_numpy(np.stack([toy_clip(p, q, s.frames, s.height, s.width) for p, q in zip(prompts, seeds)]))


@DETECTORS.register("toy-stats")
class ToyStats(Detector):
    """Mean colour, colour spread and temporal change per channel: 9 numbers per video."""

    name = "toy-stats"

    def __call__(self, videos: torch.Tensor, prompts: list[str] | None = None) -> torch.Tensor:
        x = videos.double() / 255.0
        mean = x.mean(dim=(1, 2, 3))
        std = x.std(dim=(1, 2, 3))
        motion = (x[:, 1:] - x[:, :-1]).abs().mean(dim=(1, 2, 3))
        return torch.cat([mean, std, motion], dim=1)


@METRICS.register("fd:toy")
class ToyFD(FrechetMetric):
    name = "fd"
    variant = "toy"
    detector = "toy-stats"
    cov_divisor = "N-1"
    sqrt_method = "scipy-pytorch-fid"


@GENERATORS.register("toy-counting")
class CountingOracle(Oracle):
    """The oracle, logging every seed it renders to $TOY_LOG and sleeping $TOY_SLEEP per batch."""

    def _generate(self, prompts, seeds, spec):
        log = os.environ.get("TOY_LOG")
        if log:
            with open(log, "a") as handle:
                handle.write("".join(f"{s}\n" for s in seeds))
        time.sleep(float(os.environ.get("TOY_SLEEP", "0")))
        return super()._generate(prompts, seeds, spec)


def write_protocol(folder: Path, num_samples: int = 21, num_real: int = 23) -> Path:
    path = folder / "toy.yaml"
    path.write_text(f"""
name: toy
version: "1"
description: toy protocol for runner tests
sources: ["tests/toy_plugin.py"]
dataset: {{kind: toy}}
video: {{frames: 4, height: 8, width: 12, fps: 8}}
num_samples: {num_samples}
num_real: {num_real}
metrics: ["fd:toy"]
eval_resolutions: [[6, 6]]
""")
    return path


def write_run_config(folder: Path, protocol: Path, **extra: object) -> Path:
    import yaml

    data = {
        "name": "toy-run",
        "protocols": [str(protocol)],
        "generators": [
            {"name": "toy-counting", "label": "oracle"},
            {"name": "oracle-noise", "params": {"level": 0.2}},
        ],
        "batch_size": 3,
        "chunk_size": 4,
        "device": "cpu",
    }
    data.update(extra)
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


if __name__ == "__main__":  # launched as a script (e.g. by torchrun): run the CLI with this plugin loaded
    import sys

    from evalkit.cli import main

    sys.exit(main(sys.argv[1:]))
