"""The run configuration: which generators on which protocols, and how to execute.

A generator entry may declare a ``sweep`` (a grid over its params); it expands into one generator
per combination, all sharing the run directory and therefore one real-set feature cache.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from evalkit.config import canonical_json


@dataclasses.dataclass
class GeneratorEntry:
    #: key in the generator registry (``evalkit list generators``)
    name: str
    #: row name in results; defaults to ``name`` (plus the swept values)
    label: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: grid over params, e.g. {"steps": [8, 16, 32], "guidance": [1.0, 3.0]}
    sweep: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    #: run only on these of the run's protocols (None: all), e.g. a 72x128 cascade on a 72x128 protocol
    protocols: list[str] | None = None

    def __post_init__(self) -> None:
        for key, values in self.sweep.items():
            if not values:
                raise ValueError(f"sweep.{key} must list at least one value")
        if self.protocols is not None and not self.protocols:
            raise ValueError("protocols must name at least one protocol, or be left out to run on all")


@dataclasses.dataclass
class RunConfig:
    generators: list[GeneratorEntry]
    #: shipped protocol names (``evalkit list protocols``) or paths to protocol YAML files
    protocols: list[str]
    name: str = "run"
    #: 0 keeps the protocol's own per-sample seeds; other values derive new ones (repeated-seed studies)
    seed: int = 0
    #: ``--set``-style overrides per protocol, e.g. {"shapes": ["num_samples=64"]}
    protocol_overrides: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    batch_size: int = 8
    #: samples per feature file: the unit of atomic writes and of resumption
    chunk_size: int = 32
    device: str = "auto"
    #: run detectors with random weights when reference weights are missing (results marked not comparable)
    allow_random_weights: bool = False
    #: write mp4 previews of the first N samples of each generator and protocol
    previews: int = 0
    #: keep the first N videos (uint8) of each generator and protocol for sample grids
    keep_samples: int = 8
    skip_unreadable: bool = False

    def __post_init__(self) -> None:
        if not self.generators:
            raise ValueError("generators must list at least one generator")
        if not self.protocols:
            raise ValueError("protocols must list at least one protocol")
        if self.batch_size < 1 or self.chunk_size < 1:
            raise ValueError("batch_size and chunk_size must be >= 1")
        for entry in self.generators:
            unknown = [p for p in entry.protocols or [] if p not in self.protocols]
            if unknown:
                raise ValueError(f"generator {entry.label or entry.name}: protocols {unknown} are not among the "
                                 f"run's protocols {self.protocols}")
        labels = [g.label for g in expand_generators(self)]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"generator labels must be unique; repeated: {dupes} (set 'label' on the entries)")


@dataclasses.dataclass(frozen=True)
class ResolvedGenerator:
    label: str
    name: str
    params: dict[str, Any]
    #: the swept values of this instance ({} without a sweep)
    swept: dict[str, Any]
    #: the protocols it runs on (None: all of the run's)
    protocols: tuple[str, ...] | None = None

    def runs_on(self, protocol: str) -> bool:
        return self.protocols is None or protocol in self.protocols


def _fmt(value: Any) -> str:
    return canonical_json(value).strip('"')


def expand_generators(config: RunConfig) -> list[ResolvedGenerator]:
    out = []
    for entry in config.generators:
        base = entry.label or entry.name
        protocols = tuple(entry.protocols) if entry.protocols is not None else None
        if not entry.sweep:
            out.append(ResolvedGenerator(base, entry.name, dict(entry.params), {}, protocols))
            continue
        keys = list(entry.sweep)
        for values in itertools.product(*(entry.sweep[k] for k in keys)):
            swept = dict(zip(keys, values))
            label = base + "[" + ",".join(f"{k}={_fmt(v)}" for k, v in swept.items()) + "]"
            out.append(ResolvedGenerator(label, entry.name, {**entry.params, **swept}, swept, protocols))
    return out
