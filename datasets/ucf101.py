"""UCF-101 zero-shot protocols (``DATASETS["ucf101"]``).

Reads the official layout: videos in ``UCF-101/<Class>/v_<Class>_gGG_cCC.avi`` and the split
folder ``ucfTrainTestlist/`` (``classInd.txt``, ``trainlist0N.txt``, ``testlist0N.txt``, CRLF line
ends). The split files ship with the package, so plans (prompts, classes, seeds) need no video;
only real clips and the oracle read the videos, from ``root`` or ``$EVALKIT_UCF101_ROOT``.

The generated set draws each sample's class from the class frequencies of a split (Snap Video:
"the same distribution as the original dataset"; VideoPoet: the test set) or uniformly (LaVie),
and turns the class into a prompt: the Snap Video per-class sentences (which follow PYoCo's), the
class name, or a template. Sample ``i`` gets seed ``sample_seed(base_seed, i)``; its class comes
from the stream ``ucf101/class``, so a plan of ``n`` samples is a prefix of a plan of ``n + 1``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from evalkit.datasets.base import ProtocolDataset, Sample
from evalkit.datasets.clips import ClipReader, ClipSampler, ClipStart, ResizeMode
from evalkit.errors import InputError
from evalkit.registry import DATASETS
from evalkit.seeding import numpy_rng, sample_seed
from evalkit.video import VideoSpec

SplitChoice = Literal["train", "test", "train+test"]
ROOT_ENV = "EVALKIT_UCF101_ROOT"
#: every template field a prompt template may use
TEMPLATE_FIELDS = ("name", "lower", "class_name", "prompt", "index")


def shipped_dir() -> Path:
    """The package's copy of the official files (``ucfTrainTestlist/``, ``prompts_snapvideo.tsv``)."""
    return Path(str(resources.files("evalkit.datasets"))) / "data" / "ucf101"


def human_name(class_name: str) -> str:
    """``ApplyEyeMakeup`` -> ``Apply Eye Makeup`` (the class name as words)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", class_name)


def _lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, text without CR/LF) of the non-blank lines of a text file."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    text = path.read_bytes().decode("utf-8-sig", errors="strict")
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def read_class_index(path: str | os.PathLike) -> list[str]:
    """Class names of ``classInd.txt`` ("<index> <ClassName>" lines, 1-based, consecutive)."""
    path = Path(path)
    classes: list[str] = []
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise InputError(f"{path}:{number}: expected '<index> <ClassName>', got {line!r}")
        if int(parts[0]) != len(classes) + 1:
            raise InputError(f"{path}:{number}: expected class index {len(classes) + 1}, got {parts[0]}")
        if parts[1] in classes:
            raise InputError(f"{path}:{number}: class {parts[1]!r} is listed twice")
        classes.append(parts[1])
    if not classes:
        raise InputError(f"{path}: no classes listed")
    return classes


@dataclasses.dataclass(frozen=True)
class SplitEntry:
    """One line of a split list: a video by its path relative to ``UCF-101/``."""

    relpath: str
    class_index: int  # 0-based, classInd order
    file: str
    line: int


def read_split_list(path: str | os.PathLike, classes: list[str]) -> list[SplitEntry]:
    """Entries of ``trainlistNN.txt`` ("<Class>/<file>.avi <label>") or ``testlistNN.txt`` (no label)."""
    path = Path(path)
    by_lower = {c.lower(): i for i, c in enumerate(classes)}
    entries = []
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) not in (1, 2):
            raise InputError(f"{path}:{number}: expected '<Class>/<file>.avi [label]', got {line!r}")
        relpath = parts[0]
        pieces = relpath.split("/")
        if len(pieces) != 2 or not pieces[1] or pieces[1].startswith(".") or "\\" in relpath:
            raise InputError(f"{path}:{number}: expected '<Class>/<file>.avi', got {relpath!r}")
        folder = pieces[0]
        # the class folder decides the class: files of HandstandPushups are named v_HandStandPushups_*
        if folder.lower() not in by_lower:
            raise InputError(f"{path}:{number}: class folder {folder!r} is not in classInd.txt")
        index = by_lower[folder.lower()]
        if len(parts) == 2:
            if not parts[1].isdigit() or int(parts[1]) != index + 1:
                raise InputError(
                    f"{path}:{number}: label {parts[1]} does not match class {classes[index]} (index {index + 1})"
                )
        entries.append(SplitEntry(relpath, index, str(path), number))
    if not entries:
        raise InputError(f"{path}: no videos listed")
    return entries


def read_prompts_tsv(path: str | os.PathLike, classes: list[str]) -> list[str]:
    """Per-class prompts from a TSV with header ``class<TAB>prompt``, in classInd order."""
    path = Path(path)
    lines = _lines(path)
    if not lines or lines[0][1].split("\t")[:2] != ["class", "prompt"]:
        raise InputError(f"{path}:1: expected the header 'class<TAB>prompt'")
    prompts: dict[str, str] = {}
    for number, line in lines[1:]:
        parts = line.split("\t")
        if len(parts) != 2 or not parts[1].strip():
            raise InputError(f"{path}:{number}: expected '<ClassName><TAB><prompt>', got {line!r}")
        prompts[parts[0]] = parts[1].strip()
    missing = [c for c in classes if c not in prompts]
    if missing:
        raise InputError(f"{path}: no prompt for class(es) {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
    return [prompts[c] for c in classes]


@dataclasses.dataclass
class UCF101Config:
    """Where the data lives, which videos are real, how classes and prompts are drawn, how clips are cut."""

    #: folder holding ``UCF-101/`` (or the class folders themselves); default ``$EVALKIT_UCF101_ROOT``
    root: str | None = None
    #: ``ucfTrainTestlist`` folder; default: the official files shipped with the package
    splits_dir: str | None = None
    #: official split 1, 2 or 3
    split: int = 1
    #: videos of the real (reference) set
    real_split: SplitChoice = "train"
    #: ``first``: in split-file order (class, group, clip); ``random``: a seeded permutation
    real_selection: Literal["first", "random"] = "random"
    #: more real clips than videos: go round the videos again (new random starts); else cap at the count
    real_repeat: bool = True
    #: videos the oracle draws from; default: the split the real set does not use (train+test: the same)
    oracle_split: SplitChoice | None = None
    #: class frequencies of the generated set: counts of a split's lists, or uniform
    class_frequencies: Literal["train", "test", "train+test", "uniform"] = "train+test"
    #: ``random``: each sample's class drawn independently; ``proportional``: exact counts (largest
    #: remainder), shuffled
    class_draw: Literal["random", "proportional"] = "random"
    #: ``snapvideo``: the 101 Snap Video sentences; ``classname``: "Apply Eye Makeup"; ``template``
    prompts: Literal["snapvideo", "classname", "template"] = "snapvideo"
    #: TSV (``class<TAB>prompt``) used instead of the shipped Snap Video prompts
    prompts_file: str | None = None
    #: for ``prompts: template``; fields {name}, {lower}, {class_name}, {prompt}, {index}
    template: str = "{name}"
    clip_start: ClipStart = "random"
    frame_stride: int = 1
    #: resample real clips to this frame rate (null: native 25 fps, consecutive or strided frames)
    clip_fps: float | None = None
    #: how 320x240 frames reach the protocol's size
    resize: ResizeMode = "crop"
    backend: Literal["pyav", "decord"] = "pyav"
    #: decoding threads
    workers: int = 4
    #: record unreadable or missing videos in ``skipped`` and use the next one instead of stopping
    skip_unreadable: bool = False

    def __post_init__(self) -> None:
        if self.split not in (1, 2, 3):
            raise ValueError(f"split must be 1, 2 or 3, got {self.split}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        try:
            self.template.format(**{f: "x" for f in TEMPLATE_FIELDS})
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"template {self.template!r} is not a valid template with fields {', '.join(TEMPLATE_FIELDS)} ({exc!r})"
            ) from None
        # checks the clip rule now rather than at the first real clip
        self.sampler(16)

    def sampler(self, frames: int) -> ClipSampler:
        return ClipSampler(frames, self.clip_start, self.frame_stride, self.clip_fps)


@DATASETS.register("ucf101")
class UCF101(ProtocolDataset):
    """UCF-101 with its official split files; see the module docstring."""

    Config = UCF101Config

    def __init__(self, config: UCF101Config, spec: VideoSpec):
        super().__init__(config, spec)
        self.reader = ClipReader(
            config.sampler(spec.frames), spec.height, spec.width, resize=config.resize, backend=config.backend,
            workers=config.workers, skip_unreadable=config.skip_unreadable, skipped=self.skipped,
        )
        self._resolved: dict[tuple[str, ...], list[SplitEntry]] = {}
        self._folder_index: dict[int, dict[str, Path]] = {}
        self._orders: dict[int, list[Path]] = {}
        self._lists: dict[str, list[SplitEntry]] = {}
        self._class_dirs: dict[int, Path] = {}

    # split files and prompts -------------------------------------------------------------------
    @cached_property
    def splits_dir(self) -> Path:
        if self.config.splits_dir:
            return Path(self.config.splits_dir)
        return shipped_dir() / "ucfTrainTestlist"

    @cached_property
    def classes(self) -> list[str]:
        return read_class_index(self.splits_dir / "classInd.txt")

    def split_entries(self, which: SplitChoice) -> list[SplitEntry]:
        """Entries of the chosen split lists, train before test, each in file order."""
        out: list[SplitEntry] = []
        for part in which.split("+"):
            out += self._list(part)
        return out

    def _list(self, part: str) -> list[SplitEntry]:
        if part not in self._lists:
            self._lists[part] = read_split_list(self.splits_dir / f"{part}list0{self.config.split}.txt", self.classes)
        return self._lists[part]

    @cached_property
    def class_prompts(self) -> list[str]:
        """The prompt of each class (classInd order) under the configured prompt set."""
        cfg = self.config
        names = self.classes
        if cfg.prompts == "classname":
            return [human_name(c) for c in names]
        snap = read_prompts_tsv(Path(cfg.prompts_file) if cfg.prompts_file else shipped_dir() / "prompts_snapvideo.tsv",
                                names)
        if cfg.prompts == "snapvideo":
            return snap
        return [
            cfg.template.format(name=human_name(c), lower=human_name(c).lower(), class_name=c, prompt=p, index=i + 1)
            for i, (c, p) in enumerate(zip(names, snap))
        ]

    @cached_property
    def class_probabilities(self) -> np.ndarray:
        """Probability of each class (classInd order) in the generated set."""
        n = len(self.classes)
        if self.config.class_frequencies == "uniform":
            return np.full(n, 1.0 / n)
        counts = self.class_counts(self.config.class_frequencies)
        return counts / counts.sum()

    def class_counts(self, which: SplitChoice) -> np.ndarray:
        counts = np.zeros(len(self.classes), dtype=np.int64)
        for entry in self.split_entries(which):
            counts[entry.class_index] += 1
        return counts

    # the generated set ----------------------------------------------------------------------------
    def draw_classes(self, num_samples: int, base_seed: int) -> list[int]:
        probs = self.class_probabilities
        if self.config.class_draw == "random":
            cdf = np.cumsum(probs)
            cdf[-1] = 1.0
            draws = [numpy_rng(sample_seed(base_seed, i, "ucf101/class")).random() for i in range(num_samples)]
            return [int(np.searchsorted(cdf, u, side="right")) for u in draws]
        exact = probs * num_samples
        counts = np.floor(exact).astype(np.int64)
        remainder = num_samples - int(counts.sum())
        # largest remainders first; ties go to the earlier class (stable sort)
        counts[np.argsort(-(exact - counts), kind="stable")[:remainder]] += 1
        labels = np.repeat(np.arange(len(probs)), counts)
        numpy_rng(sample_seed(base_seed, num_samples, "ucf101/class-order")).shuffle(labels)
        return [int(c) for c in labels]

    def plan(self, num_samples: int, base_seed: int) -> list[Sample]:
        prompts = self.class_prompts
        return [
            Sample(index=i, prompt=prompts[c], seed=sample_seed(base_seed, i), label=self.classes[c],
                   meta={"class_index": c + 1})
            for i, c in enumerate(self.draw_classes(num_samples, base_seed))
        ]

    # the real set ------------------------------------------------------------------------------------
    def num_real(self, requested: int) -> int:
        if self.config.real_repeat:
            return requested
        return min(requested, len(self.split_entries(self.config.real_split)))

    @cached_property
    def video_root(self) -> Path:
        root = self.config.root or os.environ.get(ROOT_ENV)
        if not root:
            raise InputError(
                "UCF-101 videos are needed but no folder is set: set dataset.params.root (the folder holding "
                f"UCF-101/<Class>/v_<Class>_gGG_cCC.avi) or the environment variable {ROOT_ENV}"
            )
        path = Path(root).expanduser()
        if (path / "UCF-101").is_dir():
            path = path / "UCF-101"
        if not path.is_dir():
            raise InputError(f"{path}: UCF-101 folder not found (dataset.params.root or ${ROOT_ENV})")
        self._check_class_folders(path)
        return path

    def _check_class_folders(self, path: Path) -> None:
        present = {p.name.lower(): p for p in path.iterdir() if p.is_dir()}
        missing = [c for c in self.classes if c.lower() not in present]
        if missing:
            shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
            raise InputError(
                f"{path}: {len(missing)} of the {len(self.classes)} class folders of "
                f"{self.splits_dir / 'classInd.txt'} are missing: {shown} (expected {path}/<Class>/*.avi)"
            )
        self._class_dirs = {i: present[c.lower()] for i, c in enumerate(self.classes)}

    def _locate(self, entry: SplitEntry) -> Path | None:
        """The file of a split entry; tolerates letter-case differences (HandstandPushups/HandStand...)."""
        root = self.video_root
        exact = root / entry.relpath
        if exact.is_file():
            return exact
        if entry.class_index not in self._folder_index:
            folder = self._class_dirs[entry.class_index]
            self._folder_index[entry.class_index] = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
        return self._folder_index[entry.class_index].get(entry.relpath.split("/")[1].lower())

    def resolved(self, which: SplitChoice) -> list[tuple[SplitEntry, Path]]:
        """Entries of a split with their files; absent files stop with the split file and line."""
        key = (which,)
        if key not in self._resolved:
            found, absent = [], []
            for entry in self.split_entries(which):
                path = self._locate(entry)
                if path is None:
                    absent.append(entry)
                else:
                    found.append((entry, path))
            if absent and not self.config.skip_unreadable:
                shown = "; ".join(f"{e.file}:{e.line}: {e.relpath}" for e in absent[:5])
                raise InputError(
                    f"{len(absent)} video(s) named by the split files are not in {self.video_root}: {shown}"
                    + (" ..." if len(absent) > 5 else "")
                    + " (run with --skip-unreadable to leave them out and list them with the results)"
                )
            for e in absent:
                self.skipped.append(f"{self.video_root / e.relpath}: named by {e.file}:{e.line} but not found")
            if not found:
                raise InputError(f"none of the videos of the {which} split are in {self.video_root}")
            self._resolved[key] = found
        return self._resolved[key]

    def _real_order(self, base_seed: int) -> list[Path]:
        if base_seed not in self._orders:
            files = [path for _, path in self.resolved(self.config.real_split)]
            if self.config.real_selection == "random":
                perm = numpy_rng(sample_seed(base_seed, 0, "ucf101/real-order")).permutation(len(files))
                files = [files[i] for i in perm]
            self._orders[base_seed] = files
        return self._orders[base_seed]

    def real_sources(self, indices: list[int], base_seed: int) -> list[Path]:
        """The video each real clip index comes from."""
        order = self._real_order(base_seed)
        return [order[int(i) % len(order)] for i in indices]

    def real_clips(self, indices: list[int], base_seed: int) -> torch.Tensor:
        order = self._real_order(base_seed)
        limit = self.num_real(max((int(i) for i in indices), default=-1) + 1)
        requests = []
        for i in indices:
            i = int(i)
            if i < 0 or i >= limit:
                raise InputError(f"real clip index {i} is outside the real set of {limit} clips")
            pos = i % len(order)
            candidates = order[pos:] + order[:pos] if self.config.skip_unreadable else [order[pos]]
            requests.append((candidates, sample_seed(base_seed, i, "ucf101/real-clip")))
        return self.reader.read_many(requests)

    def real_captions(self, indices: list[int], base_seed: int) -> list[str]:
        """The class prompt of each real clip (for text-video metrics on the real set)."""
        class_of = {path: entry.class_index for entry, path in self.resolved(self.config.real_split)}
        return [self.class_prompts[class_of[p]] for p in self.real_sources(indices, base_seed)]

    # the oracle ------------------------------------------------------------------------------------------
    @property
    def oracle_split(self) -> SplitChoice:
        if self.config.oracle_split:
            return self.config.oracle_split
        return {"train": "test", "test": "train"}.get(self.config.real_split, "train+test")  # type: ignore[return-value]

    def reference_videos(self, prompts: list[str], seeds: list[int]) -> torch.Tensor:
        """A clip of a video of the prompt's class, drawn by the seed from the oracle split."""
        by_prompt: dict[str, list[int]] = {}
        for c, p in enumerate(self.class_prompts):
            by_prompt.setdefault(p, []).append(c)
        by_class: dict[int, list[Path]] = {}
        for entry, path in self.resolved(self.oracle_split):
            by_class.setdefault(entry.class_index, []).append(path)
        requests = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            if prompt not in by_prompt:
                raise InputError(
                    f"oracle: prompt {prompt!r} is not one of the {len(by_prompt)} class prompts of this protocol"
                )
            rng = numpy_rng(sample_seed(int(seed), 0, "ucf101/oracle"))
            options = by_prompt[prompt]
            c = options[int(rng.integers(len(options)))]
            files = by_class.get(c)
            if not files:
                raise InputError(f"oracle: no video of class {self.classes[c]} in the {self.oracle_split} split")
            pos = int(rng.integers(len(files)))
            candidates = files[pos:] + files[:pos] if self.config.skip_unreadable else [files[pos]]
            requests.append((candidates, int(rng.integers(0, 2**63 - 1))))
        return self.reader.read_many(requests)
