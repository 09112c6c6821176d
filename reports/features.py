"""Per-sample arrays of a run directory: stored features, real-set features, plans, sample videos.

Bootstrap intervals and per-class breakdowns are recomputed from these, never from videos.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.errors import RunDirError
from evalkit.reports.load import protocol_slug, split_protocol
from evalkit.rundir import REAL


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise RunDirError(f"{path}: not a readable .npz file ({exc})") from None


def feature_dir(run_dir: str | Path, generator: str, protocol: str) -> Path:
    return Path(run_dir) / "features" / protocol_slug(generator) / protocol_slug(split_protocol(protocol)[0])


def load_fake_features(run_dir: str | Path, generator: str, protocol: str, detector: str) -> np.ndarray:
    """Features of one detector for one (generator, protocol), ordered by global sample index.

    A protocol named with an evaluation resolution (``ucf@288x288``) reads the key ``detector@288x288``.
    """
    detector = detector + split_protocol(protocol)[1]
    folder = feature_dir(run_dir, generator, protocol)
    chunks = sorted(folder.glob("chunk-*.npz"))
    if not chunks:
        raise RunDirError(f"{folder}: no feature chunks (chunk-*.npz) for generator {generator!r}")
    indices, arrays = [], []
    for chunk in chunks:
        data = _load_npz(chunk)
        if "index" not in data:
            raise RunDirError(f"{chunk}: missing array 'index' (global sample indices)")
        if detector not in data:
            raise RunDirError(f"{chunk}: missing array {detector!r} (features of that detector); "
                              f"arrays present: {', '.join(sorted(data))}")
        if len(data[detector]) != len(data["index"]):
            raise RunDirError(f"{chunk}: {detector!r} has {len(data[detector])} rows but 'index' has "
                              f"{len(data['index'])}")
        indices.append(data["index"].astype(np.int64))
        arrays.append(data[detector])
    index = np.concatenate(indices)
    feats = np.concatenate(arrays)
    order = np.argsort(index, kind="stable")
    index = index[order]
    if len(index) > 1 and (np.diff(index) == 0).any():
        raise RunDirError(f"{folder}: sample indices occur in more than one chunk")
    return feats[order]


def load_fake_indices(run_dir: str | Path, generator: str, protocol: str) -> np.ndarray:
    """Sorted global sample indices whose features are stored."""
    folder = feature_dir(run_dir, generator, protocol)
    parts = [_load_npz(c)["index"].astype(np.int64) for c in sorted(folder.glob("chunk-*.npz"))]
    if not parts:
        raise RunDirError(f"{folder}: no feature chunks (chunk-*.npz) for generator {generator!r}")
    return np.sort(np.concatenate(parts))


def load_real_features(run_dir: str | Path, protocol: str, detector: str) -> np.ndarray:
    """Real-set features: chunks under ``features/__real__/<protocol>/`` as the runner writes them,
    or one file ``real/<protocol>/<detector>.npz`` (key ``features``)."""
    if feature_dir(run_dir, REAL, protocol).is_dir():
        return load_fake_features(run_dir, REAL, protocol, detector)
    base, suffix = split_protocol(protocol)
    path = Path(run_dir) / "real" / protocol_slug(base) / f"{detector}{suffix}.npz"
    if not path.is_file():
        raise RunDirError(f"{feature_dir(run_dir, REAL, protocol)}: no real-set features for detector "
                          f"{detector + suffix!r} (nor {path})")
    data = _load_npz(path)
    if "features" not in data:
        raise RunDirError(f"{path}: missing array 'features'")
    return data["features"]


def load_plan(run_dir: str | Path, protocol: str) -> list[dict[str, Any]]:
    """The sample plan of a protocol (one dict per sample: index, prompt, seed, label, meta)."""
    path = Path(run_dir) / "plans" / f"{protocol_slug(split_protocol(protocol)[0])}.jsonl"
    if not path.is_file():
        raise RunDirError(f"{path}: no sample plan for protocol {protocol!r}")
    samples = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            sample = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path}:{lineno}: not valid JSON ({exc})") from None
        if not isinstance(sample, dict) or "index" not in sample:
            raise RunDirError(f"{path}:{lineno}: expected an object with an 'index' field")
        samples.append(sample)
    return samples


def load_samples(run_dir: str | Path, generator: str, protocol: str) -> tuple[np.ndarray, list[str]] | None:
    """Stored sample videos (uint8 (k, T, H, W, 3)) and their prompts, or None when none were kept."""
    path = Path(run_dir) / "samples" / protocol_slug(generator) / f"{protocol_slug(split_protocol(protocol)[0])}.npz"
    if not path.is_file():
        return None
    data = _load_npz(path)
    if "videos" not in data:
        raise RunDirError(f"{path}: missing array 'videos'")
    videos = data["videos"]
    if videos.dtype != np.uint8 or videos.ndim != 5 or videos.shape[-1] != 3:
        raise RunDirError(f"{path}: 'videos' must be uint8 (k, T, H, W, 3), got {videos.dtype} {videos.shape}")
    prompts = [str(p) for p in data.get("prompts", np.array([""] * len(videos)))]
    return videos, prompts
