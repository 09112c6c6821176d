"""`evalkit score`: metrics between two sets of videos (or images) on disk, no run directory needed.

PATH may be a folder of video files, a folder of frame folders (one sub-folder of images per video,
StyleGAN-V layout), a folder of images (each image is a one-frame video) or a ``.npy``/``.npz`` uint8
array (N, T, H, W, 3). Items are read in sorted order. Features of the real set are cached in
``$EVALKIT_HOME/cache/`` keyed by the file list (names, sizes, modification times), the detector
fingerprint (name + weight digest) and the frame selection.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from evalkit import video_io
from evalkit import weights as W
from evalkit.errors import InputError

EXAMPLES = """examples:
  evalkit score --real ucf_frames/ --fake samples/ --metric fvd:styleganv --frames 16
  evalkit score --real real.npz --fake fake.npz --metric fid:pytorch-fid --metric kid --json scores.json
  evalkit score --fake samples/ --prompts prompts.txt --metric clipsim:vit-b-32
  evalkit score --real a/ --fake b/ --metric fid:clean --weights inception-torchscript=./inception-2015-12-05.pt
List metric variants with `evalkit list metrics`; install weights with `evalkit weights add`.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="compute metrics between a real and a generated set of videos",
                       description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", help="real videos: folder of videos / frame folders / images, or .npy/.npz")
    p.add_argument("--fake", required=True, help="generated videos, same forms as --real")
    p.add_argument("--metric", action="append", required=True, metavar="NAME[:VARIANT]",
                   help="metric variant (repeatable), e.g. fvd:styleganv, fid:pytorch-fid, kid, clipsim:vit-b-32")
    p.add_argument("--weights", action="append", default=[], metavar="NAME=FILE",
                   help="use FILE for weights NAME in this run (digest checked; a mismatch marks results not comparable)")
    p.add_argument("--frames", type=int, default=None, help="first N frames of each video (default: all)")
    p.add_argument("--prompts", help="text file, one prompt per line, in the sorted order of --fake (CLIPSIM)")
    p.add_argument("--json", dest="json_out", help="write the results as JSON to this file")
    p.add_argument("--allow-random-weights", action="store_true",
                   help="run detectors whose weights are missing with seeded random weights (not comparable)")
    p.add_argument("--batch-size", type=int, default=8, help="videos per detector call (default 8)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-cache", action="store_true", help="do not read or write cached real-set features")
    p.add_argument("--workers", type=int, default=4, help="decoding threads, reading ahead of the detector (default 4)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------ sources


@dataclass
class VideoSource:
    """A set of videos on disk: how many, how to read item ``i``, and what identifies the set."""

    path: str
    count: int
    read: Callable[[int], np.ndarray]
    fingerprint: str


def _files_fingerprint(files: list[Path], extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def open_source(path: str, frames: int | None) -> VideoSource:
    """The videos under ``path`` (see the module docstring for the accepted layouts)."""
    p = Path(path).expanduser()
    if frames is not None and frames < 1:
        raise InputError(f"--frames must be a positive integer, got {frames}")
    sel = f"frames={frames}"
    if p.is_file():
        if p.suffix.lower() not in video_io.ARRAY_EXTENSIONS:
            raise InputError(f"{p}: expected a folder or a .npy/.npz array of uint8 (N, T, H, W, 3)")
        array = video_io.load_array(p)
        if frames is not None and array.shape[1] < frames:
            raise InputError(f"{p}: videos have {array.shape[1]} frames, --frames asks for {frames}")

        def read_array(i: int) -> np.ndarray:
            return np.ascontiguousarray(array[i, :frames] if frames else array[i])

        return VideoSource(str(p), int(array.shape[0]), read_array, _files_fingerprint([p], sel))
    if not p.is_dir():
        raise InputError(f"{p}: no such file or folder")
    videos = video_io.list_videos(p)
    if videos:
        return VideoSource(str(p), len(videos), lambda i: video_io.read_video(videos[i], frames=frames),
                           _files_fingerprint(videos, sel))
    subfolders = sorted(d for d in p.iterdir() if d.is_dir() and video_io.is_frame_folder(d))
    if subfolders:
        all_files = [f for d in subfolders for f in sorted(d.iterdir()) if f.is_file()]
        return VideoSource(str(p), len(subfolders), lambda i: video_io.read_frame_folder(subfolders[i], frames=frames),
                           _files_fingerprint(all_files, sel))
    images = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in video_io.IMAGE_EXTENSIONS)
    if images:
        if frames not in (None, 1):
            raise InputError(f"{p}: a folder of images holds one-frame videos; --frames {frames} does not apply")

        def read_image(i: int) -> np.ndarray:
            from PIL import Image

            try:
                with Image.open(images[i]) as im:
                    return np.asarray(im.convert("RGB"), dtype=np.uint8)[None]
            except OSError as exc:
                raise InputError(f"{images[i]}: not a readable image ({exc})") from None

        return VideoSource(str(p), len(images), read_image, _files_fingerprint(images, sel))
    raise InputError(
        f"{p}: found no videos ({', '.join(video_io.VIDEO_EXTENSIONS)}), frame folders or images "
        f"({', '.join(video_io.IMAGE_EXTENSIONS)})"
    )


def iter_batches(source: VideoSource, batch_size: int, workers: int = 4) -> Iterator[tuple[int, np.ndarray]]:
    """(first index, uint8 (b, T, H, W, 3)) batches of consecutive items of equal shape.

    Items decode in a pool of ``workers`` threads, at most two batches ahead of the caller, so the
    detector runs while the next batch is read (PyAV and PIL release the GIL while decoding).
    """
    pending: list[np.ndarray] = []
    start = 0
    ahead = max(2 * batch_size, workers)
    for i, item in video_io.iter_videos(range(source.count), loader=source.read, workers=workers, prefetch=ahead):
        if pending and (item.shape != pending[0].shape or len(pending) == batch_size):
            yield start, np.stack(pending)
            pending, start = [], i
        pending.append(item)
    if pending:
        yield start, np.stack(pending)


# ------------------------------------------------------------------------------------------ features


def _cache_file(source: VideoSource, detector: Any) -> Path:
    key = hashlib.sha256(f"{source.fingerprint}\0{detector.fingerprint}\0{type(detector).__qualname__}".encode())
    return W.weights_home() / "cache" / f"features-{detector.name}-{key.hexdigest()[:24]}.npy"


def extract(source: VideoSource, detector: Any, batch_size: int, prompts: list[str] | None = None,
            cache: bool = False, workers: int = 4, progress: bool | None = False) -> np.ndarray:
    """Features of every item of ``source`` (rows per frame or per video, as the detector says).

    ``progress``: a bar on stderr (``None``: only when stderr is a terminal).
    """
    path = _cache_file(source, detector) if cache else None
    if path is not None and path.is_file():
        return np.load(path, allow_pickle=False)
    chunks = []
    with tqdm(total=source.count, desc=f"{detector.name} {Path(source.path).name}", unit="video",
              disable=None if progress is None else not progress) as bar:
        for start, batch in iter_batches(source, batch_size, workers):
            batch_prompts = prompts[start:start + len(batch)] if prompts is not None else None
            with torch.no_grad():
                chunks.append(detector(torch.from_numpy(batch), batch_prompts).double().numpy())
            bar.update(len(batch))
    features = np.concatenate(chunks, axis=0)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npy")
        np.save(tmp, features)
        os.replace(tmp, path)
    return features


def _read_prompts(path: str, expected: int) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read prompts file ({exc.strerror or exc})") from None
    prompts = [line.strip() for line in lines if line.strip()]
    if len(prompts) != expected:
        raise InputError(f"{path}: {len(prompts)} prompts for {expected} generated videos (one per line, sorted order)")
    return prompts


def _parse_weights(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise InputError(f"--weights expects NAME=FILE, got {item!r}")
        W.get_entry(name)
        out[name] = file
    return out


# ------------------------------------------------------------------------------------------ run


def score(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Compute every requested metric; returns one record per metric (what ``--json`` writes)."""
    from evalkit.metrics.base import build_detector, build_metric

    metrics = [build_metric(name) for name in dict.fromkeys(args.metric)]
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be a positive integer, got {args.batch_size}")
    fake = open_source(args.fake, args.frames)
    real = open_source(args.real, args.frames) if args.real else None
    needs_real = [m.full_name for m in metrics if m.uses_real]
    if needs_real and real is None:
        raise InputError(f"--real is required by {', '.join(needs_real)}")
    prompts = _read_prompts(args.prompts, fake.count) if args.prompts else None
    workers = args.workers
    if workers < 1:
        raise InputError(f"--workers must be a positive integer, got {workers}")
    progress = None if args.progress else False  # None: a bar only when stderr is a terminal
    records = []
    with W.overrides(_parse_weights(args.weights)):
        detectors: dict[str, Any] = {}
        features: dict[tuple[str, str], np.ndarray] = {}
        for metric in metrics:
            if metric.detector not in detectors:
                detectors[metric.detector] = build_detector(metric.detector, device=args.device,
                                                            allow_random_weights=args.allow_random_weights)
            detector = detectors[metric.detector]
            if detector.needs_prompts and prompts is None:
                raise InputError(f"{metric.full_name} needs --prompts (one text prompt per generated video)")
            if (metric.detector, "fake") not in features:
                features[(metric.detector, "fake")] = extract(fake, detector, args.batch_size, prompts,
                                                               workers=workers, progress=progress)
            metric.update(features[(metric.detector, "fake")], real=False)
            if metric.uses_real:
                if (metric.detector, "real") not in features:
                    features[(metric.detector, "real")] = extract(real, detector, args.batch_size,
                                                                  cache=not args.no_cache, workers=workers,
                                                                  progress=progress)
                metric.update(features[(metric.detector, "real")], real=True)
            value = metric.compute()
            records.append({
                "metric": metric.full_name, "name": metric.name, "variant": metric.variant,
                "value": value.value, "std": value.std, "n_real": metric.n_real, "n_fake": metric.n_fake,
                "detector": detector.name, "weights_digest": detector.weights_digest,
                "comparable": bool(detector.comparable),
                "sqrt_method": value.details.get("sqrt_method"), "cov_divisor": value.details.get("cov_divisor"),
                "per_frame": bool(getattr(detector, "per_frame", False)),
                "real": real.path if real and metric.uses_real else None, "fake": fake.path,
                "frames": args.frames, "details": value.details,
            })
    return records


def _table(records: list[dict[str, Any]]) -> str:
    head = f"{'metric':<22} {'value':>12} {'std':>10} {'n_real':>7} {'n_fake':>7}  {'sqrt':<18} comparable"
    lines = [head, "-" * len(head)]
    for r in records:
        std = f"{r['std']:.4g}" if r["std"] is not None else "-"
        lines.append(f"{r['metric']:<22} {r['value']:>12.6g} {std:>10} {r['n_real']:>7} {r['n_fake']:>7}  "
                     f"{r['sqrt_method'] or '-':<18} {'yes' if r['comparable'] else 'NO (weights)'}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    records = score(args)
    print(_table(records))
    for r in records:
        for warning in r["details"].get("warnings", []) or []:
            print(f"warning: {r['metric']}: {warning}", file=sys.stderr)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(records, indent=2, default=float))
        print(f"wrote {args.json_out}")
    return 0
