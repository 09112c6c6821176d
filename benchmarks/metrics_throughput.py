"""Throughput and memory of FVD / FID: our pipeline against the reference code paths, same data, same weights.

Rows (videos/s for FVD, images/s for FID, wall time, peak memory):

- ``fvd-styleganv``: our ``i3d-torchscript`` + ``fvd:styleganv`` vs StyleGAN-V's path (TorchScript called per
  batch with ``rescale=True, resize=True, return_features=True``, its ``FeatureStats``, its distance formula),
  on one TorchScript file (the seeded random-weight stand-in, saved and reloaded).
- ``fvd-cd-fvd-i3d``: our ``i3d-cd-fvd`` + ``fvd:cd-fvd-i3d`` vs ``cdfvd.cdfvd(model='i3d').compute_fvd`` on one
  random-weight ``i3d_pretrained_400.pt``.
- ``fvd-files-cd-fvd-i3d``: the same from folders of JPEG frames on disk, decoding included: ``evalkit score``'s
  reader (threads reading ahead; and without read-ahead) vs cd-fvd's ``load_videos(data_type="image_folder")``.
- ``fid-pytorch-fid``: ``evalkit score``'s reader + ``inception-pytorch-fid`` + ``fid:pytorch-fid`` vs
  pytorch-fid's ``calculate_fid_given_paths``, both on the same PNG files (pytorch-fid's only input form),
  with our random-weight network handed to it.
- ``frechet-2048``: the one-off Fréchet step of FID at D = 2048 with more samples than dimensions:
  ``fid:pytorch-fid``'s (eigenvalue route, ``evalkit.metrics.frechet``) against pytorch-fid's
  ``calculate_frechet_distance`` (full ``scipy.linalg.sqrtm``) on the same moments.
- ``*-bare``: the detector network's forward alone on already preprocessed input (the upper limit), in
  the form evalkit uses.

Each evalkit row runs twice: with evalkit's default detector form (``evalkit.metrics.detector_form``:
on the CPU channels-last convolution weights and BatchNorm folded into the convolutions) and in the
reference form (the network exactly as the reference runs it). The reference-form run must give the
reference's value to ``--rtol`` (the pipeline is exact); the default run to ``--form-rtol`` (the same
arithmetic, float32 operations in another order and grouping).

Within each benchmark the implementations run in turn, ``--repeats`` times (A B C D, A B C D, ...), and
each row is that implementation's median run: the drift of a shared machine then falls on all of them.

Random-weight detectors get BatchNorm statistics from one calibration pass (``calibrate_batchnorm``) so
that their features, and the compared values, are not near-constant. Our pipeline streams: a producer
thread hands over (from memory, or decodes from disk) the next batch while the detector runs, features
go into float64 sums, nothing grows with N but the clock. The reference paths take whole arrays. Values are checked for equality (``match`` column; features are
compared too). Peak memory: tracemalloc (Python/NumPy allocations) and the growth of the process RSS.

Run: ``OMP_NUM_THREADS=2 python benchmarks/metrics_throughput.py --out bench.json`` (defaults take a couple of
minutes on 2 CPU cores); scale with ``--videos``, ``--frames``, ``--size``, ``--images``, ``--mem-sizes``,
``--repeats``, ``--device cuda``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import queue
import resource
import sys
import tempfile
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc; falls back to the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synth_batches(n: int, batch: int, frames: int, size: int, seed: int) -> Iterator[torch.Tensor]:
    """uint8 videos (b, T, H, W, 3) generated batch by batch (stands in for decoding).

    Smooth colour fields (4x4x4 random values, trilinearly upsampled) plus pixel noise: structure at
    several scales, so the detectors' features differ from video to video. Video ``i`` depends only on
    ``(seed, i)``, not on ``batch``, so both sides of a comparison see the same videos at any batch size.
    """
    for start in range(0, n, batch):
        videos = []
        for i in range(start, min(start + batch, n)):
            g = torch.Generator().manual_seed(seed * 1_000_003 + i)
            coarse = torch.rand(1, 3, 4, 4, 4, generator=g)
            field = F.interpolate(coarse, size=(frames, size, size), mode="trilinear", align_corners=False)
            videos.append(field * 200 + torch.rand(1, 3, frames, size, size, generator=g) * 55)
        video = torch.cat(videos).round().clamp(0, 255).to(torch.uint8)
        yield video.permute(0, 2, 3, 4, 1).contiguous()


def calibrate_batchnorm(model: torch.nn.Module, *inputs: torch.Tensor) -> torch.nn.Module:
    """Set every BatchNorm's running statistics from one pass over ``inputs``; returns ``model`` in eval mode.

    A random-weight I3D or Inception with fresh running statistics gives nearly the same output for every
    input (I3D logits vary by about 1e-8 across videos), so FVD comes out near 1e-12 and an equality check
    between two pipelines would pass whatever they computed. Calibrated, features vary by about 0.06 and
    the values are of order one and above. Both sides of every comparison use the calibrated network.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration pass
    model.train()
    with torch.no_grad():
        for x in inputs:
            model(x)
    return model.eval()


def calibrated_i3d(seed: int, size: int, frames: int, device: str, clips: int = 8) -> torch.nn.Module:
    """cd-fvd's I3D with random weights and calibrated BatchNorm statistics (see ``calibrate_batchnorm``)."""
    from evalkit.metrics.detectors.i3d_pytorch import build_i3d
    from evalkit.metrics.detectors.i3d_pytorch_detectors import preprocess_tats

    videos = next(synth_batches(clips, clips, frames, size, seed=1000 + seed))
    return calibrate_batchnorm(build_i3d(None, seed=seed).to(device), preprocess_tats(videos.to(device)))


def synth_all(n: int, frames: int, size: int, seed: int, batch: int) -> np.ndarray:
    """The same videos as ``synth_batches`` as one array (what the reference paths consume)."""
    return torch.cat(list(synth_batches(n, batch, frames, size, seed))).numpy()


def array_batches(videos: np.ndarray, batch: int) -> Iterator[torch.Tensor]:
    """Batches of videos already in memory (what the reference paths are handed), without copies."""
    for start in range(0, len(videos), batch):
        yield torch.from_numpy(videos[start : start + batch])


def prefetch(it: Iterator[torch.Tensor], depth: int = 2) -> Iterator[torch.Tensor]:
    """Run the producer in a thread, ``depth`` batches ahead, so decoding overlaps detector compute."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def work() -> None:
        try:
            for item in it:
                q.put(item)
        except BaseException as exc:  # surfaced in the consumer
            q.put(exc)
        q.put(done)

    threading.Thread(target=work, daemon=True).start()
    while True:
        item = q.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


class Measure:
    """Wall time, tracemalloc peak and RSS growth of one block."""

    def __enter__(self) -> Measure:
        tracemalloc.start()
        self.rss0 = rss_mb()
        self.rss_peak = self.rss0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        self.t0 = time.perf_counter()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            self.rss_peak = max(self.rss_peak, rss_mb())

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.t0
        self._stop.set()
        self._thread.join()
        self.rss_peak = max(self.rss_peak, rss_mb())
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        self.py_peak_mb = peak / 2**20
        self.rss_growth_mb = self.rss_peak - self.rss0


def alternate(impls: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[Measure, Any]]:
    """Run the implementations in turn (A B C, A B C, ...) ``repeats`` times; for each, the run of median time.

    Alternating spreads the drift of a shared machine over every implementation instead of charging it to
    whichever ran during a slow minute. Returns (measure, result) of each implementation's median run.
    """
    runs: dict[str, list[tuple[Measure, Any]]] = {name: [] for name in impls}
    for _ in range(max(1, repeats)):
        for name, fn in impls.items():
            with Measure() as m:
                out = fn()
            runs[name].append((m, out))
    return {name: sorted(r, key=lambda mo: mo[0].seconds)[len(r) // 2] for name, r in runs.items()}


def row(name: str, impl: str, items: int, m: Measure, value: float | None, unit: str) -> dict[str, Any]:
    return {"benchmark": name, "impl": impl, "items": items, "seconds": round(m.seconds, 3),
            f"{unit}_per_s": round(items / m.seconds, 3), "value": value,
            "py_peak_mb": round(m.py_peak_mb, 2), "rss_growth_mb": round(m.rss_growth_mb, 1)}


def our_fvd(metric_name: str, detector, real_it, fake_it) -> tuple[float, np.ndarray, Any]:
    from evalkit.metrics.base import build_metric

    metric = build_metric(metric_name)
    first = None
    for real, it in ((True, real_it), (False, fake_it)):
        for batch in prefetch(it):
            feats = detector(batch)
            if first is None:
                first = feats.numpy().copy()
            metric.update(feats, real=real)
    return metric.compute().value, first, metric


def styleganv_reference(script, real: np.ndarray, fake: np.ndarray, batch: int, device: str) -> tuple[float, np.ndarray]:
    """StyleGAN-V's steps: TorchScript per batch on uint8 BCTHW, FeatureStats sums, its distance formula."""
    import scipy.linalg
    from cdfvd.utils.metric_utils import FeatureStats  # StyleGAN-V's FeatureStats, copied by cd-fvd

    stats, first = [], None
    for videos in (real, fake):
        s = FeatureStats(capture_mean_cov=True)
        for i in range(0, len(videos), batch):
            x = torch.from_numpy(videos[i : i + batch]).permute(0, 4, 1, 2, 3).contiguous().to(device)
            with torch.no_grad():
                feats = script(x, rescale=True, resize=True, return_features=True)
            if first is None:
                first = feats.cpu().numpy().copy()
            s.append_torch(feats, num_gpus=1, rank=0)
        stats.append(s)
    mu_real, sigma_real = stats[0].get_mean_cov()
    mu_gen, sigma_gen = stats[1].get_mean_cov()
    m = np.square(mu_gen - mu_real).sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        out = scipy.linalg.sqrtm(np.dot(sigma_gen, sigma_real), disp=False)
    s = out[0] if isinstance(out, tuple) else out
    return float(np.real(m + np.trace(sigma_gen + sigma_real - s * 2))), first


def bare_forward(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, n_items: int) -> int:
    """Forward passes on one preprocessed batch until ``n_items`` items were processed; returns the items."""
    steps = -(-n_items // x.shape[0])
    with torch.no_grad():
        for _ in range(steps):
            fn(x)
    return steps * x.shape[0]


def build_both(name: str, device: str, **kwargs: Any) -> tuple[Any, Any]:
    """The detector in evalkit's default form and in the reference form."""
    from unittest import mock

    from evalkit.metrics.base import build_detector
    from evalkit.metrics.detector_form import FORM_ENV

    with mock.patch.dict(os.environ, {FORM_ENV: "auto"}):
        fast = build_detector(name, device=device, **kwargs)
    with mock.patch.dict(os.environ, {FORM_ENV: "reference"}):
        plain = build_detector(name, device=device, **kwargs)
    return fast, plain


def form_name(detector) -> str:
    return "fast form" if detector.fast_form else "reference form"


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def bench_fvd(args, rows: list, checks: list, tmp: Path) -> None:
    from cdfvd.fvd import cdfvd as CdFvd

    from evalkit import weights
    from evalkit.metrics.detectors.i3d_pytorch_detectors import preprocess_tats
    from evalkit.metrics.detectors.i3d_torchscript import StyleGANVI3D, script_module

    n, b, t, size = args.videos, args.batch, args.frames, args.size
    real = synth_all(n, t, size, seed=1, batch=b)
    fake = synth_all(n, t, size, seed=2, batch=b)

    # ---- StyleGAN-V TorchScript path
    ts_path = tmp / "i3d_torchscript.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        i3d = calibrated_i3d(7, size, t, args.device, args.calib_clips)
        torch.jit.save(script_module(StyleGANVI3D(i3d).eval()), str(ts_path))
        script = torch.jit.load(str(ts_path), map_location=args.device).eval()
    with weights.overrides({"i3d-torchscript": ts_path}):
        det, det_plain = build_both("i3d-torchscript", args.device)
    det.batch_size = det_plain.batch_size = b
    x = torch.from_numpy(real[:b]).permute(0, 4, 1, 2, 3).contiguous().to(args.device)
    fast_name = f"evalkit ({form_name(det)})"
    res = alternate({
        fast_name: lambda: our_fvd("fvd:styleganv", det, array_batches(real, b), array_batches(fake, b)),
        "evalkit (reference form)": lambda: our_fvd("fvd:styleganv", det_plain, array_batches(real, b),
                                                    array_batches(fake, b)),
        "stylegan-v path": lambda: styleganv_reference(script, real, fake, b, args.device),
        "bare forward (limit)": lambda: bare_forward(
            lambda v: det.model(v, rescale=True, resize=True, return_features=True), x, 2 * n),
    }, args.repeats)
    (m, (fast, fast_f, _)) = res[fast_name]
    rows.append(row("fvd-styleganv", fast_name, 2 * n, m, fast, "videos"))
    (m, (ours, ours_f, _)) = res["evalkit (reference form)"]
    rows.append(row("fvd-styleganv", "evalkit (reference form)", 2 * n, m, ours, "videos"))
    (m, (ref, ref_f)) = res["stylegan-v path"]
    rows.append(row("fvd-styleganv", "stylegan-v path", 2 * n, m, ref, "videos"))
    m, items = res["bare forward (limit)"]
    rows.append(row("fvd-styleganv", "bare forward (limit)", items, m, None, "videos"))
    checks.append({"benchmark": "fvd-styleganv", "feature_max_abs_diff": float(np.abs(ours_f - ref_f).max()),
                   "value_rel_diff": rel(ours, ref), "form_rel_diff": rel(fast, ref),
                   "form_feature_max_rel_diff": float(np.abs(fast_f - ref_f).max() / np.abs(ref_f).max())})

    # ---- cd-fvd I3D path
    i3d_path = tmp / "i3d_pretrained_400.pt"
    torch.save(calibrated_i3d(3, size, t, args.device, args.calib_clips).state_dict(), i3d_path)
    with weights.overrides({"i3d-pretrained-400": i3d_path}):
        det, det_plain = build_both("i3d-cd-fvd", args.device)
    det.batch_size = det_plain.batch_size = 16  # cd-fvd's batch: per-batch float64 sums add in the same order
    xb = preprocess_tats(torch.from_numpy(real[:16]).to(args.device), channels_last=det.fast_form)

    def cd_fvd_package() -> tuple[float, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ref_obj = CdFvd(model="i3d", ckpt_path=str(i3d_path), device=args.device, n_real="full", n_fake="full")
            return float(ref_obj.compute_fvd(real, fake)), ref_obj

    fast_name = f"evalkit ({form_name(det)})"
    res = alternate({
        fast_name: lambda: our_fvd("fvd:cd-fvd-i3d", det, array_batches(real, 16), array_batches(fake, 16)),
        "evalkit (reference form)": lambda: our_fvd("fvd:cd-fvd-i3d", det_plain, array_batches(real, 16),
                                                    array_batches(fake, 16)),
        "cd-fvd package": cd_fvd_package,
        "bare forward (limit)": lambda: bare_forward(det.model, xb, 2 * n),
    }, args.repeats)
    (m, (fast, _, _)) = res[fast_name]
    rows.append(row("fvd-cd-fvd-i3d", fast_name, 2 * n, m, fast, "videos"))
    (m, (ours, _, ours_metric)) = res["evalkit (reference form)"]
    rows.append(row("fvd-cd-fvd-i3d", "evalkit (reference form)", 2 * n, m, ours, "videos"))
    (m, (ref, ref_obj)) = res["cd-fvd package"]
    rows.append(row("fvd-cd-fvd-i3d", "cd-fvd package", 2 * n, m, ref, "videos"))
    m, items = res["bare forward (limit)"]
    rows.append(row("fvd-cd-fvd-i3d", "bare forward (limit)", items, m, None, "videos"))
    checks.append({"benchmark": "fvd-cd-fvd-i3d", "value_rel_diff": rel(ours, ref), "form_rel_diff": rel(fast, ref),
                   "feature_max_abs_diff": float(np.abs(ours_metric.real.sum - ref_obj.real_stats.raw_mean).max()
                                                 / max(1, n))})


def write_frame_folders(root: Path, n: int, frames: int, size: int, seed: int) -> None:
    """``n`` videos as folders of JPEG frames (StyleGAN-V's layout; names cd-fvd's sort understands)."""
    from PIL import Image

    for v, clip in enumerate(synth_all(n, frames, size, seed, batch=4)):
        folder = root / f"video_{v:05d}"
        folder.mkdir(parents=True)
        for t, frame in enumerate(clip):
            Image.fromarray(frame).save(folder / f"frame_{t:05d}.jpg", quality=95)


def sequential_extract(source, detector, batch: int) -> np.ndarray:
    """Read a batch, then run the detector on it: decoding and compute take turns (no read-ahead)."""
    chunks, pending = [], []
    for i in range(source.count):
        pending.append(source.read(i))
        if len(pending) == batch or i == source.count - 1:
            with torch.no_grad():
                chunks.append(detector(torch.from_numpy(np.stack(pending))).double().numpy())
            pending = []
    return np.concatenate(chunks)


def bench_fvd_files(args, rows: list, checks: list, tmp: Path) -> None:
    """FVD (cd-fvd I3D) from folders of JPEG frames on disk: decoding is part of the cost.

    Reference: cd-fvd's own file path, ``load_videos(..., data_type="image_folder")`` then
    ``compute_real_stats`` / ``compute_fake_stats`` / ``compute_fvd_from_stats`` (a DataLoader with
    ``--ref-workers`` worker processes, PIL per frame). It calls ``Image.ANTIALIAS``, which Pillow 10
    removed; the benchmark restores it as the alias of ``Image.LANCZOS`` it always was (a same-size
    resize, so it changes no pixel). With ``sequence_length=-1`` it reads every frame of each
    folder, as ours does; with a positive length it skips folders of exactly that many frames.
    """
    from cdfvd.fvd import cdfvd as CdFvd
    from PIL import Image

    from evalkit import weights
    from evalkit.commands.score import extract, open_source
    from evalkit.metrics.base import build_metric
    from evalkit.metrics.detectors.i3d_pytorch_detectors import preprocess_tats

    n, t, size = args.file_videos, args.frames, args.file_size
    dirs = {"real": tmp / "frames_real", "fake": tmp / "frames_fake"}
    write_frame_folders(dirs["real"], n, t, size, seed=11)
    write_frame_folders(dirs["fake"], n, t, size, seed=12)
    i3d_path = tmp / "i3d_files.pt"
    torch.save(calibrated_i3d(5, size, t, args.device, args.calib_clips).state_dict(), i3d_path)
    with weights.overrides({"i3d-pretrained-400": i3d_path}):
        det, det_plain = build_both("i3d-cd-fvd", args.device)
    sources = {k: open_source(str(d), None) for k, d in dirs.items()}

    def ours(read: Callable) -> float:
        metric = build_metric("fvd:cd-fvd-i3d")
        for name in ("real", "fake"):
            metric.update(read(sources[name]), real=name == "real")
        return metric.compute().value

    def cd_fvd_image_folder() -> tuple[float, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref_obj = CdFvd(model="i3d", ckpt_path=str(i3d_path), device=args.device, n_real="full", n_fake="full")
            for name, compute in (("real", ref_obj.compute_real_stats), ("fake", ref_obj.compute_fake_stats)):
                loader = ref_obj.load_videos(str(dirs[name]), resolution=size, sequence_length=-1,
                                             data_type="image_folder", num_workers=args.ref_workers, batch_size=16)
                compute(loader)
            return float(ref_obj.compute_fvd_from_stats()), ref_obj

    clip = np.stack([sources["real"].read(i) for i in range(min(16, n))])
    xb = preprocess_tats(torch.from_numpy(clip).to(args.device), channels_last=det.fast_form)
    names = {"fast": f"evalkit (read-ahead, {args.workers} threads, {form_name(det)})",
             "plain": f"evalkit (read-ahead, {args.workers} threads, reference form)",
             "seq": "evalkit, no read-ahead (reference form)",
             "ref": f"cd-fvd image_folder ({args.ref_workers} workers)",
             "bare": "bare forward (limit)"}
    shimmed = not hasattr(Image, "ANTIALIAS")
    if shimmed:
        Image.ANTIALIAS = Image.LANCZOS
    try:
        res = alternate({
            names["fast"]: lambda: ours(lambda src: extract(src, det, 16, workers=args.workers)),
            names["plain"]: lambda: ours(lambda src: extract(src, det_plain, 16, workers=args.workers)),
            names["seq"]: lambda: ours(lambda src: sequential_extract(src, det_plain, 16)),
            names["ref"]: cd_fvd_image_folder,
            names["bare"]: lambda: bare_forward(det.model, xb, 2 * n),
        }, args.repeats)
    finally:
        if shimmed:
            del Image.ANTIALIAS
    (m, fast) = res[names["fast"]]
    rows.append(row("fvd-files-cd-fvd-i3d", names["fast"], 2 * n, m, fast, "videos"))
    (m, value) = res[names["plain"]]
    rows.append(row("fvd-files-cd-fvd-i3d", names["plain"], 2 * n, m, value, "videos"))
    (m, seq_value) = res[names["seq"]]
    rows.append(row("fvd-files-cd-fvd-i3d", names["seq"], 2 * n, m, seq_value, "videos"))
    (m, (ref, ref_obj)) = res[names["ref"]]
    rows.append(row("fvd-files-cd-fvd-i3d", names["ref"], 2 * n, m, ref, "videos"))
    m, items = res[names["bare"]]
    rows.append(row("fvd-files-cd-fvd-i3d", names["bare"], items, m, None, "videos"))
    checks.append({"benchmark": "fvd-files-cd-fvd-i3d", "value_rel_diff": rel(value, ref),
                   "form_rel_diff": rel(fast, ref),
                   "no_read_ahead_rel_diff": rel(value, seq_value), "pillow_antialias_shim": shimmed,
                   "n_real": int(ref_obj.real_stats.num_items), "n_fake": int(ref_obj.fake_stats.num_items),
                   "counts_ok": int(ref_obj.real_stats.num_items) == int(ref_obj.fake_stats.num_items) == n})


def bench_fid(args, rows: list, checks: list, tmp: Path) -> None:
    from unittest import mock

    from PIL import Image
    from pytorch_fid import fid_score
    from pytorch_fid import inception as pfi

    from evalkit.commands.score import extract, open_source
    from evalkit.metrics.base import build_metric
    from evalkit.metrics.detector_form import apply_form

    n, size = args.images, args.size
    det, det_plain = build_both("inception-pytorch-fid", args.device, allow_random_weights=True)
    calib = next(synth_batches(4 * args.calib_clips, 4 * args.calib_clips, 1, size, seed=1003))[:, 0].permute(0, 3, 1, 2).float() / 255
    calibrate_batchnorm(det_plain.model, calib.to(args.device))  # det_plain.network, handed to pytorch-fid, is inside
    # the calibrated network in evalkit's default form (its BatchNorm statistics fold into its kernels)
    det.model = apply_form(copy.deepcopy(det_plain.model), det.conv_dims, det.fast_form)
    real = synth_all(n, 1, size, seed=3, batch=32)
    fake = synth_all(n, 1, size, seed=4, batch=32)
    dirs = []
    for name, arr in (("real", real), ("fake", fake)):
        d = tmp / name
        d.mkdir()
        for i, frame in enumerate(arr[:, 0]):
            Image.fromarray(frame).save(d / f"{i:05d}.png")
        dirs.append(str(d))

    def ours(detector) -> tuple[float, float, str]:  # the same PNG files through `evalkit score`'s reader
        metric = build_metric("fid:pytorch-fid")
        for flag, d in ((True, dirs[0]), (False, dirs[1])):
            metric.update(extract(open_source(d, None), detector, 32, workers=args.workers), real=flag)
        t0 = time.perf_counter()
        result = metric.compute()
        # the Fréchet step is paid once per value, not per image
        return result.value, time.perf_counter() - t0, result.details["trace_route"]

    def pytorch_fid() -> float:
        with mock.patch.object(pfi, "fid_inception_v3", lambda: det_plain.network), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return float(fid_score.calculate_fid_given_paths(dirs, batch_size=32, device=args.device, dims=2048,
                                                             num_workers=0))

    x = torch.rand(min(32, 2 * n), 3, size, size, device=args.device)
    fast_name = f"evalkit (PNG files, {form_name(det)})"
    res = alternate({
        fast_name: lambda: ours(det),
        "evalkit (PNG files, reference form)": lambda: ours(det_plain),
        "pytorch-fid (PNG files)": pytorch_fid,
        "bare forward (limit)": lambda: bare_forward(det.model, x, 2 * n),
    }, args.repeats)
    for name in (fast_name, "evalkit (PNG files, reference form)"):
        m, (value, frechet_s, route) = res[name]
        rows.append({**row("fid-pytorch-fid", name, 2 * n, m, value, "images"), "frechet_s": round(frechet_s, 3),
                     "trace_route": route})
    fast, value = res[fast_name][1][0], res["evalkit (PNG files, reference form)"][1][0]
    m, ref = res["pytorch-fid (PNG files)"]
    rows.append(row("fid-pytorch-fid", "pytorch-fid (PNG files)", 2 * n, m, ref, "images"))
    m, items = res["bare forward (limit)"]
    rows.append(row("fid-pytorch-fid", "bare forward (limit)", items, m, None, "images"))
    checks.append({"benchmark": "fid-pytorch-fid", "value_rel_diff": rel(value, ref), "form_rel_diff": rel(fast, ref),
                   "n_le_dim": n <= 2048})


def bench_frechet(args, rows: list, checks: list) -> None:
    """FID's one-off Fréchet step at D = 2048 with N > D: evalkit's metric against pytorch-fid's function.

    The moments come from rectified low-rank features (the shape of pooled CNN features); the extraction
    rows above use fewer images than dimensions, where both sides take the full sqrtm.
    """
    from pytorch_fid.fid_score import calculate_frechet_distance

    from evalkit.metrics.base import build_metric

    rng = np.random.default_rng(2048)
    d, n = 2048, args.frechet_samples
    basis = rng.standard_normal((64, d))
    sets = [np.maximum(rng.standard_normal((n, 64)) @ basis * 0.1 + rng.standard_normal((n, d)) * 0.3 + shift, 0)
            for shift in (0.0, 0.05)]
    metric = build_metric("fid:pytorch-fid")
    for flag, feats in zip((True, False), sets):
        metric.update(feats, real=flag)
    mu1, mu2 = metric.real.mean(), metric.fake.mean()
    s1, s2 = metric.real.cov("N-1"), metric.fake.cov("N-1")

    def reference() -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return float(calculate_frechet_distance(mu1, s1, mu2, s2))

    res = alternate({"evalkit": metric.compute, "pytorch-fid (sqrtm)": reference}, args.repeats)
    m, result = res["evalkit"]
    rows.append({**row("frechet-2048", f"evalkit ({result.details['trace_route']})", 1, m, result.value, "values"),
                 "n_per_set": n})
    m, ref = res["pytorch-fid (sqrtm)"]
    rows.append({**row("frechet-2048", "pytorch-fid (sqrtm)", 1, m, ref, "values"), "n_per_set": n})
    checks.append({"benchmark": "frechet-2048", "value_rel_diff": rel(result.value, ref),
                   "trace_route": result.details["trace_route"]})


def bench_memory(args, rows: list, tmp: Path) -> None:
    """Peak memory against N on the cd-fvd I3D path: streaming sums vs the package's whole-array input."""
    from cdfvd.fvd import cdfvd as CdFvd

    from evalkit import weights
    from evalkit.metrics.base import build_detector

    i3d_path = tmp / "i3d_mem.pt"
    torch.save(calibrated_i3d(4, args.mem_size, args.frames, args.device, args.calib_clips).state_dict(), i3d_path)
    with weights.overrides({"i3d-pretrained-400": i3d_path}):
        det = build_detector("i3d-cd-fvd", device=args.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ref_obj = CdFvd(model="i3d", ckpt_path=str(i3d_path), device=args.device, n_real="full", n_fake="full")
    for n in args.mem_sizes:
        t, size, b = args.frames, args.mem_size, args.batch
        with Measure() as m:
            value, _, _ = our_fvd("fvd:cd-fvd-i3d", det, synth_batches(n, b, t, size, 5), synth_batches(n, b, t, size, 6))
        rows.append({**row("memory", "evalkit (streaming)", 2 * n, m, value, "videos"), "n_per_set": n})
        ref_obj.empty_real_stats()
        ref_obj.empty_fake_stats()
        with Measure() as m, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            real = synth_all(n, t, size, 5, b)
            fake = synth_all(n, t, size, 6, b)
            value = float(ref_obj.compute_fvd(real, fake))
            del real, fake
        rows.append({**row("memory", "cd-fvd (arrays)", 2 * n, m, value, "videos"), "n_per_set": n})


def print_table(rows: list[dict], checks: list[dict]) -> None:
    cols = ["benchmark", "impl", "items", "seconds", "rate", "value", "py_peak_mb", "rss_growth_mb"]
    lines = [cols]
    for r in rows:
        unit_key = next(k for k in r if k.endswith("_per_s"))
        rate = r[unit_key]
        unit = {"videos_per_s": "vid/s", "images_per_s": "img/s"}.get(unit_key, unit_key.replace("_per_s", "/s"))
        name = r["benchmark"] + (f" N={r['n_per_set']}" if "n_per_set" in r else "")
        value = "" if r["value"] is None else f"{r['value']:.10g}"
        lines.append([name, r["impl"], str(r["items"]), f"{r['seconds']:.2f}", f"{rate:.2f} {unit}", value,
                      f"{r['py_peak_mb']:.1f}", f"{r['rss_growth_mb']:.1f}"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(cols))]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)))
    print()
    for c in checks:
        print("check:", json.dumps(c))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=4, help="videos per set (real and fake) for FVD")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=64, help="frame height = width of the synthetic data")
    p.add_argument("--batch", type=int, default=4, help="videos per detector batch (our styleganv path)")
    p.add_argument("--images", type=int, default=16, help="images per set for FID")
    p.add_argument("--file-videos", type=int, default=8, help="videos per set for FVD from frame folders on disk")
    p.add_argument("--file-size", type=int, default=128, help="frame height = width of the frame-folder videos")
    p.add_argument("--calib-clips", type=int, default=8,
                   help="clips of the BatchNorm calibration pass of each random-weight I3D (4x as many images for Inception)")
    p.add_argument("--repeats", type=int, default=1,
                   help="runs of every implementation, taken in turn; rows report each one's median run")
    p.add_argument("--frechet-samples", type=int, default=2500,
                   help="features per set (> 2048) of the Fréchet-step row")
    p.add_argument("--workers", type=int, default=4, help="our decoding threads (evalkit score --workers)")
    p.add_argument("--ref-workers", type=int, default=4, help="cd-fvd DataLoader workers (its load_videos default)")
    p.add_argument("--mem-sizes", type=int, nargs="*", default=[2, 4], help="videos per set for the memory scan")
    p.add_argument("--mem-size", type=int, default=64, help="frame size in the memory scan")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    p.add_argument("--skip", nargs="*", default=[], choices=["fvd", "fvd-files", "fid", "frechet", "memory"])
    p.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance of the value checks")
    p.add_argument("--form-rtol", type=float, default=1e-5,
                   help="relative tolerance of values from the fast detector form (float32 rounding of the features)")
    p.add_argument("--out", type=Path, default=None, help="write rows and checks as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("EVALKIT_HOME", tempfile.mkdtemp(prefix="evalkit_bench_"))

    rows: list[dict] = []
    checks: list[dict] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if "fvd" not in args.skip:
            bench_fvd(args, rows, checks, tmp)
        if "fvd-files" not in args.skip:
            bench_fvd_files(args, rows, checks, tmp)
        if "fid" not in args.skip:
            bench_fid(args, rows, checks, tmp)
        if "frechet" not in args.skip:
            bench_frechet(args, rows, checks)
        if "memory" not in args.skip:
            bench_memory(args, rows, tmp)
    for c in checks:
        c["ok"] = (c["value_rel_diff"] <= args.rtol and c.get("feature_max_abs_diff", 0.0) <= 1e-5
                   and c.get("form_rel_diff", 0.0) <= args.form_rtol
                   and c.get("form_feature_max_rel_diff", 0.0) <= args.form_rtol
                   and c.get("no_read_ahead_rel_diff", 0.0) <= args.rtol
                   and c.get("counts_ok", True))
    print_table(rows, checks)
    result = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows, "checks": checks}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
