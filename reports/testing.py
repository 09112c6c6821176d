"""Writers for the run-directory layout, for tests and examples of the report code.

They write exactly the files the runner writes (config.yaml, manifest.json, results.sqlite,
plans/, features/, real/, samples/), so report tests go through the same readers as real runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from evalkit.reports.load import CONFIG_FILE, MANIFEST_FILE, protocol_slug

from evalkit.rundir import REAL
from evalkit.store import RESULTS_FILE, ResultRow, write_results


def manifest_entry(
    generator: str,
    protocol: str,
    *,
    generator_name: str | None = None,
    params: dict[str, Any] | None = None,
    swept: dict[str, Any] | None = None,
    n_samples: int = 16,
    n_done: int | None = None,
    status: str = "done",
    gen_seconds_per_video: float | None = None,
    nfe_per_video: float | None = None,
    metric_seconds: float | None = None,
) -> dict[str, Any]:
    return {
        "generator": generator, "generator_name": generator_name or generator, "generator_params": params or {},
        "swept": swept or {}, "protocol": protocol, "n_samples": n_samples, "n_done": n_samples if n_done is None else n_done,
        "status": status, "gen_seconds_per_video": gen_seconds_per_video, "nfe_per_video": nfe_per_video,
        "metric_seconds": metric_seconds,
    }


def result_row(generator: str, protocol: str, metric: str, value: float, *, run_id: str = "run-a",
               higher_is_better: bool = False, n_fake: int = 16, n_real: int = 16, **extra: Any) -> ResultRow:
    name, _, variant = metric.partition(":")
    return ResultRow(run_id=run_id, generator=generator, protocol=protocol, metric=name, variant=variant,
                     value=value, n_real=n_real, n_fake=n_fake, higher_is_better=higher_is_better,
                     config_hash=extra.pop("config_hash", "c0ffee"), code_version=extra.pop("code_version", "0.1.0"),
                     **extra)


def write_run(
    path: str | Path,
    *,
    run_id: str,
    entries: Sequence[dict[str, Any]],
    rows: Sequence[ResultRow],
    config: dict[str, Any] | None = None,
    status: str = "complete",
) -> Path:
    """config.yaml, manifest.json and results.sqlite of one run (``rows`` may be empty: no results file)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if config is None:
        gens: dict[str, dict[str, Any]] = {}
        for e in entries:
            gens.setdefault(e["generator"], {"name": e["generator_name"], "label": e["generator"],
                                             "params": e["generator_params"]})
        config = {"generators": list(gens.values()),
                  "protocols": sorted({e["protocol"] for e in entries}), "seed": 0}
    (path / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
    manifest = {"run_id": run_id, "config_hash": "c0ffee", "code_version": "0.1.0",
                "created": "2025-01-01T00:00:00Z", "status": status, "entries": list(entries)}
    (path / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
    if rows:
        write_results(path / RESULTS_FILE, rows)
    return path


def write_features(path: str | Path, generator: str, protocol: str, index: np.ndarray,
                   arrays: dict[str, np.ndarray], chunk_size: int = 64) -> None:
    """Feature chunks ``features/<generator>/<slug>/chunk-NNNNNN.npz`` (arrays split by ``chunk_size``)."""
    folder = Path(path) / "features" / protocol_slug(generator) / protocol_slug(protocol)
    folder.mkdir(parents=True, exist_ok=True)
    index = np.asarray(index, dtype=np.int64)
    for k, start in enumerate(range(0, len(index), chunk_size)):
        part = {key: np.asarray(a[start:start + chunk_size], dtype=np.float32) for key, a in arrays.items()}
        part["gen_seconds"] = np.full(len(index[start:start + chunk_size]), 0.1, dtype=np.float32)
        np.savez(folder / f"chunk-{k:06d}.npz", index=index[start:start + chunk_size], **part)


def write_real(path: str | Path, protocol: str, arrays: dict[str, np.ndarray], chunk_size: int = 64) -> None:
    """Real-set feature chunks under ``features/__real__/<protocol>/``, as the runner writes them."""
    n = len(next(iter(arrays.values())))
    write_features(path, REAL, protocol, np.arange(n), arrays, chunk_size=chunk_size)


def write_plan(path: str | Path, protocol: str, samples: Sequence[dict[str, Any]]) -> None:
    folder = Path(path) / "plans"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{protocol_slug(protocol)}.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))


def write_samples(path: str | Path, generator: str, protocol: str, videos: np.ndarray, prompts: list[str]) -> None:
    folder = Path(path) / "samples" / protocol_slug(generator)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"{protocol_slug(protocol)}.npz", videos=np.asarray(videos, dtype=np.uint8),
             prompts=np.array(prompts))
