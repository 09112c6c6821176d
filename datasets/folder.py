"""Your own data as a protocol's real set (``DATASETS["folder"]``).

The real set is a folder of videos (mp4, avi, webm, mkv), a folder of frame folders (StyleGAN-V's
layout: one sub-folder per video, frames sorted by file name), or a ``.npy``/``.npz`` array of uint8
(N, T, H, W, 3). Prompts of the generated set come from a file: ``.txt`` (one per line), ``.tsv`` or
``.csv`` with a ``prompt`` column and optionally a ``video`` column naming the matching entry of the
folder (which lets the oracle and text-video metrics on real clips work), or ``.json`` (a list of
strings or of ``{"prompt": ..., "video": ...}``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from evalkit import video_io
from evalkit.datasets.base import ProtocolDataset, Sample
from evalkit.datasets.clips import ClipReader, ClipSampler, ClipStart, ResizeMode, resize_video
from evalkit.errors import InputError
from evalkit.registry import DATASETS
from evalkit.seeding import numpy_rng, sample_seed
from evalkit.video import VideoSpec


@dataclasses.dataclass(frozen=True)
class PromptEntry:
    prompt: str
    #: entry of the real folder this prompt describes (file or frame-folder name), if known
    video: str | None
    where: str


def read_prompts(path: str | Path) -> list[PromptEntry]:
    """Prompts (and optional video names) from a .txt, .tsv, .csv or .json file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: prompts file not found")
    suffix = path.suffix.lower()
    entries: list[PromptEntry] = []
    if suffix == ".txt":
        for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
            if line.strip():
                entries.append(PromptEntry(line.strip(), None, f"{path}:{n}"))
    elif suffix in (".tsv", ".csv"):
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            if not reader.fieldnames or "prompt" not in reader.fieldnames:
                raise InputError(f"{path}:1: expected a header with a 'prompt' column (and optionally 'video'), "
                                 f"got {reader.fieldnames}")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                prompt = (row.get("prompt") or "").strip()
                if not prompt:
                    raise InputError(f"{where}: empty prompt")
                video = (row.get("video") or "").strip() or None
                entries.append(PromptEntry(prompt, video, where))
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, list):
            raise InputError(f"{path}: expected a JSON list of prompts, got {type(data).__name__}")
        for i, item in enumerate(data):
            where = f"{path}: [{i}]"
            if isinstance(item, str):
                item = {"prompt": item}
            if not isinstance(item, dict) or not isinstance(item.get("prompt"), str) or not item["prompt"].strip():
                raise InputError(f"{where}: expected a prompt string or {{'prompt': str, 'video': str}}, got {item!r}")
            video = item.get("video")
            if video is not None and not isinstance(video, str):
                raise InputError(f"{where}.video: expected a string, got {video!r}")
            entries.append(PromptEntry(item["prompt"].strip(), video, where))
    else:
        raise InputError(f"{path}: prompts file must be .txt, .tsv, .csv or .json")
    if not entries:
        raise InputError(f"{path}: no prompts")
    return entries


@dataclasses.dataclass
class FolderConfig:
    #: folder of videos or of frame folders, or a .npy/.npz file of uint8 (N, T, H, W, 3)
    root: str
    #: prompts of the generated set (see the module docstring)
    prompts_file: str | None = None
    #: ``cycle``: sample i takes prompt i mod P; ``random``: a seeded draw per sample
    prompt_order: Literal["cycle", "random"] = "cycle"
    #: look for videos in sub-folders too
    recursive: bool = False
    #: for .npz files holding several arrays
    array_key: str | None = None
    real_selection: Literal["first", "random"] = "first"
    #: more real clips than videos: go round again (new random starts); else cap at the count
    real_repeat: bool = False
    #: StyleGAN-V: 16 consecutive frames from a random start
    clip_start: ClipStart = "random"
    frame_stride: int = 1
    clip_fps: float | None = None
    #: frame rate of frame folders and arrays (they carry none); needed only with ``clip_fps``
    frames_fps: float | None = None
    resize: ResizeMode = "crop"
    backend: Literal["pyav", "decord"] = "pyav"
    workers: int = 4
    skip_unreadable: bool = False

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        self.sampler(16)

    def sampler(self, frames: int) -> ClipSampler:
        return ClipSampler(frames, self.clip_start, self.frame_stride, self.clip_fps)


@DATASETS.register("folder")
class FolderDataset(ProtocolDataset):
    """Videos, frame folders or an array as the real set; prompts from a file."""

    Config = FolderConfig

    def __init__(self, config: FolderConfig, spec: VideoSpec):
        super().__init__(config, spec)
        self.reader = ClipReader(
            config.sampler(spec.frames), spec.height, spec.width, resize=config.resize, backend=config.backend,
            workers=config.workers, skip_unreadable=config.skip_unreadable, frame_folder_fps=config.frames_fps,
            skipped=self.skipped,
        )
        self._orders: dict[int, list[int]] = {}

    # prompts --------------------------------------------------------------------------------------------
    @cached_property
    def prompts(self) -> list[PromptEntry]:
        if self.config.prompts_file:
            return read_prompts(self.config.prompts_file)
        root = Path(self.config.root)
        for name in ("prompts.txt", "prompts.tsv", "prompts.csv", "prompts.json"):
            if root.is_dir() and (root / name).is_file():
                return read_prompts(root / name)
        raise InputError(
            f"{root}: no prompts for the generated set: set dataset.params.prompts_file "
            "(or put prompts.txt / .tsv / .csv / .json in the folder)"
        )

    def plan(self, num_samples: int, base_seed: int) -> list[Sample]:
        entries = self.prompts
        out = []
        for i in range(num_samples):
            if self.config.prompt_order == "cycle":
                k = i % len(entries)
            else:
                k = int(numpy_rng(sample_seed(base_seed, i, "folder/prompt")).integers(len(entries)))
            e = entries[k]
            out.append(Sample(index=i, prompt=e.prompt, seed=sample_seed(base_seed, i), label=e.video,
                              meta={"prompt_index": k}))
        return out

    # the real set -------------------------------------------------------------------------------------------
    @cached_property
    def array(self) -> np.ndarray | None:
        root = Path(self.config.root)
        if root.suffix.lower() in video_io.ARRAY_EXTENSIONS:
            return video_io.load_array(root, self.config.array_key)
        return None

    @cached_property
    def items(self) -> list[Path]:
        """Videos and frame folders of the folder, sorted by relative path (StyleGAN-V order)."""
        root = Path(self.config.root)
        if not root.is_dir():
            raise InputError(f"{root}: folder of real videos not found (dataset.params.root)")
        found = video_io.list_videos(root, recursive=self.config.recursive)
        found += [p for p in root.iterdir() if video_io.is_frame_folder(p)]
        if not found:
            raise InputError(
                f"{root}: no videos ({', '.join(video_io.VIDEO_EXTENSIONS)}) and no frame folders (sub-folders of "
                "images) found"
            )
        return sorted(found, key=lambda p: p.relative_to(root).as_posix())

    def _count(self) -> int:
        return len(self.array) if self.array is not None else len(self.items)

    def num_real(self, requested: int) -> int:
        return requested if self.config.real_repeat else min(requested, self._count())

    def _order(self, base_seed: int) -> list[int]:
        if base_seed not in self._orders:
            n = self._count()
            order = list(range(n))
            if self.config.real_selection == "random":
                order = [int(i) for i in numpy_rng(sample_seed(base_seed, 0, "folder/real-order")).permutation(n)]
            self._orders[base_seed] = order
        return self._orders[base_seed]

    def _array_clip(self, k: int, seed: int) -> torch.Tensor:
        assert self.array is not None
        video = self.array[k]
        where = f"{self.config.root}[{k}]"
        indices = self.reader.sampler.indices(video.shape[0], self.config.frames_fps or 0.0,
                                              np.random.default_rng(seed), name=where)
        return resize_video(np.ascontiguousarray(video[indices]), self.spec.height, self.spec.width, self.config.resize)

    def _clips(self, positions: list[int], seeds: list[int]) -> torch.Tensor:
        if self.array is not None:
            clips = [self._array_clip(k, s) for k, s in zip(positions, seeds, strict=True)]
            return torch.stack(clips) if clips else torch.zeros((0, *self.spec.shape), dtype=torch.uint8)
        items = self.items
        requests = []
        for k, seed in zip(positions, seeds, strict=True):
            candidates = items[k:] + items[:k] if self.config.skip_unreadable else [items[k]]
            requests.append((candidates, seed))
        return self.reader.read_many(requests)

    def real_clips(self, indices: list[int], base_seed: int) -> torch.Tensor:
        order = self._order(base_seed)
        limit = self.num_real(max((int(i) for i in indices), default=-1) + 1)
        positions = []
        for i in indices:
            if int(i) < 0 or int(i) >= limit:
                raise InputError(f"real clip index {i} is outside the real set of {self._count()} videos")
            positions.append(order[int(i) % len(order)])
        return self._clips(positions, [sample_seed(base_seed, int(i), "folder/real-clip") for i in indices])

    # prompt <-> video ------------------------------------------------------------------------------------------
    def _name_index(self) -> dict[str, int]:
        if self.array is not None:
            return {str(k): k for k in range(len(self.array))}
        root = Path(self.config.root)
        names = {}
        for k, p in enumerate(self.items):
            names[p.relative_to(root).as_posix()] = k
            names.setdefault(p.name, k)
            names.setdefault(p.stem, k)
        return names

    @cached_property
    def videos_by_prompt(self) -> dict[str, list[int]]:
        names = self._name_index()
        out: dict[str, list[int]] = {}
        for e in self.prompts:
            if e.video is None:
                continue
            if e.video not in names:
                raise InputError(f"{e.where}: video {e.video!r} is not in {self.config.root}")
            out.setdefault(e.prompt, []).append(names[e.video])
        return out

    def reference_videos(self, prompts: list[str], seeds: list[int]) -> torch.Tensor:
        """A clip of a real video the prompts file pairs with the prompt."""
        table = self.videos_by_prompt
        if not table:
            raise InputError(
                f"{self.config.prompts_file or self.config.root}: the oracle needs prompts paired with videos "
                "(a 'video' column or field in the prompts file)"
            )
        positions, clip_seeds = [], []
        for prompt, seed in zip(prompts, seeds, strict=True):
            if prompt not in table:
                raise InputError(f"oracle: prompt {prompt!r} is paired with no video in the prompts file")
            rng = numpy_rng(sample_seed(int(seed), 0, "folder/oracle"))
            positions.append(table[prompt][int(rng.integers(len(table[prompt])))])
            clip_seeds.append(int(rng.integers(0, 2**63 - 1)))
        return self._clips(positions, clip_seeds)

    def real_captions(self, indices: list[int], base_seed: int) -> list[str]:
        """The prompt paired with each real clip's video."""
        by_video: dict[int, str] = {}
        for prompt, ks in self.videos_by_prompt.items():
            for k in ks:
                by_video.setdefault(k, prompt)
        order = self._order(base_seed)
        out = []
        for i in indices:
            k = order[int(i) % len(order)]
            if k not in by_video:
                raise InputError(f"real video {k} of {self.config.root} has no prompt in the prompts file")
            out.append(by_video[k])
        return out
