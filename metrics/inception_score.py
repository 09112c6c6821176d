"""Inception Score (Salimans et al.) with the split conventions of the references.

Per split: IS = exp(mean_i KL(p(y|x_i) || mean_j p(y|x_j))); the result is the mean and standard
deviation over splits. References disagree on everything around that formula, so each is a class
attribute of a subclass:

- ``input_kind``: ``"probs"`` (class probabilities, e.g. the C3D TorchScript's softmax output) or
  ``"logits"`` (softmax is applied here in float64; ``log_softmax`` gives the logs, as TF-GAN does).
- ``convention``: ``"splits"`` - one set split into ``splits`` parts at indices ``i*N//k``, after an
  optional ``numpy.random.RandomState(shuffle_seed).shuffle`` of the rows (StyleGAN-V: 10 splits,
  seed 42); ``"runs"`` - TGANv2 style, ``splits`` independent runs of ``N // splits`` consecutive samples,
  each scored as a single split (remaining samples are left out and a warning recorded).
- ``eps``: added to probabilities inside both logs. 0 reproduces StyleGAN-V (a zero probability then
  gives NaN, which raises here rather than being reported); TGANv2 adds 1e-20.
- ``std_ddof``: 0 as ``np.std`` (StyleGAN-V, TGANv2), 1 as ``torch.std`` (torchmetrics).

The metric keeps every sample's class distribution (N x C floats), because splits need them.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch

from evalkit.errors import InputError
from evalkit.metrics.base import Metric, MetricValue
from evalkit.metrics.stats import as_feature_matrix
from evalkit.registry import METRICS


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def split_score(probs: np.ndarray, eps: float = 0.0, log_probs: np.ndarray | None = None) -> float:
    """exp(mean KL(p(y|x) || p(y))) for one split of probabilities (N, C)."""
    marginal = np.mean(probs, axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.log(probs + eps) if log_probs is None else log_probs
        kl = probs * (logp - np.log(marginal + eps))
    return float(np.exp(np.mean(np.sum(kl, axis=1))))


class InceptionScore(Metric):
    """Base of every IS variant; subclasses set the detector and the conventions above."""

    name: ClassVar[str] = "is"
    variant: ClassVar[str] = ""
    detector: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    uses_real: ClassVar[bool] = False
    input_kind: ClassVar[Literal["probs", "logits"]] = "probs"
    convention: ClassVar[Literal["splits", "runs"]] = "splits"
    splits: ClassVar[int] = 10
    shuffle_seed: ClassVar[int | None] = None
    eps: ClassVar[float] = 0.0
    std_ddof: ClassVar[int] = 0
    #: tolerance on probability rows summing to one (probs input)
    prob_atol: ClassVar[float] = 1e-3

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._chunks: list[np.ndarray] = []

    def update(self, features: torch.Tensor | np.ndarray, *, real: bool = False) -> None:
        if real:
            raise InputError(f"{self.full_name}: Inception Score uses generated samples only (got real=True)")
        x = as_feature_matrix(features, name=f"{self.full_name} {self.input_kind}")
        if self._chunks and x.shape[1] != self._chunks[0].shape[1]:
            raise InputError(f"{self.full_name}: expected {self._chunks[0].shape[1]} classes, got {x.shape[1]}")
        if self.input_kind == "probs":
            if (x < 0).any() or (x > 1 + self.prob_atol).any():
                raise InputError(f"{self.full_name}: probabilities must lie in [0, 1]; pass logits to a logits variant")
            if not np.allclose(x.sum(axis=1), 1.0, atol=self.prob_atol):
                raise InputError(f"{self.full_name}: probability rows must sum to 1 (within {self.prob_atol})")
        self._chunks.append(x.copy())

    def _all(self) -> np.ndarray:
        if not self._chunks:
            return np.zeros((0, 0))
        return np.concatenate(self._chunks, axis=0)

    def _probs_logs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self.input_kind == "logits":
            logp = _log_softmax(x)
            return np.exp(logp), (logp if self.eps == 0 else None)
        return x, None

    def compute(self) -> MetricValue:
        x = self._all()
        n = x.shape[0]
        k = self.splits
        notes: list[str] = []
        if self.convention == "splits":
            if n < k:
                raise InputError(f"{self.full_name}: need at least {k} samples for {k} splits, have {n}")
            if self.shuffle_seed is not None:
                x = x.copy()
                np.random.RandomState(self.shuffle_seed).shuffle(x)
            bounds = [(i * n // k, (i + 1) * n // k) for i in range(k)]
        elif self.convention == "runs":
            block = n // k
            if block < 1:
                raise InputError(f"{self.full_name}: need at least {k} samples for {k} runs, have {n}")
            if block * k != n:
                notes.append(f"{n - block * k} samples beyond {k} runs of {block} were not used")
            bounds = [(i * block, (i + 1) * block) for i in range(k)]
        else:
            raise InputError(f"{self.full_name}: unknown IS convention {self.convention!r}")
        probs, logs = self._probs_logs(x)
        scores = []
        for lo, hi in bounds:
            part_logs = None if logs is None else logs[lo:hi]
            scores.append(split_score(probs[lo:hi], self.eps, part_logs))
        values = np.asarray(scores)
        if not np.isfinite(values).all():
            raise InputError(
                f"{self.full_name}: Inception Score is not finite (a class probability of exactly 0 with eps=0, "
                "as in StyleGAN-V); use a variant with eps > 0"
            )
        std = float(np.std(values, ddof=self.std_ddof)) if k > self.std_ddof else 0.0
        details = {"splits": k, "convention": self.convention, "shuffle_seed": self.shuffle_seed, "eps": self.eps,
                   "input": self.input_kind, "n_fake": n, "split_scores": [float(s) for s in values], "warnings": notes}
        return MetricValue(value=float(np.mean(values)), std=std, details=details)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"fake_features": self._all()}

    def merge_state(self, state: dict[str, np.ndarray]) -> None:
        """Append another shard's samples (shards must be merged in index order to keep split membership)."""
        x = np.asarray(state["fake_features"], dtype=np.float64)
        if x.size:
            self._chunks.append(x)

    @property
    def n_real(self) -> int:
        return 0

    @property
    def n_fake(self) -> int:
        return int(sum(c.shape[0] for c in self._chunks))


@METRICS.register("is:image")
class ImageInceptionScore(InceptionScore):
    """Frame IS: pytorch-fid Inception 1008 logits without fc bias, softmax, 10 consecutive splits, np.std."""

    variant: ClassVar[str] = "image"
    detector: ClassVar[str] = "inception-pytorch-fid-logits"
    input_kind: ClassVar[Literal["probs", "logits"]] = "logits"
    convention: ClassVar[Literal["splits", "runs"]] = "splits"
    splits: ClassVar[int] = 10
