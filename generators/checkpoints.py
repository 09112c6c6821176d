"""Training checkpoints and shipped weights in safetensors (no pickles anywhere).

A training checkpoint holds, as tensors under prefixes, the model (``model/``), its EMA
(``ema/``), the optimizer state flattened to tensors (``optim/<param index>/<key>``) and the random
number generator states of every rank (``rng/<rank>/<name>``); the step, the optimizer's parameter
groups and any run metadata travel as JSON in the safetensors header. Files are written to a
temporary name and renamed, so a crash never leaves a truncated checkpoint behind.

A shipped weights file (``save_weights``) holds one state dict (the EMA weights) and JSON metadata
(model name and config, text encoder fingerprint, training summary).
"""

from __future__ import annotations

import json
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from evalkit.errors import WeightsError

FORMAT = "evalkit-train-checkpoint/1"
WEIGHTS_FORMAT = "evalkit-weights/1"
_STEP_FILE = re.compile(r"^step-(\d+)\.safetensors$")


@dataclass
class Checkpoint:
    """The content of a training checkpoint, ready for ``load_state_dict`` calls."""

    step: int
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None = None
    optimizer: dict[str, Any] | None = None
    rng: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# random number generator states as tensors


def capture_rng(generators: dict[str, torch.Generator] | None = None) -> dict[str, torch.Tensor]:
    """States of torch (CPU and every CUDA device), numpy's and Python's global RNGs and the given
    generators, all as CPU tensors."""
    out: dict[str, torch.Tensor] = {"torch": torch.get_rng_state().clone()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"cuda.{i}"] = s.clone()
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    if name != "MT19937":
        raise RuntimeError(f"unexpected numpy RNG {name}")
    out["numpy.keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64).copy())
    out["numpy.extra"] = torch.tensor([float(pos), float(has_gauss), float(gauss)], dtype=torch.float64)
    version, internal, py_gauss = random.getstate()
    out["python.state"] = torch.tensor(list(internal), dtype=torch.int64)
    out["python.extra"] = torch.tensor([float(version), float("nan") if py_gauss is None else float(py_gauss)],
                                       dtype=torch.float64)
    for key, gen in (generators or {}).items():
        out[f"gen.{key}"] = gen.get_state().clone()
    return out


def restore_rng(state: dict[str, torch.Tensor], generators: dict[str, torch.Generator] | None = None) -> None:
    """Inverse of ``capture_rng``; CUDA states are restored only for devices that exist."""
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        for key, value in state.items():
            if key.startswith("cuda.") and int(key.split(".")[1]) < n:
                torch.cuda.set_rng_state(value, int(key.split(".")[1]))
    pos, has_gauss, gauss = state["numpy.extra"].tolist()
    np.random.set_state(("MT19937", state["numpy.keys"].numpy().astype(np.uint32), int(pos), int(has_gauss), gauss))
    version, py_gauss = state["python.extra"].tolist()
    random.setstate((int(version), tuple(int(x) for x in state["python.state"].tolist()),
                     None if np.isnan(py_gauss) else py_gauss))
    for key, gen in (generators or {}).items():
        if f"gen.{key}" in state:
            gen.set_state(state[f"gen.{key}"])


# ------------------------------------------------------------------------------------------------
# optimizer state <-> tensors + JSON


def flatten_optimizer_state(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``optimizer.state_dict()`` -> (tensors named ``<param index>/<key>``, JSON-able rest)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state_dict["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}/{key}"] = value.detach().cpu().clone().contiguous()
            elif isinstance(value, (int, float, bool, str)) or value is None:
                scalars.setdefault(str(idx), {})[key] = value
            else:
                raise TypeError(f"optimizer state {idx}/{key}: cannot store a {type(value).__name__}")
    groups = json.loads(json.dumps(state_dict["param_groups"], default=_json_default))
    return tensors, {"param_groups": groups, "scalars": scalars}


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in checkpoint metadata")


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        idx, key = name.split("/", 1)
        state.setdefault(int(idx), {})[key] = value
    for idx, entries in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(entries)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


# ------------------------------------------------------------------------------------------------
# files


def _plain(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Detached contiguous CPU copies (safetensors refuses tensors that share storage)."""
    return {f"{prefix}{k}": v.detach().cpu().clone().contiguous() for k, v in state.items()}


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def save_checkpoint(path: str | Path, *, step: int, model: dict[str, torch.Tensor],
                    ema: dict[str, torch.Tensor] | None = None, optimizer: dict[str, Any] | None = None,
                    rng: dict[int, dict[str, torch.Tensor]] | None = None, meta: dict[str, Any] | None = None) -> Path:
    """Write a training checkpoint (``rng`` maps rank -> ``capture_rng()`` output)."""
    path = Path(path)
    tensors = _plain(model, "model/")
    header: dict[str, Any] = {"format": FORMAT, "step": int(step), "meta": meta or {}, "has_ema": ema is not None,
                              "has_optimizer": optimizer is not None}
    if ema is not None:
        tensors.update(_plain(ema, "ema/"))
    if optimizer is not None:
        opt_tensors, opt_meta = flatten_optimizer_state(optimizer)
        tensors.update(_plain(opt_tensors, "optim/"))
        header["optimizer"] = opt_meta
    for rank, state in (rng or {}).items():
        tensors.update(_plain(state, f"rng/{int(rank)}/"))
    _atomic_save(tensors, path, {"evalkit": json.dumps(header, sort_keys=True)})
    return path


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from None
    if "evalkit" not in header:
        raise WeightsError(f"{path}: no 'evalkit' metadata in the safetensors header (not written by evalkit)")
    return tensors, json.loads(header["evalkit"])


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    tensors, header = _read(path)
    if header.get("format") != FORMAT:
        raise WeightsError(f"{path}: format {header.get('format')!r}, expected {FORMAT!r} (a training checkpoint)")
    groups: dict[str, dict[str, torch.Tensor]] = {"model": {}, "ema": {}, "optim": {}, "rng": {}}
    for name, value in tensors.items():
        prefix, rest = name.split("/", 1)
        groups[prefix][rest] = value
    rng: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in groups["rng"].items():
        rank, key = name.split("/", 1)
        rng.setdefault(int(rank), {})[key] = value
    optimizer = unflatten_optimizer_state(groups["optim"], header["optimizer"]) if header.get("has_optimizer") else None
    return Checkpoint(step=int(header["step"]), model=groups["model"], ema=groups["ema"] if header.get("has_ema") else None,
                      optimizer=optimizer, rng=rng, meta=header.get("meta", {}))


def checkpoint_name(step: int) -> str:
    return f"step-{int(step):08d}.safetensors"


def list_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints in ``directory``, oldest first."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _STEP_FILE.match(p.name))]
    return sorted(found)


def latest_checkpoint(directory: str | Path) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def prune_checkpoints(directory: str | Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints (``keep`` <= 0 keeps everything)."""
    if keep <= 0:
        return
    for _, p in list_checkpoints(directory)[:-keep]:
        p.unlink(missing_ok=True)


def save_weights(path: str | Path, state: dict[str, torch.Tensor], meta: dict[str, Any],
                 dtype: torch.dtype | None = None) -> Path:
    """Write one state dict (optionally cast, floating tensors only) with JSON metadata."""
    plain = _plain(state, "")
    if dtype is not None:
        plain = {k: v.to(dtype) if v.is_floating_point() else v for k, v in plain.items()}
    path = Path(path)
    _atomic_save(plain, path, {"evalkit": json.dumps({"format": WEIGHTS_FORMAT, "meta": meta}, sort_keys=True)})
    return path


def load_weights(path: str | Path, dtype: torch.dtype | None = torch.float32) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, metadata) of a ``save_weights`` file; floating tensors cast to ``dtype``."""
    path = Path(path)
    tensors, header = _read(path)
    if header.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(f"{path}: format {header.get('format')!r}, expected {WEIGHTS_FORMAT!r} (a weights file)")
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    return tensors, header.get("meta", {})


_COST_KEYS = ("steps", "samples", "wall_s", "device", "world", "threads", "config_hash")


def training_cost(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The training a weights file records (``evalkit train`` export), None for files without any.

    Weights trained from another file (``init_from``) count that file's training too: steps, samples and
    wall time are totals, ``runs`` lists each run in order, so a continued model reports its full cost.
    """
    if not meta or meta.get("steps") is None:
        return None
    own = {k: meta.get(k) for k in _COST_KEYS}
    before = (meta.get("init_from") or {}).get("training")
    if not before:
        return own
    runs = [*before.get("runs", [before]), own]
    walls = [r.get("wall_s") for r in runs]
    return {**own, "steps": sum(r.get("steps") or 0 for r in runs), "samples": sum(r.get("samples") or 0 for r in runs),
            "wall_s": sum(walls) if all(w is not None for w in walls) else None, "runs": runs}
