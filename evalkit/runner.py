"""Plans generators x protocols, generates, extracts features, and computes metrics.

The unit of work and of resumption is a chunk of ``chunk_size`` consecutive global sample indices.
Chunk ``c`` belongs to rank ``c % world``; its per-sample features are written atomically, so a
killed run loses at most the chunks in flight and ``--resume`` (with any world size) skips the rest.
Metric statistics are computed per chunk on the rank that owns it and merged in float64 on rank 0
in chunk order, which makes 1 process and N processes give bit-identical numbers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from tqdm.auto import tqdm

import evalkit
from evalkit import distributed as D
from evalkit import video_io
from evalkit.config import config_hash, from_dict, to_dict
from evalkit.datasets.base import ProtocolDataset, Sample
from evalkit.errors import RunDirError
from evalkit.generators.base import Generator, build_generator
from evalkit.metrics.base import Detector, Metric, build_detector, build_metric
from evalkit.protocols import ProtocolConfig, load_protocol, protocol_path
from evalkit.registry import DATASETS
from evalkit.runconfig import ResolvedGenerator, RunConfig, expand_generators
from evalkit.rundir import REAL, RunDir, RunLock, atomic_save_npz, atomic_write_text
from evalkit.seeding import sample_seed
from evalkit.store import ResultRow, write_results
from evalkit.video import VideoSpec


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def evalkit_home() -> Path:
    import os

    return Path(os.environ.get("EVALKIT_HOME", Path.home() / ".cache" / "evalkit"))


@dataclasses.dataclass
class ProtocolState:
    """A loaded protocol with its dataset, metrics and detectors."""

    config: ProtocolConfig
    dataset: ProtocolDataset
    plan: list[Sample]
    metrics: list[Metric]
    #: detector key -> detector (keys are detector names, plus "@HxW" for extra eval resolutions)
    detectors: dict[str, Detector]
    #: detector key -> (detector name, resolution or None)
    feature_keys: dict[str, tuple[str, tuple[int, int] | None]]
    n_real: int

    @property
    def name(self) -> str:
        return self.config.name

    def real_keys(self) -> list[str]:
        """Feature keys the real set needs (metrics that compare with real data)."""
        needed = {m.detector for m in self.metrics if m.uses_real}
        return [k for k, (det, _) in self.feature_keys.items() if det in needed]


def _resize(videos: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (B,T,H,W,3) -> uint8 (B,T,h,w,3), bilinear with antialiasing."""
    b, t, h, w, c = videos.shape
    x = videos.reshape(b * t, h, w, c).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    x = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return x.reshape(b, t, size[0], size[1], c).contiguous()


def extract_features(
    videos: torch.Tensor,
    prompts: list[str] | None,
    detectors: dict[str, Detector],
    feature_keys: dict[str, tuple[str, tuple[int, int] | None]],
    keys: Sequence[str],
) -> dict[str, np.ndarray]:
    """Per-sample features for each requested key; per-frame detectors give (B, T, D)."""
    out: dict[str, np.ndarray] = {}
    resized: dict[tuple[int, int], torch.Tensor] = {}
    for key in keys:
        det_name, size = feature_keys[key]
        clip = videos
        if size is not None:
            if size not in resized:
                resized[size] = _resize(videos, size)
            clip = resized[size]
        det = detectors[det_name]
        with torch.no_grad():
            feats = det(clip, prompts if det.needs_prompts else None)
        feats = feats.detach().cpu().numpy()
        if getattr(det, "per_frame", False):
            feats = feats.reshape(videos.shape[0], -1, feats.shape[-1])
        out[key] = feats
    return out


def metric_update(metric: Metric, feats: np.ndarray, *, real: bool) -> None:
    if feats.ndim == 3:  # per-frame features of per-sample rows
        feats = feats.reshape(-1, feats.shape[-1])
    metric.update(feats, real=real)


class Runner:
    """Executes one run configuration into one run directory."""

    def __init__(
        self,
        config: RunConfig,
        out: str | Path,
        *,
        resume: bool = False,
        dist_info: D.DistInfo | None = None,
        progress: bool = True,
        on_chunk: Callable[[str, str, int], None] | None = None,
    ):
        self.config = config
        self.rundir = RunDir(out)
        self.resume = resume
        self.dist = dist_info or D.DistInfo()
        self.progress = progress and self.dist.is_main
        self.device = D.pick_device(config.device, self.dist)
        self.generators = expand_generators(config)
        self.hash = config_hash(config)
        self.on_chunk = on_chunk
        self._lock = RunLock(self.rundir.root)

    # setup -------------------------------------------------------------------------------------
    def load_protocols(self) -> list[ProtocolState]:
        """Everything a run needs before any work: protocols, datasets, metrics, detector weights."""
        states = []
        for name in self.config.protocols:
            overrides = self.config.protocol_overrides.get(name, [])
            proto = load_protocol(name, overrides)
            spec = proto.video.spec()
            ds_cls = DATASETS.get(proto.dataset.kind)
            ds_config = from_dict(ds_cls.Config, proto.dataset.params, file=protocol_path(name), path="dataset.params")
            if self.config.skip_unreadable and hasattr(ds_config, "skip_unreadable"):
                ds_config.skip_unreadable = True
            dataset = ds_cls(ds_config, spec)
            metrics = [build_metric(m) for m in proto.metrics]
            detectors: dict[str, Detector] = {}
            for m in metrics:
                if m.detector not in detectors:
                    detectors[m.detector] = build_detector(
                        m.detector, device=self.device, allow_random_weights=self.config.allow_random_weights
                    )
                    det = detectors[m.detector]
                    if det.min_frames > spec.frames:
                        from evalkit.errors import InputError

                        raise InputError(
                            f"protocol {proto.name}: metric {m.full_name} uses detector {det.name}, which needs at "
                            f"least {det.min_frames} frames; the protocol generates {spec.frames}"
                        )
            feature_keys: dict[str, tuple[str, tuple[int, int] | None]] = {d: (d, None) for d in detectors}
            for h, w in proto.eval_resolutions:
                for d in detectors:
                    feature_keys[f"{d}@{h}x{w}"] = (d, (h, w))
            plan = dataset.plan(proto.num_samples, proto.seed)
            n_real = dataset.num_real(proto.num_real)
            states.append(ProtocolState(proto, dataset, plan, metrics, detectors, feature_keys, n_real))
        return states

    def _generators_on(self, protocol: str) -> list[ResolvedGenerator]:
        return [g for g in self.generators if g.runs_on(protocol)]

    def _manifest(self, states: list[ProtocolState]) -> dict[str, Any]:
        entries = []
        for st in states:
            entries.append({"generator": REAL, "generator_name": REAL, "generator_params": {}, "swept": {},
                            "protocol": st.name, "n_samples": st.n_real, "n_done": 0, "status": "pending"})
            for g in self._generators_on(st.name):
                entries.append({"generator": g.label, "generator_name": g.name, "generator_params": g.params,
                                "swept": g.swept, "protocol": st.name, "n_samples": len(st.plan), "n_done": 0,
                                "status": "pending"})
        return {"run_id": f"{self.config.name}-{self.hash}", "name": self.config.name, "config_hash": self.hash,
                "code_version": evalkit.__version__, "created": now(), "status": "running", "entries": entries,
                "protocols": {st.name: to_dict(st.config) for st in states}}

    def prepare(self, states: list[ProtocolState]) -> dict[str, Any]:
        """Create or check the run directory (rank 0), write config, manifest and plans."""
        rd = self.rundir
        if self.dist.is_main:
            exists = rd.manifest_file.is_file()
            if exists and not self.resume:
                raise RunDirError(f"{rd.root}: already holds a run; pass --resume to continue it or choose another --out")
            if self.resume and exists:
                old = rd.read_manifest()
                if old.get("config_hash") != self.hash:
                    raise RunDirError(
                        f"{rd.root}: --resume with different settings (config hash {old.get('config_hash')} in the "
                        f"directory, {self.hash} now); use the same config and --set values, or another --out"
                    )
                manifest = old
                manifest["status"] = "running"
            else:
                manifest = self._manifest(states)
            rd.root.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
            atomic_write_text(rd.config_file, yaml.safe_dump(to_dict(self.config), sort_keys=False))
            for st in states:
                lines = [json.dumps(dataclasses.asdict(s), sort_keys=True) for s in st.plan]
                atomic_write_text(rd.plan_file(st.name), "\n".join(lines) + "\n")
            rd.write_manifest(manifest)
        D.barrier()
        return D.broadcast_object(rd.read_manifest() if self.dist.is_main else None)

    # work --------------------------------------------------------------------------------------
    def _chunks(self, n: int) -> list[tuple[int, range]]:
        size = self.config.chunk_size
        return [(c, range(c * size, min((c + 1) * size, n))) for c in range((n + size - 1) // size)]

    def _my_todo(self, label: str, protocol: str, n: int) -> list[tuple[int, range]]:
        done = self.rundir.done_chunks(label, protocol)
        return [(c, idx) for c, idx in self._chunks(n) if c % self.dist.world == self.dist.rank and c not in done]

    def _real_cache_dir(self, st: ProtocolState) -> Path:
        key = config_hash({
            "dataset": st.dataset.fingerprint(), "n_real": st.n_real, "seed": st.config.seed,
            "chunk": self.config.chunk_size,
            "features": {k: [st.detectors[d].fingerprint, r] for k, (d, r) in st.feature_keys.items()},
        })
        return evalkit_home() / "cache" / "real" / key

    def extract_real(self, st: ProtocolState) -> None:
        keys = st.real_keys()
        if not keys:
            return
        cache = self._real_cache_dir(st)
        target = self.rundir.chunk_dir(REAL, st.name)
        if self.dist.is_main and cache.is_dir() and not target.exists():
            shutil.copytree(cache, target)  # a previous run computed these exact features
        D.barrier()
        todo = self._my_todo(REAL, st.name, st.n_real)
        bar = self._bar(st.n_real, st.n_real - sum(len(i) for _, i in todo), f"real {st.name}")
        size = self.config.batch_size
        # (chunk, its indices, batch start): the last batch of a chunk is the one whose end reaches len(indices)
        batches = [(chunk, indices, s) for chunk, indices in todo for s in range(0, len(indices), size)]
        # the next batch decodes in a background thread while the detectors run on this one
        loaded = video_io.iter_videos(
            batches, loader=lambda b: st.dataset.real_clips(list(b[1][b[2]:b[2] + size]), st.config.seed),
            workers=1, prefetch=1)
        feats: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for (chunk, indices, start), videos in loaded:
            for k, v in extract_features(videos, None, st.detectors, st.feature_keys, keys).items():
                feats[k].append(v)
            bar.update(len(videos))
            if start + size >= len(indices):
                arrays = {k: np.concatenate(v) for k, v in feats.items()}
                atomic_save_npz(self.rundir.chunk_file(REAL, st.name, chunk), index=np.asarray(indices, np.int64),
                                **arrays)
                self._after_chunk(REAL, st.name, chunk)
                feats = {k: [] for k in keys}
        bar.close()
        D.barrier()
        if self.dist.is_main and not cache.exists():
            tmp = cache.with_name(cache.name + f".tmp{id(self)}")
            shutil.copytree(target, tmp)
            tmp.rename(cache)

    def generate(self, gen_entry: ResolvedGenerator, generator: Generator, st: ProtocolState) -> None:
        spec: VideoSpec = st.config.video.spec()
        keys = list(st.feature_keys)
        todo = self._my_todo(gen_entry.label, st.name, len(st.plan))
        bar = self._bar(len(st.plan), len(st.plan) - sum(len(i) for _, i in todo), f"{gen_entry.label} {st.name}")
        for chunk, indices in todo:
            feats: dict[str, list[np.ndarray]] = {k: [] for k in keys}
            seconds, nfe = [], []
            for start in range(0, len(indices), self.config.batch_size):
                samples = [st.plan[i] for i in indices[start:start + self.config.batch_size]]
                prompts = [s.prompt for s in samples]
                seeds = [self._seed(s) for s in samples]
                t0 = time.perf_counter()
                videos = generator.generate(prompts, seeds, spec)
                elapsed = time.perf_counter() - t0
                seconds += [elapsed / len(samples)] * len(samples)
                nfe += [float(generator.last_nfe) if generator.last_nfe is not None else np.nan] * len(samples)
                for k, v in extract_features(videos, prompts, st.detectors, st.feature_keys, keys).items():
                    feats[k].append(v)
                self._keep(gen_entry.label, st, samples, videos)
                bar.update(len(samples))
            arrays = {k: np.concatenate(v) for k, v in feats.items()}
            atomic_save_npz(self.rundir.chunk_file(gen_entry.label, st.name, chunk),
                            index=np.asarray(indices, np.int64), gen_seconds=np.asarray(seconds), nfe=np.asarray(nfe),
                            **arrays)
            self._after_chunk(gen_entry.label, st.name, chunk)
        bar.close()

    def _seed(self, sample: Sample) -> int:
        return sample.seed if self.config.seed == 0 else sample_seed(self.config.seed, sample.seed, "run")

    def _keep(self, label: str, st: ProtocolState, samples: list[Sample], videos: torch.Tensor) -> None:
        """Keep the first few videos for sample grids, and mp4 previews when asked."""
        first = [i for i, s in enumerate(samples) if s.index < self.config.keep_samples]
        if first:
            path = self.rundir.samples_file(label, st.name)
            old_v, old_p, old_i = [], [], []
            if path.is_file():
                with np.load(path, allow_pickle=False) as data:
                    old_v, old_p, old_i = list(data["videos"]), list(data["prompts"]), list(data["index"])
            for i in first:
                if samples[i].index not in old_i:
                    old_v.append(videos[i].numpy())
                    old_p.append(samples[i].prompt)
                    old_i.append(samples[i].index)
            order = np.argsort(old_i)
            atomic_save_npz(path, videos=np.stack(old_v)[order], prompts=np.asarray(old_p)[order],
                            index=np.asarray(old_i, np.int64)[order])
        for i, s in enumerate(samples):
            if s.index < self.config.previews:
                from evalkit.video_io import write_video

                folder = self.rundir.preview_dir(label, st.name)
                folder.mkdir(parents=True, exist_ok=True)
                write_video(folder / f"{s.index:06d}.mp4", videos[i].numpy(), st.config.video.fps)

    def _after_chunk(self, label: str, protocol: str, chunk: int) -> None:
        if self.on_chunk is not None:
            self.on_chunk(label, protocol, chunk)

    def _bar(self, total: int, initial: int, desc: str) -> tqdm:
        return tqdm(total=total, initial=initial, desc=desc, unit="video", disable=not self.progress,
                    dynamic_ncols=True, smoothing=0.1)

    # metrics -----------------------------------------------------------------------------------
    def _merged_states(self, label: str, st: ProtocolState, n: int, real: bool) -> dict[str, Metric]:
        """Per-chunk metric states from their owning ranks, merged on rank 0 in chunk order."""
        merged = {(m.full_name, key): build_metric(m.full_name) for m in st.metrics for key in self._keys_of(st, m)}
        for chunk, _ in self._chunks(n):
            owner = chunk % self.dist.world
            states = None
            if self.dist.rank == owner:
                data = self.rundir.read_chunk(label, st.name, chunk)
                states = {}
                for (name, key), _metric in merged.items():
                    if real and not _metric.uses_real:
                        continue
                    part = build_metric(name)
                    metric_update(part, data[key], real=real)
                    states[(name, key)] = part.state_dict()
            states = self._from_rank(states, owner)
            if self.dist.is_main:
                for k, state in states.items():
                    merged[k].merge_state(state)
        return merged

    def _from_rank(self, obj: Any, owner: int) -> Any:
        if not D.is_distributed():
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=owner)
        return box[0]

    @staticmethod
    def _keys_of(st: ProtocolState, metric: Metric) -> list[str]:
        return [k for k, (d, _) in st.feature_keys.items() if d == metric.detector]

    def compute_results(self, st: ProtocolState, gen_entry: ResolvedGenerator, manifest_entry: dict,
                        generator_info: dict | None = None) -> list[ResultRow]:
        fake = self._merged_states(gen_entry.label, st, len(st.plan), real=False)
        real = self._merged_states(REAL, st, st.n_real, real=True) if st.real_keys() else {}
        if not self.dist.is_main:
            return []
        gen_time = self._generation_stats(gen_entry.label, st)
        rows = []
        for (name, key), metric in fake.items():
            t0 = time.perf_counter()
            if (name, key) in real and metric.uses_real:
                metric.merge_state(real[(name, key)].state_dict())
            value = metric.compute()
            det_name, size = st.feature_keys[key]
            det = st.detectors[det_name]
            protocol = st.name if size is None else f"{st.name}@{size[0]}x{size[1]}"
            details = {**value.details, **gen_time, "generator_name": gen_entry.name,
                       "generator_params": gen_entry.params, "swept": gen_entry.swept,
                       "metric_seconds": time.perf_counter() - t0, "skipped_files": list(st.dataset.skipped),
                       "generator_info": generator_info or {}}
            rows.append(ResultRow(
                run_id=f"{self.config.name}-{self.hash}", generator=gen_entry.label, protocol=protocol,
                metric=metric.name, variant=metric.variant, value=float(value.value), std=value.std,
                n_real=metric.n_real, n_fake=metric.n_fake, higher_is_better=metric.higher_is_better,
                detector=det.name, weights_digest=det.weights_digest,
                comparable=bool(det.comparable and not self.config.allow_random_weights),
                config_hash=self.hash, code_version=evalkit.__version__,
                wall_time_s=manifest_entry.get("wall_time_s"), started=manifest_entry.get("started"),
                finished=now(), status="final", details=details))
        return rows

    def _generation_stats(self, label: str, st: ProtocolState) -> dict[str, float | None]:
        secs, nfe = [], []
        for _, data in self.rundir.iter_chunks(label, st.name):
            secs.append(data["gen_seconds"])
            nfe.append(data["nfe"])
        s = np.concatenate(secs) if secs else np.array([])
        n = np.concatenate(nfe) if nfe else np.array([])
        return {"gen_seconds_per_video": float(s.mean()) if s.size else None,
                "nfe_per_video": float(np.nanmean(n)) if n.size and not np.isnan(n).all() else None}

    # driver ------------------------------------------------------------------------------------
    def run(self) -> list[ResultRow]:
        states = self.load_protocols()  # stops on missing weights before any work
        manifest = self.prepare(states)
        entries = {(e["generator"], e["protocol"]): e for e in manifest["entries"]}
        rows: list[ResultRow] = []
        try:
            for st in states:
                self._set_entry(manifest, entries[(REAL, st.name)], "running")
                self.extract_real(st)
                self._set_entry(manifest, entries[(REAL, st.name)], "done", st.n_real)
                for g in self._generators_on(st.name):
                    entry = entries[(g.label, st.name)]
                    if entry["status"] == "done" and self.resume:
                        continue
                    generator = build_generator(g.name, g.params, path=f"generators[{g.label}].params")
                    generator.bind(st.dataset)
                    generator.to(self.device)
                    t0 = time.perf_counter()
                    self._set_entry(manifest, entry, "running")
                    entry.setdefault("started", now())
                    self.generate(g, generator, st)
                    D.barrier()
                    entry["wall_time_s"] = entry.get("wall_time_s", 0.0) + (time.perf_counter() - t0)
                    new_rows = self.compute_results(st, g, entry, generator.info())
                    if self.dist.is_main:
                        write_results(self.rundir.results_file, new_rows)
                        rows += new_rows
                    self._set_entry(manifest, entry, "done", len(st.plan))
                    del generator
            if self.dist.is_main:
                manifest["status"] = "complete"
                manifest["finished"] = now()
                self.rundir.write_manifest(manifest)
        except KeyboardInterrupt:
            if self.dist.is_main:
                manifest["status"] = "interrupted"
                self.rundir.write_manifest(manifest)
            raise
        finally:
            self._lock.release()
        return rows

    def _set_entry(self, manifest: dict, entry: dict, status: str, n_done: int | None = None) -> None:
        if not self.dist.is_main:
            return
        entry["status"] = status
        if n_done is not None:
            entry["n_done"] = n_done
        else:
            done = self.rundir.done_chunks(entry["generator"], entry["protocol"])
            entry["n_done"] = min(entry["n_samples"], len(done) * self.config.chunk_size)
        self.rundir.write_manifest(manifest)
