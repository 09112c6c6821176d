"""The weight-file registry: what each network needs, where it comes from, and how to check it.

Model hubs are often unreachable, so nothing is downloaded: each network has an entry (file name,
canonical URL, the digest known for it), ``evalkit weights add NAME FILE`` verifies a file and copies
it into the cache (``$EVALKIT_HOME/weights``, default ``~/.cache/evalkit/weights``), and ``resolve``
either returns the cached file or raises a ``WeightsError`` that names the file, the URL and the
command to run. Random weights are only used when asked for (``allow_random=True``) and then the
result is marked not comparable with published numbers.

Digests: ``sha256-prefix`` entries carry a (possibly full-length) hex prefix of the file's SHA-256
(torch-hub file names end in its first 8 hex digits); ``git-blob-sha1`` entries carry the Git blob id
of the file as committed in a reference repository (``git hash-object FILE``). Entries whose file has
no published digest have ``digest=None``; their SHA-256 is recorded when added.

Each cached file has a sidecar ``<file>.evalkit.json`` recording its SHA-256 (re-checked against
size and modification time) and whether it is a reference file or was added with ``--force``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from evalkit.errors import WeightsError

DigestKind = Literal["sha256-prefix", "git-blob-sha1"]
SIDECAR_SUFFIX = ".evalkit.json"


@dataclasses.dataclass(frozen=True)
class WeightEntry:
    """One network's weight file as its reference distributes it."""

    name: str
    filename: str
    url: str
    digest: str | None
    digest_kind: DigestKind | None
    description: str
    #: a file shipped inside the package (e.g. the shapes benchmark's detectors); used when not cached
    packaged_path: str | None = None

    def __post_init__(self) -> None:
        if (self.digest is None) != (self.digest_kind is None):
            raise ValueError(f"weights entry {self.name!r}: digest and digest_kind must be given together")
        if self.digest_kind not in (None, "sha256-prefix", "git-blob-sha1"):
            raise ValueError(f"weights entry {self.name!r}: unknown digest_kind {self.digest_kind!r}")


@dataclasses.dataclass(frozen=True)
class ResolvedWeights:
    """The file to load (None: build seeded random weights), its digest, and comparability."""

    path: Path | None
    digest: str | None
    comparable: bool
    entry: WeightEntry | None = None


WEIGHTS: dict[str, WeightEntry] = {}

_OVERRIDES: dict[str, Path] = {}


def _canonical(name: str) -> str:
    return name.strip().replace("_", "-").lower()


def register_weights(entry: WeightEntry) -> WeightEntry:
    """Add an entry (idempotent for an identical entry; a different entry under a taken name raises)."""
    key = _canonical(entry.name)
    existing = WEIGHTS.get(key)
    if existing is not None and existing != entry:
        raise WeightsError(f"weights entry '{entry.name}' is already registered with different contents")
    WEIGHTS[key] = entry
    return entry


def get_entry(name: str) -> WeightEntry:
    """The entry for ``name`` (underscores and hyphens are interchangeable)."""
    try:
        return WEIGHTS[_canonical(name)]
    except KeyError:
        known = ", ".join(sorted(WEIGHTS))
        raise WeightsError(f"unknown weights '{name}'; known: {known} (see `evalkit weights list`)") from None


def weights_home() -> Path:
    """``$EVALKIT_HOME`` or ``~/.cache/evalkit``."""
    home = os.environ.get("EVALKIT_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "evalkit"


def weights_dir() -> Path:
    return weights_home() / "weights"


def cached_path(name: str) -> Path:
    """Where ``evalkit weights add`` puts the file of ``name``."""
    return weights_dir() / get_entry(name).filename


# ---------------------------------------------------------------------------------------------- digests


def file_digest(path: str | os.PathLike) -> str:
    """``sha256:<hex>`` of a file, streamed (what every result records)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read weight file ({exc.strerror or exc})") from None
    return "sha256:" + h.hexdigest()


def git_blob_sha1(path: str | os.PathLike) -> str:
    """The Git blob id of a file (what ``git hash-object FILE`` prints)."""
    size = os.path.getsize(path)
    h = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def matches_entry(entry: WeightEntry, path: str | os.PathLike, sha256: str | None = None) -> bool | None:
    """True/False when the entry has a digest to compare with, None when it has none."""
    if entry.digest is None:
        return None
    if entry.digest_kind == "git-blob-sha1":
        return git_blob_sha1(path) == entry.digest.lower()
    sha = (sha256 or file_digest(path)).removeprefix("sha256:")
    return sha.startswith(entry.digest.lower())


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _read_sidecar(path: Path) -> dict | None:
    try:
        return json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return None


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _write_sidecar(path: Path, record: dict) -> None:
    record = {**record, "stat": _stat_key(path)}
    tmp = _sidecar(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
    os.replace(tmp, _sidecar(path))


def _sha256_cached(path: Path) -> str:
    """SHA-256 from the sidecar when size and mtime are unchanged, else recomputed."""
    record = _read_sidecar(path)
    if record and record.get("stat") == _stat_key(path) and record.get("sha256"):
        return record["sha256"]
    return file_digest(path)


# ---------------------------------------------------------------------------------------------- resolve


def missing_message(entry: WeightEntry, where: Path) -> str:
    return (
        f"weights '{entry.name}' ({entry.description}) are not installed: expected {where}.\n"
        f"  1. download {entry.filename} from {entry.url}\n"
        f"  2. run: evalkit weights add {entry.name} /path/to/{entry.filename}\n"
        "  (or pass --allow-random-weights to run with seeded random weights; results are then not comparable)"
    )


def resolve(name: str, allow_random: bool = False) -> ResolvedWeights:
    """The weight file of ``name``: an override, the cache, or the packaged file, in that order.

    A missing file raises ``WeightsError`` (naming file, URL and command) unless ``allow_random``,
    in which case ``path`` is None and the caller builds seeded random weights.
    """
    entry = get_entry(name)
    key = _canonical(name)
    if key in _OVERRIDES:
        return resolve_file(entry, _OVERRIDES[key])
    path = weights_dir() / entry.filename
    if path.is_file():
        sha = _sha256_cached(path)
        record = _read_sidecar(path)
        if record is not None and record.get("sha256") == sha:
            return ResolvedWeights(path, sha, bool(record.get("reference", False)), entry)
        # A file placed in the cache by hand: check it now.
        ok = matches_entry(entry, path, sha)
        if ok is False:
            raise WeightsError(
                f"{path}: digest does not match weights '{entry.name}' (expected {entry.digest_kind} "
                f"{entry.digest}); replace it, or accept it as non-reference with "
                f"`evalkit weights add {entry.name} {path} --force`"
            )
        _write_sidecar(path, {"name": entry.name, "sha256": sha, "reference": True, "forced": False,
                              "verified": ok is True, "added": time.time()})
        return ResolvedWeights(path, sha, True, entry)
    if entry.packaged_path is not None and Path(entry.packaged_path).is_file():
        packaged = Path(entry.packaged_path)
        sha = file_digest(packaged)
        ok = matches_entry(entry, packaged, sha)
        return ResolvedWeights(packaged, sha, ok is not False, entry)
    if allow_random:
        return ResolvedWeights(None, None, False, entry)
    raise WeightsError(missing_message(entry, path))


def resolve_file(name_or_entry: str | WeightEntry, file: str | os.PathLike) -> ResolvedWeights:
    """A user-given file for ``name`` (``--weights NAME=FILE``): comparable only if its digest matches."""
    entry = name_or_entry if isinstance(name_or_entry, WeightEntry) else get_entry(name_or_entry)
    path = Path(file).expanduser()
    if not path.is_file():
        raise WeightsError(f"{path}: weight file for '{entry.name}' not found")
    sha = file_digest(path)
    return ResolvedWeights(path, sha, matches_entry(entry, path, sha) is not False, entry)


@contextlib.contextmanager
def overrides(mapping: dict[str, str | os.PathLike]) -> Iterator[None]:
    """Within the block, ``resolve(name)`` returns the given files (``--weights NAME=FILE``)."""
    previous = dict(_OVERRIDES)
    try:
        for name, file in mapping.items():
            entry = get_entry(name)
            path = Path(file).expanduser()
            if not path.is_file():
                raise WeightsError(f"{path}: weight file for '{entry.name}' not found")
            _OVERRIDES[_canonical(name)] = path
        yield
    finally:
        _OVERRIDES.clear()
        _OVERRIDES.update(previous)


# ---------------------------------------------------------------------------------------------- add / verify


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    name: str
    path: Path | None
    status: Literal["ok", "unverified", "forced", "mismatch", "missing", "packaged"]
    sha256: str | None
    detail: str = ""


def add(name: str, file: str | os.PathLike, force: bool = False) -> VerifyResult:
    """Verify ``file`` against the entry and copy it into the cache (atomically).

    A digest mismatch raises ``WeightsError`` unless ``force``; a forced file is recorded as
    non-reference and every result computed with it is marked not comparable.
    """
    entry = get_entry(name)
    src = Path(file).expanduser()
    if not src.is_file():
        raise WeightsError(f"{src}: file not found (evalkit weights add {entry.name} FILE)")
    sha = file_digest(src)
    ok = matches_entry(entry, src, sha)
    if ok is False and not force:
        got = git_blob_sha1(src) if entry.digest_kind == "git-blob-sha1" else sha.removeprefix("sha256:")
        raise WeightsError(
            f"{src}: digest mismatch for weights '{entry.name}': expected {entry.digest_kind} {entry.digest}, "
            f"got {got}. Download {entry.filename} from {entry.url}, or add this file as non-reference "
            f"(results marked not comparable) with `evalkit weights add {entry.name} {src} --force`"
        )
    dest_dir = weights_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / entry.filename
    fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=f".{entry.filename}.", suffix=".part")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    reference = ok is not False
    _write_sidecar(dest, {"name": entry.name, "sha256": sha, "reference": reference, "forced": not reference,
                          "verified": ok is True, "source": str(src), "added": time.time()})
    status = "ok" if ok else ("unverified" if ok is None else "forced")
    return VerifyResult(entry.name, dest, status, sha)


def verify(name: str | None = None) -> list[VerifyResult]:
    """Re-hash cached files and compare them with the registry (all entries when ``name`` is None)."""
    entries = [get_entry(name)] if name else [WEIGHTS[k] for k in sorted(WEIGHTS)]
    results = []
    for entry in entries:
        path = weights_dir() / entry.filename
        if not path.is_file():
            if entry.packaged_path and Path(entry.packaged_path).is_file():
                packaged = Path(entry.packaged_path)
                sha = file_digest(packaged)
                if matches_entry(entry, packaged, sha) is False:
                    detail = f"packaged file differs from the registered {entry.digest_kind} {entry.digest}"
                    results.append(VerifyResult(entry.name, packaged, "mismatch", sha, detail))
                else:
                    results.append(VerifyResult(entry.name, packaged, "packaged", sha))
            else:
                results.append(VerifyResult(entry.name, None, "missing", None, entry.url))
            continue
        sha = file_digest(path)
        ok = matches_entry(entry, path, sha)
        record = _read_sidecar(path) or {}
        if ok is False:
            status = "forced" if record.get("forced") else "mismatch"
        elif record.get("sha256") not in (None, sha):
            status, ok = "mismatch", False
        else:
            status = "ok" if ok else "unverified"
        results.append(VerifyResult(entry.name, path, status, sha,
                                    "file changed since it was added" if record.get("sha256") not in (None, sha) else ""))
    return results


# ---------------------------------------------------------------------------------------------- loading


def is_torchscript(path: str | os.PathLike) -> bool:
    """True for a TorchScript archive (a zip holding ``constants.pkl`` or a ``code/`` folder)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())


def load_state_dict(path: str | os.PathLike, map_location: str = "cpu") -> dict:
    """A tensor dict from safetensors, a ``torch.save`` state dict (``weights_only=True``) or TorchScript.

    Never unpickles arbitrary objects. A ``{"state_dict": ...}`` wrapper and a ``module.`` prefix
    (DataParallel) are removed.
    """
    import torch

    path = str(path)
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path, device=map_location)
        elif is_torchscript(path):
            state = dict(torch.jit.load(path, map_location=map_location).state_dict())
        else:
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any loader failure is a bad weight file
        raise WeightsError(f"{path}: cannot load weights ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise WeightsError(f"{path}: expected a state dict (name -> tensor), got {type(state).__name__}")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_torchscript(path: str | os.PathLike, map_location: str = "cpu"):
    """A TorchScript module in eval mode, or a ``WeightsError`` naming the file."""
    import torch

    try:
        return torch.jit.load(str(path), map_location=map_location).eval()
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(f"{path}: not a loadable TorchScript archive ({type(exc).__name__}: {exc})") from None


# ---------------------------------------------------------------------------------------------- entries

_OPENAI = "https://openaipublic.azureedge.net/clip/models"

for _entry in (
    WeightEntry(
        "pytorch-fid-inception", "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
        "6726825d", "sha256-prefix", "InceptionV3 FID weights (pytorch-fid, clean-fid legacy_pytorch; state dict)",
    ),
    WeightEntry(
        "inception-torchscript", "inception-2015-12-05.pt",
        "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
        None, None, "InceptionV3 TorchScript (clean-fid clean mode, StyleGAN2-ADA/StyleGAN-V IS)",
    ),
    WeightEntry(
        "i3d-torchscript", "i3d_torchscript.pt",
        "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
        "93daef59c7ae0e9e8f76225521407e60cbafa6aa", "git-blob-sha1",
        "I3D Kinetics-400 TorchScript port of the TF-Hub module (StyleGAN-V FVD)",
    ),
    WeightEntry(
        "i3d-pretrained-400", "i3d_pretrained_400.pt",
        "https://github.com/songweige/TATS/raw/main/tats/fvd/i3d_pretrained_400.pt",
        "a867b87ac3a9097d200598b1d48a1b890d8ec744", "git-blob-sha1",
        "I3D Kinetics-400 state dict converted from TF-Hub (VideoGPT, TATS, cd-fvd)",
    ),
    WeightEntry(
        "c3d-ucf101", "c3d_ucf101.pt",
        "https://www.dropbox.com/s/jxpu7avzdc9n97q/c3d_ucf101.pt?dl=1",
        None, None, "C3D fine-tuned on UCF-101, TorchScript (StyleGAN-V video IS)",
    ),
    WeightEntry(
        "clip-vit-b-32-openai", "ViT-B-32.pt",
        f"{_OPENAI}/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
        "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", "sha256-prefix",
        "OpenAI CLIP ViT-B/32 (CLIPSIM, clean-fid CLIP-FID; TorchScript archive)",
    ),
    WeightEntry(
        "clip-vit-b-16-openai", "ViT-B-16.pt",
        f"{_OPENAI}/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
        "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f", "sha256-prefix",
        "OpenAI CLIP ViT-B/16 (VideoPoet/Phenaki-style CLIPSIM; TorchScript archive)",
    ),
    WeightEntry(
        "clip-vit-l-14-openai", "ViT-L-14.pt",
        f"{_OPENAI}/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
        "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836", "sha256-prefix",
        "OpenAI CLIP ViT-L/14 (TorchScript archive)",
    ),
    WeightEntry(
        "videomae-v2-g-ssv2", "vit_g_hybrid_pt_1200e_ssv2_ft.pth",
        "https://huggingface.co/OpenGVLab/InternVideoMAE_models/resolve/main/mae-g/vit_g_hybrid_pt_1200e_ssv2_ft.pth",
        None, None, "VideoMAE-v2 ViT-g fine-tuned on SSv2 (content-debiased FVD)",
    ),
):
    register_weights(_entry)
