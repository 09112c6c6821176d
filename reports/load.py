"""Run directories -> one tidy pandas frame of results.

A report reads only what the runner wrote: ``config.yaml``, ``manifest.json`` and
``results.sqlite``. Each result row is joined with its manifest entry (counts, timings, generator
parameters), so a half-finished evaluation is always shown with its counts and never as final.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from evalkit.errors import RunDirError
from evalkit.rundir import REAL, slug
from evalkit.store import RESULTS_FILE, read_results

MANIFEST_FILE = "manifest.json"
#: manifest entry states; anything but "done" means the evaluation has not finished
ENTRY_STATUSES = ("pending", "running", "partial", "interrupted", "done")
CONFIG_FILE = "config.yaml"

#: columns of the frame returned by ``results_frame`` (one row per generator x protocol x metric x variant)
RESULT_COLUMNS = [
    "run_id", "run_dir", "generator", "label", "generator_name", "protocol", "metric", "variant", "value", "std",
    "ci_low", "ci_high", "interval", "n_real", "n_fake", "n_done", "n_samples", "higher_is_better",
    "detector", "weights_digest", "comparable", "config_hash", "code_version", "status",
    "gen_seconds_per_video", "nfe_per_video", "metric_seconds", "params", "swept", "config", "details", "source",
]

#: top-level run settings that never change a number (left out of config differences)
IGNORED_RUN_FIELDS = {"run_id", "out", "output", "out_dir", "run_dir", "created", "name", "device", "workers",
                      "num_workers", "progress", "log_level", "description", "batch_size", "chunk_size",
                      "previews", "keep_samples"}


def protocol_slug(protocol: str) -> str:
    """Folder name of a protocol or generator label inside a run directory (``/`` becomes ``__``)."""
    return slug(protocol)


def split_protocol(protocol: str) -> tuple[str, str]:
    """``"ucf@288x288"`` -> ``("ucf", "@288x288")``: results at an extra evaluation resolution name the
    protocol with a suffix, and their features carry the same suffix on the detector key."""
    base, sep, size = protocol.partition("@")
    return base, (sep + size if sep else "")


@dataclasses.dataclass
class RunData:
    """Everything a report needs from one run directory."""

    path: Path
    run_id: str
    config: dict[str, Any]
    manifest: dict[str, Any]
    results: pd.DataFrame

    @property
    def complete(self) -> bool:
        status_ok = self.manifest.get("status", "complete") == "complete"
        return status_ok and bool((self.results["status"] == "final").all())

    def entry(self, generator: str, protocol: str) -> dict[str, Any] | None:
        protocol = split_protocol(protocol)[0]
        for entry in self.manifest.get("entries", []):
            if entry.get("generator") == generator and entry.get("protocol") == protocol:
                return entry
        return None

    def generator_config(self, label: str) -> dict[str, Any]:
        """``{name, label, params}`` of a generator of this run (from the manifest, else config.yaml)."""
        for entry in self.manifest.get("entries", []):
            if entry.get("generator") == label:
                return {"name": entry.get("generator_name", label), "label": label,
                        "params": dict(entry.get("generator_params") or {}), "swept": dict(entry.get("swept") or {})}
        for gen in self.config.get("generators") or []:
            if isinstance(gen, dict) and (gen.get("label") or gen.get("name")) == label:
                return {"name": gen.get("name", label), "label": label, "params": dict(gen.get("params") or {}),
                        "swept": {}}
        return {"name": label, "label": label, "params": {}, "swept": {}}


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``); lists become tuples."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(data, list):
        data = tuple(tuple(v) if isinstance(v, list) else v for v in data)
    return {prefix.rstrip("."): data}


def _protocol_overrides(config: dict[str, Any], protocol: str) -> dict[str, Any]:
    """Overrides a run config applies to one protocol: ``protocol_overrides: {name: [a.b=c]}``, or a
    protocols entry ``{name, overrides: [a.b=c] | {a: {b: c}}}``."""
    protocol = split_protocol(protocol)[0]
    by_name = config.get("protocol_overrides") or {}
    if isinstance(by_name, dict) and protocol in by_name:
        return _parse_overrides(by_name[protocol])
    for item in config.get("protocols") or []:
        if not isinstance(item, dict) or item.get("name") != protocol:
            continue
        return _parse_overrides(item.get("overrides", item.get("set", {k: v for k, v in item.items()
                                                                         if k != "name"})))
    return {}


def _parse_overrides(over: Any) -> dict[str, Any]:
    if isinstance(over, list):
        parsed: dict[str, Any] = {}
        for text in over:
            key, sep, value = str(text).partition("=")
            if sep:
                parsed[key.strip()] = yaml.safe_load(value)
        return parsed
    return flatten(over) if isinstance(over, dict) else {}


def row_config(run: RunData, generator: str, protocol: str) -> dict[str, Any]:
    """The settings that identify one (generator, protocol) evaluation, as dotted keys.

    ``generator`` (the registered name), ``params.*`` (generator parameters), ``protocol.*`` (protocol
    overrides) and ``run.*`` (top-level scalar run settings such as the seed). Ablation tables show the
    keys whose values differ between rows; seed keys are what repeated-seed aggregation averages over.
    """
    gen = run.generator_config(generator)
    out: dict[str, Any] = {"generator": gen["name"]}
    out.update(flatten(gen["params"], "params."))
    out.update({f"protocol.{k}": v for k, v in _protocol_overrides(run.config, protocol).items()})
    for key, value in run.config.items():
        if key not in IGNORED_RUN_FIELDS and (value is None or isinstance(value, (str, int, float, bool))):
            out[f"run.{key}"] = value
    return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RunDirError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _check_manifest(path: Path, manifest: dict[str, Any]) -> None:
    entries = manifest.get("entries", [])
    if not isinstance(entries, list):
        raise RunDirError(f"{path}: field 'entries' must be a list, got {type(entries).__name__}")
    for i, entry in enumerate(entries):
        for key in ("generator", "protocol"):
            if not isinstance(entry, dict) or not isinstance(entry.get(key), str):
                raise RunDirError(f"{path}: entries[{i}].{key} must be a string")
        status = entry.get("status", "done")
        if status not in ENTRY_STATUSES:
            raise RunDirError(f"{path}: entries[{i}].status must be one of {', '.join(ENTRY_STATUSES)}, "
                              f"got {status!r}")


def load_run(path: str | Path) -> RunData:
    """Read one run directory; raise ``RunDirError`` naming the file when something is missing or broken."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path}: not a run directory (it does not exist or is not a folder)")
    manifest_path = path / MANIFEST_FILE
    manifest = _read_json(manifest_path) if manifest_path.is_file() else {}
    _check_manifest(manifest_path, manifest)
    config = _read_config(path / CONFIG_FILE)
    results_path = path / RESULTS_FILE
    if not results_path.is_file():
        entries = [e for e in manifest.get("entries", []) if e.get("generator") != REAL]
        done = sum(1 for e in entries if e.get("status") == "done")
        raise RunDirError(
            f"{results_path}: no results file; the run has {len(entries)} evaluation(s) in "
            f"its manifest, {done} done (run `evalkit run` to finish it, or pass a finished run directory)"
        )
    rows = read_results(results_path)
    if not rows:
        raise RunDirError(f"{results_path}: the results table is empty (no evaluation has finished)")
    run_id = str(manifest.get("run_id") or rows[0].run_id)
    data = RunData(path=path, run_id=run_id, config=config, manifest=manifest, results=pd.DataFrame())
    data.results = _frame(data, rows)
    return data


def _frame(run: RunData, rows: list[Any]) -> pd.DataFrame:
    records = []
    for row in rows:
        entry = run.entry(row.generator, row.protocol) or {}
        gen = run.generator_config(row.generator)
        status = row.status
        n_samples = entry.get("n_samples")
        n_done = entry.get("n_done", n_samples)
        # A manifest that says the pair is not done overrides a row that claims to be final.
        if (entry and entry.get("status", "done") != "done") or (
                n_samples is not None and n_done is not None and n_done < n_samples):
            status = "partial"
        details = dict(row.details)
        low, high = row.ci_low, row.ci_high
        records.append({
            "run_id": row.run_id, "run_dir": str(run.path), "generator": row.generator,
            "label": row.generator, "generator_name": gen["name"], "protocol": row.protocol, "metric": row.metric,
            "variant": row.variant, "value": row.value, "std": row.std, "ci_low": low, "ci_high": high,
            "interval": details.get("interval", "as stored with the result") if low is not None else None,
            "n_real": row.n_real, "n_fake": row.n_fake,
            "n_done": n_done if n_done is not None else row.n_fake,
            "n_samples": n_samples if n_samples is not None else row.n_fake,
            "higher_is_better": row.higher_is_better, "detector": row.detector,
            "weights_digest": row.weights_digest, "comparable": row.comparable,
            "config_hash": row.config_hash, "code_version": row.code_version, "status": status,
            "gen_seconds_per_video": entry.get("gen_seconds_per_video", details.get("gen_seconds_per_video")),
            "nfe_per_video": entry.get("nfe_per_video", details.get("nfe_per_video", details.get("nfe"))),
            "metric_seconds": entry.get("metric_seconds", row.wall_time_s),
            "params": gen["params"], "swept": gen["swept"] or dict(details.get("swept") or {}), "config": row_config(run, row.generator, row.protocol), "details": details, "source": "measured",
        })
    frame = pd.DataFrame.from_records(records, columns=RESULT_COLUMNS)
    for col in ("value", "std", "ci_low", "ci_high", "gen_seconds_per_video", "nfe_per_video", "metric_seconds"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    return frame


def load_runs(paths: list[str | Path]) -> list[RunData]:
    """Read several run directories (at least one); duplicate run ids are an error."""
    if not paths:
        raise RunDirError("no run directory given")
    runs = [load_run(p) for p in paths]
    seen: dict[str, Path] = {}
    for run in runs:
        if run.run_id in seen and seen[run.run_id].resolve() != run.path.resolve():
            raise RunDirError(f"{run.path}: run id {run.run_id!r} is also the id of {seen[run.run_id]}")
        seen[run.run_id] = run.path
    return runs


def results_frame(runs: list[RunData]) -> pd.DataFrame:
    """All measured rows of several runs in one frame (columns ``RESULT_COLUMNS``).

    Generator labels that occur in several runs are prefixed with the run id so rows stay distinct.
    """
    frames = [run.results for run in runs]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RESULT_COLUMNS)
    if len(runs) > 1:
        owners = frame.groupby("generator")["run_id"].nunique()
        shared = set(owners[owners > 1].index)
        if shared:
            frame["generator"] = [
                f"{run}/{gen}" if gen in shared else gen for run, gen in zip(frame["run_id"], frame["generator"])
            ]
    return frame


def common_protocols(runs: list[RunData]) -> list[str]:
    """Protocols every run evaluated; several runs with none in common is an error."""
    sets = [set(run.results["protocol"]) for run in runs]
    common = set.intersection(*sets) if sets else set()
    if len(runs) > 1 and not common:
        listing = "; ".join(f"{run.path}: {', '.join(sorted(s))}" for run, s in zip(runs, sets))
        raise RunDirError(f"the runs have no protocol in common, so they cannot share a table ({listing})")
    return sorted(common)
