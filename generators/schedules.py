"""Learning-rate schedule (linear warm-up then cosine decay) and EMA by half-life.

Both are closed forms of the step number, so a resumed run needs no scheduler state and the
learning rate stays at its final value past the planned end (``CosineAnnealingLR`` would climb back).
The EMA follows Karras et al. (EDM): the half-life is counted in training samples (images or
videos), so beta = 0.5 ** (batch_size / half_life) per step whatever the batch size; an optional
ramp-up limits the half-life to ``rampup_ratio`` times the samples seen so far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.optim.swa_utils import AveragedModel


@dataclass(frozen=True)
class WarmupCosine:
    """lr(t): linear from ``base_lr * warmup_start_factor`` to ``base_lr`` over ``warmup_steps``, then a
    half cosine down to ``base_lr * final_lr_ratio`` at ``total_steps``, constant afterwards."""

    base_lr: float
    total_steps: int
    warmup_steps: int = 0
    final_lr_ratio: float = 0.0
    warmup_start_factor: float = 0.0

    def __post_init__(self) -> None:
        if self.base_lr < 0:
            raise ValueError(f"base_lr must be >= 0, got {self.base_lr}")
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {self.total_steps}")
        if not 0 <= self.warmup_steps <= self.total_steps:
            raise ValueError(f"warmup_steps must be in [0, total_steps={self.total_steps}], got {self.warmup_steps}")
        if not 0 <= self.final_lr_ratio <= 1:
            raise ValueError(f"final_lr_ratio must be in [0, 1], got {self.final_lr_ratio}")
        if not 0 <= self.warmup_start_factor <= 1:
            raise ValueError(f"warmup_start_factor must be in [0, 1], got {self.warmup_start_factor}")

    def factor(self, step: int) -> float:
        """Multiplier of ``base_lr`` used for optimizer step ``step`` (0-based)."""
        step = max(0, int(step))
        if step < self.warmup_steps:
            s = self.warmup_start_factor
            return s + (1.0 - s) * step / self.warmup_steps
        decay_steps = self.total_steps - self.warmup_steps
        progress = 1.0 if decay_steps == 0 else min(1.0, (step - self.warmup_steps) / decay_steps)
        r = self.final_lr_ratio
        return r + (1.0 - r) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def __call__(self, step: int) -> float:
        return self.base_lr * self.factor(step)

    def lambda_lr(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """The same schedule as a ``LambdaLR`` (for code that expects a torch scheduler)."""
        return torch.optim.lr_scheduler.LambdaLR(optimizer, self.factor)


def ema_beta(half_life_samples: float, batch_size: int, samples_seen: int | None = None,
             rampup_ratio: float | None = None) -> float:
    """Per-step EMA decay for a half-life in samples (Karras et al.): 0.5 ** (batch / half_life).

    With ``rampup_ratio`` the half-life is min(half_life, samples_seen * rampup_ratio), so early
    weights are forgotten fast (EDM uses 0.05). A half-life of 0 gives beta 0 (EMA = current weights).
    """
    if half_life_samples < 0:
        raise ValueError(f"half_life_samples must be >= 0, got {half_life_samples}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    half_life = float(half_life_samples)
    if rampup_ratio is not None and samples_seen is not None:
        half_life = min(half_life, samples_seen * rampup_ratio)
    if half_life <= 0:
        return 0.0
    return 0.5 ** (batch_size / half_life)


def half_life_steps_to_samples(half_life_steps: float, batch_size: int) -> float:
    """Snap Video states its EMA half-life in steps (6,000); convert to samples for ``ema_beta``."""
    return float(half_life_steps) * batch_size


class EMA:
    """Exponential moving average of a model's parameters and floating buffers.

    Wraps ``torch.optim.swa_utils.AveragedModel`` (``ema.module`` is the averaged copy) with an
    averaging function that reads the current beta, so the decay can follow a ramp-up; integer
    buffers are copied, not averaged. The first update copies the weights.
    """

    def __init__(self, model: torch.nn.Module, half_life_samples: float, batch_size: int,
                 rampup_ratio: float | None = None, device: str | torch.device | None = None):
        self.half_life_samples = float(half_life_samples)
        self.batch_size = int(batch_size)
        self.rampup_ratio = rampup_ratio
        self.beta = ema_beta(self.half_life_samples, self.batch_size)
        self.averaged = AveragedModel(model, device=device, multi_avg_fn=self._multi_avg, use_buffers=True)
        self.averaged.requires_grad_(False)

    @property
    def module(self) -> torch.nn.Module:
        return self.averaged.module

    def _multi_avg(self, averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        if not averaged:
            return
        if averaged[0].is_floating_point() or averaged[0].is_complex():
            torch._foreach_lerp_(averaged, current, 1.0 - self.beta)
        else:
            torch._foreach_copy_(averaged, current)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, samples_seen: int | None = None) -> float:
        """Average ``model`` in (call after each optimizer step); returns the beta used."""
        self.beta = ema_beta(self.half_life_samples, self.batch_size, samples_seen, self.rampup_ratio)
        self.averaged.update_parameters(model)
        return self.beta

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.averaged.load_state_dict(state)

