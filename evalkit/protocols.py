"""Named, versioned protocol files: ``configs/protocols/<name>.yaml``.

A protocol pins down everything that moves a number: the dataset and its split, the prompt set,
how many samples and how classes or captions are drawn, frames, resolution, fps, the metric
variants and the seeds. Its name is its path under ``configs/protocols`` without ``.yaml``
(``shapes``, ``ucf101-zeroshot/snapvideo``).
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

from evalkit.config import apply_overrides, from_dict, load_yaml
from evalkit.errors import ConfigError
from evalkit.registry import PROTOCOLS
from evalkit.video import VideoSpec


@dataclasses.dataclass
class DatasetRef:
    #: key in ``evalkit.registry.DATASETS`` (shapes, ucf101, msrvtt, folder)
    kind: str
    #: validated by the dataset's own ``Config`` dataclass
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class VideoSettings:
    frames: int = 16
    height: int = 36
    width: int = 64
    fps: float = 24.0

    def spec(self) -> VideoSpec:
        return VideoSpec(self.frames, self.height, self.width, self.fps)


@dataclasses.dataclass
class ProtocolConfig:
    name: str
    version: str
    #: one paragraph for people: what the protocol measures
    description: str
    #: where each rule comes from (papers, reference code, with sections)
    sources: list[str]
    dataset: DatasetRef
    video: VideoSettings
    #: generated samples
    num_samples: int
    #: real (reference) clips
    num_real: int
    #: metric variants, e.g. ["fvd:styleganv", "is:c3d-styleganv"]
    metrics: list[str]
    seed: int = 0
    #: extra (height, width) at which generated and real videos are also resized and scored
    eval_resolutions: list[list[int]] = dataclasses.field(default_factory=list)
    notes: str = ""

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.num_real < 1:
            raise ValueError(f"num_real must be >= 1, got {self.num_real}")
        if not self.metrics:
            raise ValueError("metrics must name at least one metric variant")
        for res in self.eval_resolutions:
            if len(res) != 2 or min(res) < 1:
                raise ValueError(f"eval_resolutions entries must be [height, width], got {res}")


def protocols_root() -> Path:
    return Path(str(resources.files("evalkit.configs"))) / "protocols"


def _register_shipped() -> None:
    root = protocols_root()
    if not root.is_dir():
        return
    for file in sorted(root.rglob("*.yaml")):
        name = file.relative_to(root).with_suffix("").as_posix()
        PROTOCOLS.add(name, file)


def protocol_path(name_or_path: str | Path) -> Path:
    """A shipped protocol name or a path to a protocol YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    if str(name_or_path) in PROTOCOLS:
        return PROTOCOLS.get(str(name_or_path))
    if path.suffix in (".yaml", ".yml"):
        raise ConfigError("protocol file not found", file=str(path))
    return PROTOCOLS.get(str(name_or_path))  # raises with close matches


def load_protocol(name_or_path: str | Path, overrides: list[str] | None = None) -> ProtocolConfig:
    path = protocol_path(name_or_path)
    data = load_yaml(path)
    if overrides:
        data = apply_overrides(data, overrides, file=str(path))
    return from_dict(ProtocolConfig, data, file=path)


_register_shipped()
