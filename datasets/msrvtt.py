"""MSR-VTT zero-shot protocols (``DATASETS["msrvtt"]``).

Reads the official annotation JSON (``test_videodatainfo.json``, or a merged file such as
``MSRVTT_data.json`` with the same ``videos``/``sentences`` layout) and, for the 1k-A retrieval
split, the JSFusion CSV (``key,vid_key,video_id,sentence``). The test split is the videos marked
``"split": "test"`` (video7010-video9999: 2,990 videos x 20 captions = 59,800), or, in files
without a split field, that id range.

Plans: ``all`` is one sample per test caption (Snap Video: 59,800; videos in id order, captions in
``sen_id`` order); ``one-per-video`` draws one caption per video (Video LDM, LaVie: 2,990).
Video ids come from files, so they are checked (``video<N>``) before they touch a path.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import torch

from evalkit.datasets.base import ProtocolDataset, Sample
from evalkit.datasets.clips import ClipReader, ClipSampler, ClipStart, ResizeMode
from evalkit.errors import InputError
from evalkit.registry import DATASETS
from evalkit.seeding import numpy_rng, sample_seed
from evalkit.video import VideoSpec
from evalkit.video_io import VIDEO_EXTENSIONS

ROOT_ENV = "EVALKIT_MSRVTT_ROOT"
VIDEO_ID = re.compile(r"video(0|[1-9][0-9]{0,5})")
TEST_IDS = range(7010, 10000)
#: where the annotation file and the videos usually sit under the MSR-VTT folder
ANNOTATION_NAMES = ("test_videodatainfo.json", "annotation/test_videodatainfo.json", "MSRVTT_data.json",
                    "msrvtt_data/MSRVTT_data.json", "annotation/MSR_VTT.json")
VIDEO_DIRS = (".", "TestVideo", "test_videos", "TrainValVideo", "videos/all", "MSRVTT/videos/all", "videos")


def check_video_id(value: Any, where: str) -> str:
    """A video id safe to put in a path: ``video`` followed by digits, nothing else."""
    if not isinstance(value, str) or not VIDEO_ID.fullmatch(value):
        raise InputError(f"{where}: expected a video id like 'video7010', got {value!r}")
    return value


def video_number(video_id: str) -> int:
    return int(video_id[5:])


@dataclasses.dataclass(frozen=True)
class Caption:
    sen_id: int
    video_id: str
    text: str


@dataclasses.dataclass
class Annotations:
    """Videos (id -> split or None) and captions of one annotation file."""

    file: str
    videos: dict[str, str | None]
    captions: list[Caption]


def _field(item: Any, key: str, kind: type, where: str, file: Path) -> Any:
    if not isinstance(item, dict):
        raise InputError(f"{file}: {where}: expected an object, got {type(item).__name__}")
    if key not in item:
        raise InputError(f"{file}: {where}.{key}: field missing")
    value = item[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise InputError(f"{file}: {where}.{key}: expected an integer, got {value!r}")
    if kind is str and not isinstance(value, str):
        raise InputError(f"{file}: {where}.{key}: expected a string, got {value!r}")
    return value


def load_annotations(path: str | os.PathLike) -> Annotations:
    """Parse and check an MSR-VTT annotation JSON; every error names the file and the field.

    Parsed files are kept (keyed by path, size and modification time): the 59,800-caption test
    file takes a noticeable fraction of a second to check, and several datasets may read it.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: annotation file not found")
    stat = path.stat()
    return _load_annotations(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load_annotations(file: str, size: int, mtime_ns: int) -> Annotations:
    path = Path(file)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object with 'videos' and 'sentences', got {type(data).__name__}")
    for key in ("videos", "sentences"):
        if key not in data:
            raise InputError(f"{path}: top-level field '{key}' missing (expected the MSR-VTT layout: info, videos, "
                             "sentences)")
        if not isinstance(data[key], list):
            raise InputError(f"{path}: {key}: expected a list, got {type(data[key]).__name__}")
    videos: dict[str, str | None] = {}
    for i, item in enumerate(data["videos"]):
        vid = check_video_id(_field(item, "video_id", str, f"videos[{i}]", path), f"{path}: videos[{i}].video_id")
        if vid in videos:
            raise InputError(f"{path}: videos[{i}].video_id: {vid!r} is listed twice")
        split = item.get("split")
        if split is not None and not isinstance(split, str):
            raise InputError(f"{path}: videos[{i}].split: expected a string, got {split!r}")
        videos[vid] = split
    captions: list[Caption] = []
    seen: dict[int, int] = {}
    for i, item in enumerate(data["sentences"]):
        where = f"sentences[{i}]"
        sen_id = _field(item, "sen_id", int, where, path)
        vid = _field(item, "video_id", str, where, path)
        text = _field(item, "caption", str, where, path)
        if vid not in videos:
            check_video_id(vid, f"{path}: {where}.video_id")
            raise InputError(f"{path}: {where}.video_id: {vid!r} is not among the {len(videos)} entries of 'videos'")
        if sen_id in seen:
            raise InputError(f"{path}: {where}.sen_id: {sen_id} repeats sentences[{seen[sen_id]}].sen_id")
        seen[sen_id] = i
        if not text.strip():
            raise InputError(f"{path}: {where}.caption: empty caption")
        captions.append(Caption(sen_id, vid, text.strip()))
    return Annotations(str(path), videos, captions)


def read_split_csv(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(video id, sentence) rows of the JSFusion 1k-A CSV (header ``key,vid_key,video_id,sentence``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: split CSV not found")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or "video_id" not in header or "sentence" not in header:
            raise InputError(f"{path}:1: expected a header with columns video_id and sentence, got {header}")
        vid_col, sen_col = header.index("video_id"), header.index("sentence")
        rows = []
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != len(header):
                raise InputError(f"{path}:{line}: expected {len(header)} columns, got {len(row)}")
            rows.append((check_video_id(row[vid_col], f"{path}:{line}: video_id"), row[sen_col].strip()))
    if not rows:
        raise InputError(f"{path}: no rows")
    return rows


@dataclasses.dataclass
class MSRVTTConfig:
    """Where annotations and videos are, which captions become prompts, how real clips are cut."""

    #: folder holding the videos (``video7010.mp4``; also searched: TestVideo/, TrainValVideo/,
    #: videos/all/); default ``$EVALKIT_MSRVTT_ROOT``
    root: str | None = None
    #: annotation JSON; default: test_videodatainfo.json or MSRVTT_data.json found under ``root``
    annotations: str | None = None
    #: ``test``: official test split (2,990 videos); ``1k-A``: the JSFusion 1,000 videos of ``split_csv``
    split: Literal["test", "1k-A"] = "test"
    split_csv: str | None = None
    #: ``all``: one sample per caption; ``one-per-video``: a seeded random caption per video;
    #: ``csv``: the sentence of the 1k-A CSV
    captions: Literal["all", "one-per-video", "csv"] = "all"
    #: fewer samples than captions (or videos): a seeded ``random`` subset or the ``first`` ones
    caption_subset: Literal["random", "first"] = "random"
    real_selection: Literal["first", "random"] = "first"
    #: more real clips than videos: go round again (new random starts); else cap at the count
    real_repeat: bool = False
    clip_start: ClipStart = "central"
    frame_stride: int = 1
    #: resample real clips to this frame rate (null: native, about 30 fps)
    clip_fps: float | None = None
    resize: ResizeMode = "crop"
    backend: Literal["pyav", "decord"] = "pyav"
    workers: int = 4
    skip_unreadable: bool = False

    def __post_init__(self) -> None:
        if self.split == "1k-A" and not self.split_csv:
            raise ValueError("split '1k-A' needs split_csv (MSRVTT_JSFUSION_test.csv)")
        if self.captions == "csv" and self.split != "1k-A":
            raise ValueError("captions 'csv' is only for split '1k-A'")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        self.sampler(16)

    def sampler(self, frames: int) -> ClipSampler:
        return ClipSampler(frames, self.clip_start, self.frame_stride, self.clip_fps)


def _subset(total: int, n: int, how: str, seed: int) -> list[int]:
    """Positions of ``n`` items out of ``total``: all (cycled when n > total), the first, or a random subset."""
    if n >= total:
        return [i % total for i in range(n)]
    if how == "first":
        return list(range(n))
    return sorted(int(i) for i in numpy_rng(seed).choice(total, size=n, replace=False))


@DATASETS.register("msrvtt")
class MSRVTT(ProtocolDataset):
    """MSR-VTT test captions as prompts, test videos as the real set; see the module docstring."""

    Config = MSRVTTConfig

    def __init__(self, config: MSRVTTConfig, spec: VideoSpec):
        super().__init__(config, spec)
        self.reader = ClipReader(
            config.sampler(spec.frames), spec.height, spec.width, resize=config.resize, backend=config.backend,
            workers=config.workers, skip_unreadable=config.skip_unreadable, skipped=self.skipped,
        )
        self._orders: dict[int, list[str]] = {}
        self._paths: dict[str, Path | None] = {}

    # annotations --------------------------------------------------------------------------------------
    def _root(self) -> Path | None:
        root = self.config.root or os.environ.get(ROOT_ENV)
        return Path(root).expanduser() if root else None

    @cached_property
    def annotations(self) -> Annotations:
        if self.config.annotations:
            return load_annotations(self.config.annotations)
        root = self._root()
        if root is not None:
            for name in ANNOTATION_NAMES:
                if (root / name).is_file():
                    return load_annotations(root / name)
        raise InputError(
            "MSR-VTT captions are needed but no annotation file is set: set dataset.params.annotations "
            f"(test_videodatainfo.json) or put it in dataset.params.root / ${ROOT_ENV}"
            + (f" (looked for {', '.join(ANNOTATION_NAMES)} in {root})" if root else "")
        )

    @cached_property
    def csv_rows(self) -> list[tuple[str, str]]:
        return read_split_csv(self.config.split_csv) if self.config.split_csv else []

    @cached_property
    def video_ids(self) -> list[str]:
        """Videos of the split, in id order."""
        ann = self.annotations
        if self.config.split == "1k-A":
            ids = list(dict.fromkeys(v for v, _ in self.csv_rows))
            absent = [v for v in ids if v not in ann.videos]
            if absent:
                raise InputError(f"{self.config.split_csv}: video ids {', '.join(absent[:5])} are not in {ann.file}")
        elif any(split is not None for split in ann.videos.values()):
            ids = [v for v, split in ann.videos.items() if split == "test"]
        else:
            ids = [v for v in ann.videos if video_number(v) in TEST_IDS]
        if not ids:
            raise InputError(f"{ann.file}: no videos of the {self.config.split} split")
        return sorted(ids, key=video_number)

    @cached_property
    def captions_by_video(self) -> dict[str, list[Caption]]:
        wanted = set(self.video_ids)
        out: dict[str, list[Caption]] = {v: [] for v in self.video_ids}
        for cap in self.annotations.captions:
            if cap.video_id in wanted:
                out[cap.video_id].append(cap)
        for caps in out.values():
            caps.sort(key=lambda c: c.sen_id)
        empty = [v for v, caps in out.items() if not caps]
        if empty and self.config.captions != "csv":
            raise InputError(f"{self.annotations.file}: no caption for video(s) {', '.join(empty[:5])}")
        return out

    @cached_property
    def all_captions(self) -> list[Caption]:
        """Every caption of the split: videos in id order, captions in sen_id order."""
        return [c for v in self.video_ids for c in self.captions_by_video[v]]

    # the generated set ---------------------------------------------------------------------------------
    def plan(self, num_samples: int, base_seed: int) -> list[Sample]:
        cfg = self.config
        subset_seed = sample_seed(base_seed, num_samples, "msrvtt/subset")
        chosen: list[Caption] = []
        if cfg.captions == "all":
            pool = self.all_captions
            chosen = [pool[k] for k in _subset(len(pool), num_samples, cfg.caption_subset, subset_seed)]
        elif cfg.captions == "csv":
            rows = self.csv_rows
            chosen = [Caption(-1, rows[k][0], rows[k][1])
                      for k in _subset(len(rows), num_samples, cfg.caption_subset, subset_seed)]
        else:
            videos = self.video_ids
            positions = _subset(len(videos), num_samples, cfg.caption_subset, subset_seed)
            for i, pos in enumerate(positions):
                caps = self.captions_by_video[videos[pos]]
                # the i-th sample's draw: a video met twice (num_samples > videos) gets a fresh caption
                chosen.append(caps[int(numpy_rng(sample_seed(base_seed, i, "msrvtt/caption")).integers(len(caps)))])
        return [
            Sample(index=i, prompt=c.text, seed=sample_seed(base_seed, i), label=c.video_id,
                   meta={"video_id": c.video_id, "sen_id": c.sen_id})
            for i, c in enumerate(chosen)
        ]

    # the real set ------------------------------------------------------------------------------------------
    def num_real(self, requested: int) -> int:
        if self.config.real_repeat:
            return requested
        return min(requested, len(self.video_ids))

    def video_path(self, video_id: str) -> Path | None:
        """The file of a video id under the root (None if absent); the id is checked first."""
        check_video_id(video_id, "MSR-VTT video id")
        if video_id not in self._paths:
            root = self._root()
            if root is None:
                raise InputError(
                    f"MSR-VTT videos are needed but no folder is set: set dataset.params.root or ${ROOT_ENV}"
                )
            if not root.is_dir():
                raise InputError(f"{root}: MSR-VTT video folder not found (dataset.params.root or ${ROOT_ENV})")
            found = None
            for sub in VIDEO_DIRS:
                for ext in VIDEO_EXTENSIONS:
                    candidate = root / sub / f"{video_id}{ext}"
                    if candidate.is_file():
                        found = candidate
                        break
                if found:
                    break
            self._paths[video_id] = found
        return self._paths[video_id]

    @cached_property
    def real_videos(self) -> list[str]:
        """Ids of the split's videos present on disk (absent ones stop the run, or are skipped and listed)."""
        present, absent = [], []
        for vid in self.video_ids:
            (present if self.video_path(vid) is not None else absent).append(vid)
        if absent:
            where = f"{self._root()} (and {', '.join(VIDEO_DIRS[1:])})"
            if not self.config.skip_unreadable:
                raise InputError(
                    f"{len(absent)} video(s) of {self.annotations.file} ('videos', split {self.config.split}) are "
                    f"not in {where}: {', '.join(absent[:5])}" + (" ..." if len(absent) > 5 else "")
                    + " (run with --skip-unreadable to leave them out and list them with the results)"
                )
            self.skipped.extend(f"{self._root()}/{vid}: listed in {self.annotations.file} but not found" for vid in absent)
        if not present:
            raise InputError(f"none of the videos of the {self.config.split} split are in {self._root()}")
        return present

    def _real_order(self, base_seed: int) -> list[str]:
        if base_seed not in self._orders:
            ids = list(self.real_videos)
            if self.config.real_selection == "random":
                perm = numpy_rng(sample_seed(base_seed, 0, "msrvtt/real-order")).permutation(len(ids))
                ids = [ids[i] for i in perm]
            self._orders[base_seed] = ids
        return self._orders[base_seed]

    def real_sources(self, indices: list[int], base_seed: int) -> list[str]:
        order = self._real_order(base_seed)
        return [order[int(i) % len(order)] for i in indices]

    def real_clips(self, indices: list[int], base_seed: int) -> torch.Tensor:
        order = self._real_order(base_seed)
        requests = []
        for i in indices:
            i = int(i)
            if i < 0 or (not self.config.real_repeat and i >= len(self.video_ids)):
                raise InputError(f"real clip index {i} is outside the real set of {len(self.video_ids)} videos")
            pos = i % len(order)
            ids = order[pos:] + order[:pos] if self.config.skip_unreadable else [order[pos]]
            requests.append(([self.video_path(v) for v in ids], sample_seed(base_seed, i, "msrvtt/real-clip")))
        return self.reader.read_many(requests)

    def real_captions(self, indices: list[int], base_seed: int) -> list[str]:
        """One seeded caption of each real clip's video (for text-video metrics on the real set)."""
        out = []
        for i, vid in zip(indices, self.real_sources(indices, base_seed), strict=True):
            caps = self.captions_by_video[vid]
            out.append(caps[int(numpy_rng(sample_seed(base_seed, int(i), "msrvtt/real-caption")).integers(len(caps)))].text)
        return out

    # the oracle ---------------------------------------------------------------------------------------------
    def reference_videos(self, prompts: list[str], seeds: list[int]) -> torch.Tensor:
        """A clip of a video captioned with the prompt (seeded choice when several videos share it)."""
        by_text: dict[str, list[str]] = {}
        for cap in self.all_captions:
            by_text.setdefault(cap.text, [])
            if cap.video_id not in by_text[cap.text]:
                by_text[cap.text].append(cap.video_id)
        for vid, text in self.csv_rows:
            by_text.setdefault(text, [])
            if vid not in by_text[text]:
                by_text[text].append(vid)
        present = set(self.real_videos)
        requests = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            videos = [v for v in by_text.get(prompt, []) if v in present]
            if not videos:
                raise InputError(f"oracle: prompt {prompt!r} is not a caption of an available {self.config.split} video")
            rng = numpy_rng(sample_seed(int(seed), 0, "msrvtt/oracle"))
            vid = videos[int(rng.integers(len(videos)))]
            requests.append(([self.video_path(vid)], int(rng.integers(0, 2**63 - 1))))
        return self.reader.read_many(requests)

    def caption_count(self) -> int:
        """Captions of the split (59,800 for the official test split)."""
        return len(self.all_captions)
