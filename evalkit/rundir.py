"""The run directory: resolved config, manifest, plans, feature chunks, samples, results.

```
RUN_DIR/config.yaml                    resolved run config
RUN_DIR/manifest.json                  run id, config hash, code version, status of each entry
RUN_DIR/plans/<protocol>.jsonl         one Sample per line, written before any generation
RUN_DIR/features/<generator>/<protocol>/chunk-000000.npz   per-sample features of generated videos
RUN_DIR/features/__real__/<protocol>/chunk-000000.npz      per-sample features of the real set
RUN_DIR/samples/<generator>/<protocol>.npz                 a few uint8 videos + prompts (grids)
RUN_DIR/previews/<generator>/<protocol>/000000.mp4         optional previews (never read by metrics)
RUN_DIR/results.sqlite                 evalkit.store schema
RUN_DIR/lock                           held (flock) by the process that writes the directory
```
``<protocol>`` is the protocol name with ``/`` replaced by ``__``. Every file is written to a
temporary name and renamed, so a killed run never leaves a half-written chunk behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.errors import RunDirError

REAL = "__real__"
CHUNK_PATTERN = "chunk-{:06d}.npz"


def slug(name: str) -> str:
    """File-system name of a protocol or generator label."""
    return name.replace("/", "__").replace(os.sep, "__")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunLock:
    """An exclusive lock on a run directory; released by the OS if the process dies."""

    def __init__(self, root: Path):
        self.path = root / "lock"
        self._handle: Any = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RunDirError(
                f"{self.path.parent}: another evalkit process is writing this run directory (lock held)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class RunDir:
    """Paths and readers of one run directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # paths -----------------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    @property
    def manifest_file(self) -> Path:
        return self.root / "manifest.json"

    @property
    def results_file(self) -> Path:
        return self.root / "results.sqlite"

    def plan_file(self, protocol: str) -> Path:
        return self.root / "plans" / f"{slug(protocol)}.jsonl"

    def chunk_dir(self, generator: str, protocol: str) -> Path:
        return self.root / "features" / slug(generator) / slug(protocol)

    def chunk_file(self, generator: str, protocol: str, chunk: int) -> Path:
        return self.chunk_dir(generator, protocol) / CHUNK_PATTERN.format(chunk)

    def samples_file(self, generator: str, protocol: str) -> Path:
        return self.root / "samples" / slug(generator) / f"{slug(protocol)}.npz"

    def preview_dir(self, generator: str, protocol: str) -> Path:
        return self.root / "previews" / slug(generator) / slug(protocol)

    # manifest --------------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any]:
        if not self.manifest_file.is_file():
            raise RunDirError(f"{self.root}: not a run directory (no manifest.json)")
        try:
            return json.loads(self.manifest_file.read_text())
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{self.manifest_file}: corrupted manifest ({exc})") from None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_text(self.manifest_file, json.dumps(manifest, indent=2, sort_keys=True, default=str))

    # chunks ----------------------------------------------------------------------------------
    def done_chunks(self, generator: str, protocol: str) -> set[int]:
        folder = self.chunk_dir(generator, protocol)
        if not folder.is_dir():
            return set()
        return {int(p.stem.split("-")[1]) for p in folder.glob("chunk-*.npz")}

    def read_chunk(self, generator: str, protocol: str, chunk: int) -> dict[str, np.ndarray]:
        path = self.chunk_file(generator, protocol, chunk)
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{path}: unreadable feature chunk ({exc}); delete it and resume to recompute") from None

    def iter_chunks(self, generator: str, protocol: str) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        for chunk in sorted(self.done_chunks(generator, protocol)):
            yield chunk, self.read_chunk(generator, protocol, chunk)

    def load_features(self, generator: str, protocol: str, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(global indices, features) of every finished sample, in index order."""
        indices, feats = [], []
        for _, data in self.iter_chunks(generator, protocol):
            if key not in data:
                raise RunDirError(f"{self.chunk_dir(generator, protocol)}: no features '{key}' (have {sorted(data)})")
            indices.append(data["index"])
            feats.append(data[key])
        if not indices:
            raise RunDirError(f"{self.chunk_dir(generator, protocol)}: no finished feature chunks")
        index = np.concatenate(indices)
        order = np.argsort(index, kind="stable")
        return index[order], np.concatenate(feats)[order]

    def read_plan(self, protocol: str) -> list[dict[str, Any]]:
        path = self.plan_file(protocol)
        if not path.is_file():
            raise RunDirError(f"{path}: missing plan")
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
