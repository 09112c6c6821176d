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

from evalkit.metrics.base import Metric, MetricValue
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


class GaussianFrechet(Metric):
    """Fréchet distance of two feature sets via ``scipy.linalg.sqrtm`` (N-1 covariances), kept simple
    as an independent reference for report tests; registered by tests as ``fvd:test``."""

    name = "fvd"
    variant = "test"
    detector = "gauss"
    higher_is_better = False

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._fake: list[np.ndarray] = []
        self._real: list[np.ndarray] = []

    def update(self, features: Any, *, real: bool) -> None:
        (self._real if real else self._fake).append(np.asarray(features, dtype=np.float64))

    def compute(self) -> MetricValue:
        import scipy.linalg

        a, b = np.concatenate(self._fake), np.concatenate(self._real)
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        covmean = scipy.linalg.sqrtm(s1 @ s2).real
        diff = a.mean(0) - b.mean(0)
        return MetricValue(float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean)))

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"fake": np.concatenate(self._fake), "real": np.concatenate(self._real)}

    def merge_state(self, state: dict[str, np.ndarray]) -> None:
        self._fake.append(state["fake"])
        self._real.append(state["real"])

    @property
    def n_real(self) -> int:
        return sum(len(x) for x in self._real)

    @property
    def n_fake(self) -> int:
        return sum(len(x) for x in self._fake)


class MeanScore(GaussianFrechet):
    """Mean of per-sample scores (a CLIPSIM-like metric without a real set); ``clipsim:test``."""

    name = "clipsim"
    variant = "test"
    detector = "score"
    higher_is_better = True
    uses_real = False

    def compute(self) -> MetricValue:
        return MetricValue(float(np.concatenate(self._fake).mean()))

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"fake": np.concatenate(self._fake), "real": np.zeros((0, 1))}


TEST_METRICS = {"fvd:test": GaussianFrechet, "clipsim:test": MeanScore}


def write_example_run(
    root: str | Path,
    *,
    protocol: str = "ucf101-zeroshot/test",
    steps: Sequence[int] = (8, 16, 32),
    seeds: Sequence[int] = (0,),
    n: int = 48,
    labels: Sequence[str] = ("ApplyEyeMakeup", "Biking", "Diving"),
    partial: bool = True,
    run_id: str = "run-a",
    rng_seed: int = 0,
) -> Path:
    """A run with a ``fit`` steps sweep (optionally repeated over seeds), its features, real features,
    plan with labels and kept samples, plus (``partial``) an unfinished ``unet`` evaluation.

    Result values are computed with ``TEST_METRICS`` from the written features, as the runner would.
    """
    root = Path(root)
    rng = np.random.default_rng(rng_seed)
    real = rng.standard_normal((n, 4))
    write_real(root, protocol, {"gauss": real})
    write_plan(root, protocol, [{"index": i, "prompt": f"a video of {labels[i % len(labels)]}", "seed": i,
                                 "label": labels[i % len(labels)], "meta": {}} for i in range(n)])
    entries, rows = [], []
    for step in steps:
        for seed in seeds:
            label = f"fit[steps={step}]" if len(seeds) == 1 else f"fit[steps={step},seed={seed}]"
            swept = {"steps": step} if len(seeds) == 1 else {"steps": step, "seed": seed}
            entries.append(manifest_entry(label, protocol, generator_name="fit",
                                          params={"steps": step, "guidance": 3.0, "seed": seed}, swept=swept,
                                          n_samples=n, gen_seconds_per_video=0.02 * step, nfe_per_video=2 * step))
            fake = rng.standard_normal((n, 4)) * (1.0 + 2.0 / step) + 1.0 / step
            score = rng.normal(0.25 + 0.001 * step, 0.02, (n, 1))
            write_features(root, label, protocol, np.arange(n), {"gauss": fake, "score": score}, chunk_size=20)
            fd, cs = GaussianFrechet(), MeanScore()
            fd.update(fake, real=False)
            fd.update(real, real=True)
            cs.update(score, real=False)
            rows.append(result_row(label, protocol, "fvd:test", fd.compute().value, run_id=run_id, n_fake=n,
                                   n_real=n, detector="gauss"))
            rows.append(result_row(label, protocol, "clipsim:test", cs.compute().value, run_id=run_id,
                                   higher_is_better=True, n_fake=n, n_real=0, detector="score"))
            videos = rng.integers(0, 255, (3, 8, 24, 40, 3), dtype=np.uint8)
            write_samples(root, label, protocol, videos, [f"prompt {k} of {label}" for k in range(3)])
    if partial:
        entries.append(manifest_entry("unet", protocol, generator_name="unet", params={"steps": 50}, n_samples=n,
                                      n_done=20, status="running"))
        rows.append(result_row("unet", protocol, "fvd:test", 3.5, run_id=run_id, n_fake=20, n_real=n,
                               status="partial", detector="gauss"))
    return write_run(root, run_id=run_id, entries=entries, rows=rows,
                     status="running" if partial else "complete",
                     config={"generators": [{"name": "fit", "sweep": {"steps": list(steps)}}],
                             "protocols": [protocol], "seed": 0, "batch_size": 8})


def use_test_metrics(monkeypatch: Any) -> None:
    """Make ``TEST_METRICS`` visible in the metric registry for one test (pytest ``monkeypatch``)."""
    from evalkit.registry import METRICS

    METRICS.names()  # load the built-ins first so they cannot overwrite these
    for name, cls in TEST_METRICS.items():
        monkeypatch.setitem(METRICS._items, name, cls)
