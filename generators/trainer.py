"""Training loop for any module with a diffusion loss: LAMB, warm-up + cosine, EMA, checkpoints, DDP.

The trainer knows nothing about the network. A model is anything built by a ``TRAINABLE_MODELS``
builder ``(params, text_dim=..., spec=...) -> nn.Module`` that has

    model.loss(videos, text_tokens, text_mask, fps, is_image, generator) -> scalar tensor

with videos uint8 (B, T, H, W, 3), text tokens (B, L, D) float / mask (B, L) bool from the configured
text encoder, fps (B,) float (inf for images), is_image (B,) bool and a torch.Generator on the
training device. Batches come from a ``TRAINING_SOURCES`` entry (``clips(indices, images) -> Batch``,
deterministic in the item index); each step's global batch holds round(batch_size * image_ratio)
images and the rest videos, items numbered by step, so a resumed run (any world size) sees exactly
the data it would have seen.

Exact resume: checkpoints hold model, EMA, optimizer and every rank's RNG states (torch, numpy,
Python, the loss generator); the learning rate and the EMA decay are closed forms of the step. On CPU,
N steps in one go and N/2 + resume + N/2 give bit-identical weights (tested).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

import torch
import torch.distributed as dist
from torch import nn

from evalkit.config import config_hash, to_dict
from evalkit.errors import ConfigError, InputError, RunDirError
from evalkit.generators.checkpoints import (
    capture_rng,
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    prune_checkpoints,
    restore_rng,
    save_checkpoint,
    save_weights,
    training_cost,
)
from evalkit.generators.fit import widen_patch_embeddings
from evalkit.generators.lamb import Lamb, param_groups_no_decay, zero_under_trust_ratio
from evalkit.generators.schedules import EMA, WarmupCosine
from evalkit.generators.text_encoders import TextEncoder, build_text_encoder
from evalkit.registry import Registry
from evalkit.seeding import sample_seed
from evalkit.video import VideoSpec

#: builders of trainable models; the modules listed register theirs when the registry is first read
TRAINABLE_MODELS: Registry[Any] = Registry("trainable model", ("evalkit.generators", "evalkit.generators.snapvideo"))
TRAINING_SOURCES: Registry[Any] = Registry("training source")


# ------------------------------------------------------------------------------------------------
# configuration


@dataclass
class ComponentSection:
    """A registered component and the parameters passed through to its builder."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataSection:
    """Training clips: a ``TRAINING_SOURCES`` entry rendering clips of the given size."""

    name: str = "shapes"
    frames: int = 16
    height: int = 36
    width: int = 64
    fps: float = 24.0
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if min(self.frames, self.height, self.width) < 1 or not self.fps > 0:
            raise ValueError(f"data: frames, height, width must be >= 1 and fps > 0, got "
                             f"{self.frames}x{self.height}x{self.width} at {self.fps} fps")

    @property
    def spec(self) -> VideoSpec:
        return VideoSpec(frames=self.frames, height=self.height, width=self.width, fps=self.fps)


@dataclass
class OptimizerSection:
    """LAMB by default (Snap Video: lr 5e-3, betas (0.9, 0.99), weight decay 0.01, gradient clipping)."""

    name: Literal["lamb", "adamw"] = "lamb"
    lr: float = 5e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    eps: float = 1e-6
    weight_decay: float = 0.01
    #: also decay biases and normalisation gains (tensors of rank < 2)
    decay_all: bool = False
    #: move the embeddings a network lists in ``no_weight_decay()`` (FIT: positional and latent) to the
    #: no-decay group, as timm does: in LAMB that is a plain Adam step without trust ratio. Off by default:
    #: on fit-tiny it did not help (docs/training.md, choice 7)
    no_decay_embeddings: bool = False
    trust_clip: bool = False
    #: global gradient-norm clipping threshold (null: off)
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"optimizer.betas: expected two values in [0, 1), got {self.betas}")
        if not self.lr > 0:
            raise ValueError(f"optimizer.lr: expected > 0, got {self.lr}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"optimizer.grad_clip: expected > 0 or null, got {self.grad_clip}")


@dataclass
class ScheduleSection:
    """Linear warm-up then cosine decay to ``final_lr_ratio * lr`` at the last step."""

    warmup_steps: int = 0
    final_lr_ratio: float = 0.0
    warmup_start_factor: float = 0.0


@dataclass
class EMASection:
    """EMA half-life counted in training samples (Karras et al.); ``rampup_ratio`` as in EDM (0.05)."""

    half_life_samples: float = 10_000.0
    rampup_ratio: float | None = None

    def __post_init__(self) -> None:
        if self.half_life_samples < 0:
            raise ValueError(f"ema.half_life_samples: expected >= 0, got {self.half_life_samples}")


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved in the run directory and in every checkpoint."""

    model: ComponentSection
    steps: int
    batch_size: int
    data: DataSection = field(default_factory=DataSection)
    text_encoder: ComponentSection = field(default_factory=lambda: ComponentSection("minilm"))
    optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    ema: EMASection = field(default_factory=EMASection)
    #: fraction of each batch that is images (T identical frames at infinite fps); Snap Video: 0.5
    image_ratio: float = 0.5
    #: 0 writes a checkpoint only at the end
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    precision: Literal["fp32", "bf16"] = "fp32"
    device: str = "auto"
    #: weights file (``save_weights`` format) to start from, e.g. a stage-1 model for the upsampler
    init_from: str | None = None
    #: DDP option: parameters that get no gradient in some steps (self-conditioning, image batches)
    find_unused_parameters: bool = True
    #: torch intra-op threads (null: leave torch's default)
    threads: int | None = None
    #: where ``export`` writes the shipped EMA weights (relative to the repository or absolute)
    export_to: str | None = None
    export_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    description: str = ""

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps: expected >= 1, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {self.batch_size}")
        if not 0.0 <= self.image_ratio <= 1.0:
            raise ValueError(f"image_ratio: expected a value in [0, 1], got {self.image_ratio}")
        if self.checkpoint_every < 0 or self.log_every < 1:
            raise ValueError("checkpoint_every must be >= 0 and log_every >= 1")
        if self.schedule.warmup_steps > self.steps:
            raise ValueError(f"schedule.warmup_steps ({self.schedule.warmup_steps}) exceeds steps ({self.steps})")

    @property
    def images_per_batch(self) -> int:
        return int(round(self.batch_size * self.image_ratio))


# ------------------------------------------------------------------------------------------------
# data


class Batch(NamedTuple):
    """videos uint8 (B, T, H, W, 3), captions, fps float (B,) (inf for images), is_image bool (B,)."""

    videos: torch.Tensor
    captions: list[str]
    fps: torch.Tensor
    is_image: torch.Tensor


class TrainingSource(Protocol):
    """Deterministic clips by index; separate index spaces for videos and images."""

    def clips(self, indices: list[int], images: bool) -> Batch: ...


def cat_batches(parts: list[Batch]) -> Batch:
    parts = [p for p in parts if len(p.captions)]
    return Batch(torch.cat([p.videos for p in parts]), [c for p in parts for c in p.captions],
                 torch.cat([p.fps.double() for p in parts]), torch.cat([p.is_image.bool() for p in parts]))


def step_items(step: int, batch_size: int, n_images: int, rank: int, world: int) -> list[tuple[bool, int]]:
    """(is_image, item index) of this rank's share of the global batch of ``step``.

    The global batch is images ``step*n_images ...`` then videos ``step*n_videos ...``; ranks take
    every ``world``-th item, so the union over ranks does not depend on the world size.
    """
    n_videos = batch_size - n_images
    items = [(True, step * n_images + i) for i in range(n_images)]
    items += [(False, step * n_videos + i) for i in range(n_videos)]
    return items[rank::world]


def fetch_batch(source: TrainingSource, items: list[tuple[bool, int]]) -> Batch:
    parts = []
    for images in (True, False):
        idx = [i for img, i in items if img == images]
        if idx:
            parts.append(source.clips(idx, images))
    return cat_batches(parts)


@TRAINING_SOURCES.register("shapes")
class ShapesSource:
    """The procedural shapes benchmark (``evalkit.datasets.shapes``), training split.

    params: ``fps_choices`` (variable frame-rate training), ``seed_offset``, ``pool`` and the attribute
    lists of ``ShapesConfig`` (shapes, colors, motions, speeds, backgrounds). With ``pool: N`` item i
    is clip i mod N of a fixed set, rendered once and kept in memory: rendering costs about as much as
    a tiny model's training step on a CPU, so short CPU runs trade data variety for speed.
    """

    def __init__(self, spec: VideoSpec, seed: int, params: dict[str, Any]):
        from evalkit.config import from_dict
        from evalkit.datasets.shapes.dataset import ShapesConfig, ShapesTrainingData

        params = dict(params)
        fps_choices = params.pop("fps_choices", None)
        offset = int(params.pop("seed_offset", 0))
        self.pool = params.pop("pool", None)
        if self.pool is not None and (not isinstance(self.pool, int) or self.pool < 1):
            raise ConfigError(f"expected a positive integer or null, got {self.pool!r}", path="data.params.pool")
        config = from_dict(ShapesConfig, {"split": "train", **params}, path="data.params")
        base = seed + offset
        self.videos = ShapesTrainingData(spec, image_ratio=0.0, seed=base, fps_choices=fps_choices, config=config,
                                         length=2**62)
        self.images = ShapesTrainingData(spec, image_ratio=1.0, seed=base + 1, config=config, length=2**62)
        self._cache: dict[tuple[bool, int], tuple[torch.Tensor, str, float, bool]] = {}

    def clips(self, indices: list[int], images: bool) -> Batch:
        data = self.images if images else self.videos
        if self.pool is None:
            return Batch(*data.batch(indices))
        slots = [int(i) % self.pool for i in indices]
        todo = sorted({s for s in slots if (images, s) not in self._cache})
        if todo:
            videos, captions, fps, is_image = data.batch(todo)
            for k, s in enumerate(todo):
                self._cache[(images, s)] = (videos[k].clone(), captions[k], float(fps[k]), bool(is_image[k]))
        items = [self._cache[(images, s)] for s in slots]
        return Batch(torch.stack([it[0] for it in items]), [it[1] for it in items],
                     torch.tensor([it[2] for it in items], dtype=torch.float64),
                     torch.tensor([it[3] for it in items], dtype=torch.bool))


def build_source(section: DataSection, seed: int) -> TrainingSource:
    cls = TRAINING_SOURCES.get(section.name)
    return cls(section.spec, seed, dict(section.params))


# ------------------------------------------------------------------------------------------------
# models


class _LossForward(nn.Module):
    """Routes ``forward`` to ``model.loss`` so DistributedDataParallel sees the loss computation."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.model.loss(*args, **kwargs)


def build_model(section: ComponentSection, *, text_dim: int, spec: VideoSpec) -> nn.Module:
    builder = TRAINABLE_MODELS.get(section.name)
    model = builder(dict(section.params), text_dim=text_dim, spec=spec)
    if not callable(getattr(model, "loss", None)):
        raise ConfigError(f"model '{section.name}' has no loss(...) method and cannot be trained", path="model.name")
    return model


# ------------------------------------------------------------------------------------------------
# the loop


@dataclass
class TrainResult:
    steps: int
    samples: int
    wall_s: float
    final_loss: float
    checkpoint: Path | None
    run_dir: Path


def _resolve_device(requested: str, local_rank: int) -> torch.device:
    if requested == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(requested)


class Trainer:
    """One training run in ``run_dir`` (config, loss log, plot, checkpoints).

    ``model``, ``source`` and ``text_encoder`` may be given directly (tests, notebooks); otherwise
    they are built from the config's registries. Under torchrun (or whenever a process group is
    initialised) the model is wrapped in DistributedDataParallel and rank 0 writes all files.
    """

    def __init__(self, config: TrainConfig, run_dir: str | Path, *, model: nn.Module | None = None,
                 source: TrainingSource | None = None, text_encoder: TextEncoder | None = None,
                 progress: bool = True, on_step: Callable[[int, float], None] | None = None):
        self.config = config
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.on_step = on_step
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if config.batch_size % self.world:
            raise ConfigError(f"expected a multiple of the world size {self.world}, got {config.batch_size}",
                              path="batch_size")
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = _resolve_device(config.device, local_rank)
        self.text_encoder = text_encoder or build_text_encoder(config.text_encoder.name, config.text_encoder.params)
        self.source = source or build_source(config.data, config.seed)
        torch.manual_seed(sample_seed(config.seed, self.rank, "train/init"))
        self.model = (model or build_model(config.model, text_dim=self.text_encoder.dim, spec=config.data.spec))
        #: where the weights started ({file, training}) when ``init_from`` set them; travels into exports
        self.init_record: dict[str, Any] | None = None
        if config.init_from and model is None:
            self._init_weights(Path(config.init_from))
        self.model.to(self.device).train()
        groups = (list(self.model.parameters()) if config.optimizer.decay_all
                  else param_groups_no_decay(self.model, config.optimizer.weight_decay,
                                        honour_no_weight_decay=config.optimizer.no_decay_embeddings))
        self.optimizer = self._make_optimizer(groups)
        self._warn_zero_under_trust_ratio()
        self.schedule = WarmupCosine(config.optimizer.lr, config.steps, config.schedule.warmup_steps,
                                     config.schedule.final_lr_ratio, config.schedule.warmup_start_factor)
        self.ema = EMA(self.model, config.ema.half_life_samples, config.batch_size, config.ema.rampup_ratio)
        self.loss_generator = torch.Generator(device=self.device)
        self.loss_generator.manual_seed(sample_seed(config.seed, self.rank, "train/loss"))
        self.wrapped: nn.Module = _LossForward(self.model)
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = DDP(self.wrapped, device_ids=ids, find_unused_parameters=config.find_unused_parameters)
        self.step = 0
        self.history: list[dict[str, float]] = []

    # -- setup ------------------------------------------------------------------------------------
    def _make_optimizer(self, groups: Any) -> torch.optim.Optimizer:
        o = self.config.optimizer
        if o.name == "lamb":
            return Lamb(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay,
                        trust_clip=o.trust_clip)
        return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)

    def _warn_zero_under_trust_ratio(self) -> None:
        if self.rank or not isinstance(self.optimizer, Lamb):
            return
        stalled = zero_under_trust_ratio(self.optimizer, self.model)
        if stalled:
            shown = ", ".join(stalled[:6]) + (f" and {len(stalled) - 6} more" if len(stalled) > 6 else "")
            warnings.warn(
                f"optimizer: {len(stalled)} parameter tensor(s) start at exactly zero and get LAMB's trust ratio "
                f"({shown}); each step moves them by about lr x their own norm, so they stay near zero. "
                "Use optimizer.name: adamw, or start them at zero in a vector (no weight decay, no trust ratio)",
                stacklevel=2)

    def _init_weights(self, path: Path) -> None:
        state, meta = load_weights(path)
        state = widen_patch_embeddings(self.model, state)
        self.init_record = {"file": path.name, "training": training_cost(meta)}
        own = self.model.state_dict()
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        skipped = sorted(set(state) - set(usable))
        self.model.load_state_dict(usable, strict=False)
        if self.rank == 0:
            print(f"init_from {path}: loaded {len(usable)}/{len(own)} tensors"
                  + (f", skipped {len(skipped)} with other names or shapes" if skipped else ""))

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def _samples_seen(self, step: int) -> int:
        return step * self.config.batch_size

    # -- state --------------------------------------------------------------------------------------
    def _gather_rng(self) -> dict[int, dict[str, torch.Tensor]]:
        state = capture_rng({"loss": self.loss_generator})
        if not self.distributed:
            return {0: state}
        everyone: list[Any] = [None] * self.world
        dist.all_gather_object(everyone, state)
        return dict(enumerate(everyone))

    def save(self) -> Path | None:
        """Checkpoint the current step (collective under DDP; rank 0 writes)."""
        rng = self._gather_rng()
        if self.rank != 0:
            return None
        path = self.checkpoint_dir / checkpoint_name(self.step)
        meta = {"config": to_dict(self.config), "text_encoder_fingerprint": self.text_encoder.fingerprint,
                **self._run_record()}
        save_checkpoint(path, step=self.step, model=self.model.state_dict(), ema=self.ema.module.state_dict(),
                        optimizer=self.optimizer.state_dict(), rng=rng, meta=meta)
        self._write_log()
        prune_checkpoints(self.checkpoint_dir, self.config.keep_checkpoints)
        return path

    def _run_record(self) -> dict[str, Any]:
        """What a checkpoint and an export both say about the training so far (``RUN_RECORD_KEYS``)."""
        return {"samples": self._samples_seen(self.step), "config_hash": config_hash(self.config),
                "wall_s": self.history[-1]["wall_s"] if self.history else None, "world": self.world,
                "device": str(self.device), "threads": torch.get_num_threads(), "init_from": self.init_record}

    def load(self, path: str | Path) -> None:
        """Restore model, EMA, optimizer, RNG states and the step from a checkpoint."""
        ck = load_checkpoint(path)
        if ck.meta.get("text_encoder_fingerprint") not in (None, self.text_encoder.fingerprint):
            raise RunDirError(f"{path}: trained with text encoder {ck.meta['text_encoder_fingerprint']}, "
                              f"this config uses {self.text_encoder.fingerprint}")
        self.model.load_state_dict(ck.model)
        if ck.ema is not None:
            self.ema.module.load_state_dict(ck.ema)
            self.ema.averaged.n_averaged.fill_(max(1, ck.step))
        if ck.optimizer is not None:
            self.optimizer.load_state_dict(ck.optimizer)
        self.step = ck.step
        if self.rank in ck.rng and ck.meta.get("world", 1) == self.world:
            restore_rng(ck.rng[self.rank], {"loss": self.loss_generator})
        else:
            warnings.warn(f"{path}: saved with world size {ck.meta.get('world')}, resuming with {self.world}; "
                          "random streams are reseeded from (seed, rank, step), so the run continues "
                          "reproducibly but not bit-identically to an uninterrupted one", stacklevel=2)
            torch.manual_seed(sample_seed(self.config.seed, self.rank, f"train/resume/{self.step}"))
            self.loss_generator.manual_seed(sample_seed(self.config.seed, self.rank, f"train/loss/{self.step}"))
        self._read_log()

    # -- loss log -------------------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.run_dir / "loss.csv"

    _FIELDS = ("step", "samples", "loss", "lr", "grad_norm", "ema_beta", "wall_s")

    def _read_log(self) -> None:
        self.history = []
        if self.log_path.is_file():
            with open(self.log_path, newline="") as f:
                self.history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)
                                if int(float(row["step"])) <= self.step]

    def _write_log(self) -> None:
        tmp = self.log_path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self._FIELDS)
            w.writeheader()
            for row in self.history:
                w.writerow({k: (int(row[k]) if k in ("step", "samples") else repr(row[k])) for k in self._FIELDS})
        os.replace(tmp, self.log_path)

    def plot(self) -> Path | None:
        """loss.png: per-step loss (faint), its moving average and the learning rate."""
        if not self.history:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [r["step"] for r in self.history]
        loss = [r["loss"] for r in self.history]
        k = max(1, len(loss) // 50)
        smooth = [sum(loss[max(0, i - k + 1): i + 1]) / len(loss[max(0, i - k + 1): i + 1]) for i in range(len(loss))]
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(steps, loss, alpha=0.25, lw=0.8, label="loss")
        ax.plot(steps, smooth, lw=1.6, label=f"loss (mean of {k})")
        if min(loss) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.grid(alpha=0.3)
        ax2 = ax.twinx()
        ax2.plot(steps, [r["lr"] for r in self.history], color="gray", ls="--", lw=1, label="lr")
        ax2.set_ylabel("learning rate")
        lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
        ax.legend(lines, [ln.get_label() for ln in lines], loc="upper right")
        ax.set_title(f"{self.config.model.name}: {self.run_dir.name}")
        fig.tight_layout()
        out = self.run_dir / "loss.png"
        fig.savefig(out, dpi=110)
        plt.close(fig)
        return out

    # -- training ---------------------------------------------------------------------------------------
    def _prepare_run_dir(self, resume: bool) -> Path | None:
        """Returns the checkpoint to resume from (rank 0 decides; all ranks agree)."""
        found = latest_checkpoint(self.checkpoint_dir)
        if self.rank == 0:
            if not resume and found is not None:
                raise RunDirError(f"{self.run_dir} already holds checkpoints (latest {found.name}); "
                                  "pass --resume to continue it or choose another --out")
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "train_config.json").write_text(json.dumps(to_dict(self.config), indent=2, sort_keys=True))
        if self.distributed:
            dist.barrier()
        return found if resume else None

    def train_step(self) -> dict[str, float]:
        """One optimizer step on this rank's share of the global batch."""
        cfg = self.config
        lr = self.schedule(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        items = step_items(self.step, cfg.batch_size, cfg.images_per_batch, self.rank, self.world)
        batch = fetch_batch(self.source, items)
        emb = self.text_encoder.encode(batch.captions)
        dev = self.device
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            loss = self.wrapped(batch.videos.to(dev), emb.tokens.to(dev), emb.mask.to(dev), batch.fps.to(dev),
                                batch.is_image.to(dev), self.loss_generator)
        if loss.ndim != 0:
            raise InputError(f"model.loss returned shape {tuple(loss.shape)}, expected a scalar")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        if cfg.optimizer.grad_clip is not None:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.optimizer.grad_clip))
        else:
            grad_norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))) if params else 0.0
        self.optimizer.step()
        self.step += 1
        beta = self.ema.update(self.model, samples_seen=self._samples_seen(self.step))
        value = loss.detach().float()
        if self.distributed:
            value = value.to(dev)
            dist.all_reduce(value)
            value = value / self.world
        return {"step": self.step, "samples": self._samples_seen(self.step), "loss": float(value), "lr": lr,
                "grad_norm": grad_norm, "ema_beta": beta}

    def run(self, resume: bool = False, stop_at: int | None = None) -> TrainResult:
        """Train up to ``config.steps`` (or ``stop_at``), checkpointing as configured."""
        cfg = self.config
        start_ckpt = self._prepare_run_dir(resume)
        if start_ckpt is not None:
            self.load(start_ckpt)
            if self.rank == 0:
                print(f"resuming from {start_ckpt} (step {self.step})")
        end = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
        wall0 = time.perf_counter()
        offset = self.history[-1]["wall_s"] if self.history else 0.0
        bar = None
        if self.progress and self.rank == 0:
            from tqdm import tqdm

            bar = tqdm(total=end, initial=self.step, desc=f"train {cfg.model.name}", unit="it", dynamic_ncols=True)
        last_path: Path | None = None
        if not math.isfinite(self.schedule(self.step)):
            raise ConfigError("learning rate is not finite", path="optimizer.lr")
        while self.step < end:
            row = self.train_step()
            if not math.isfinite(row["loss"]):
                raise InputError(f"training diverged: loss {row['loss']} at step {self.step} (lower optimizer.lr "
                                 "or enable optimizer.grad_clip)")
            row["wall_s"] = offset + time.perf_counter() - wall0
            self.history.append(row)
            if self.on_step is not None:
                self.on_step(self.step, row["loss"])
            if bar is not None:
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == end:
                    bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}")
            if self.rank == 0 and self.step % cfg.log_every == 0:
                self._write_log()
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step != end:
                last_path = self.save() or last_path
        if bar is not None:
            bar.close()
        last_path = self.save() or last_path
        if self.rank == 0:
            self.plot()
            self._write_summary()
        final = self.history[-1] if self.history else {"loss": float("nan"), "wall_s": 0.0}
        return TrainResult(steps=self.step, samples=self._samples_seen(self.step), wall_s=float(final["wall_s"]),
                           final_loss=self.final_loss(), checkpoint=last_path, run_dir=self.run_dir)

    def final_loss(self, window: int = 50) -> float:
        """Mean loss over the last ``window`` steps (single-step losses are noisy in diffusion)."""
        tail = [r["loss"] for r in self.history[-window:]]
        return sum(tail) / len(tail) if tail else float("nan")

    def _write_summary(self) -> None:
        last = self.history[-1] if self.history else {}
        summary = {"model": self.config.model.name, "steps": self.step, "samples": self._samples_seen(self.step),
                   "wall_s": last.get("wall_s"), "final_loss_mean50": self.final_loss(),
                   "last_loss": last.get("loss"), "world": self.world, "device": str(self.device),
                   "text_encoder": self.text_encoder.fingerprint, "config_hash": config_hash(self.config)}
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))

    # -- export -----------------------------------------------------------------------------------------
    def export(self, path: str | Path, dtype: str | None = None) -> Path:
        """Write the EMA weights alone (what ships) with what is needed to rebuild the model."""
        dtype = dtype or self.config.export_dtype
        meta = {"model": to_dict(self.config.model), "text_encoder": to_dict(self.config.text_encoder),
                "text_encoder_fingerprint": self.text_encoder.fingerprint, "data": to_dict(self.config.data),
                "steps": self.step, "final_loss": self.final_loss(), "weights": "ema", **self._run_record()}
        architecture = getattr(self.ema.module, "config", None)
        if is_dataclass(architecture):
            # the resolved architecture too, so the file still loads after a named config changes
            meta["model_resolved"] = to_dict(architecture)
        return save_weights(path, self.ema.module.state_dict(), meta, dtype=getattr(torch, dtype))


#: the keys of ``Trainer._run_record``, which checkpoints hold and exports copy
RUN_RECORD_KEYS = ("samples", "config_hash", "wall_s", "world", "device", "threads", "init_from")


def export_from_checkpoint(checkpoint: str | Path, path: str | Path, dtype: str = "float32") -> Path:
    """EMA weights of a training checkpoint as a shipped weights file (no model needs to be built)."""
    ck = load_checkpoint(checkpoint)
    if ck.ema is None:
        raise RunDirError(f"{checkpoint}: the checkpoint holds no EMA weights")
    cfg = ck.meta.get("config", {})
    meta = {"model": cfg.get("model"), "text_encoder": cfg.get("text_encoder"), "data": cfg.get("data"),
            "text_encoder_fingerprint": ck.meta.get("text_encoder_fingerprint"), "steps": ck.step, "weights": "ema",
            **{k: ck.meta.get(k) for k in RUN_RECORD_KEYS}}
    return save_weights(path, ck.ema, meta, dtype=getattr(torch, dtype))


def config_from_dict(data: dict[str, Any], *, file: str | None = None) -> TrainConfig:
    from evalkit.config import from_dict

    return from_dict(TrainConfig, data, file=file)


__all__ = [
    "TRAINABLE_MODELS", "TRAINING_SOURCES", "Batch", "ComponentSection", "DataSection", "EMASection",
    "OptimizerSection", "ScheduleSection", "TrainConfig", "TrainResult", "Trainer", "build_model", "build_source",
    "config_from_dict", "export_from_checkpoint", "fetch_batch", "step_items",
]
