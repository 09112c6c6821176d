"""Kernel Inception Distance (Binkowski et al.): unbiased MMD^2 with a cubic polynomial kernel.

k(x, y) = (x.y / d + 1)^3, averaged over ``subsets`` random subsets of ``subset_size`` real and
generated features, as torchmetrics / torch-fidelity / clean-fid do; the subsets are drawn with
``torch.randperm`` from a generator seeded with ``seed`` (one real then one generated permutation per
subset, the order torchmetrics uses), so a run is reproducible. The result is the mean over subsets
and the population standard deviation. Where torchmetrics raises when a set is smaller than
``subset_size``, the subset size is reduced to the smaller set (clean-fid's rule) and a warning is
recorded. Features are kept (N x 2048), computation is float64.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from evalkit.errors import InputError
from evalkit.metrics.base import Metric, MetricValue
from evalkit.metrics.stats import as_feature_matrix
from evalkit.registry import METRICS


def polynomial_mmd(real: torch.Tensor, fake: torch.Tensor, degree: int = 3, gamma: float | None = None,
                   coef: float = 1.0) -> torch.Tensor:
    """Unbiased MMD^2 between two equal-size feature sets with a polynomial kernel."""
    gamma = 1.0 / real.shape[1] if gamma is None else gamma
    k_rr = (real @ real.T * gamma + coef) ** degree
    k_ff = (fake @ fake.T * gamma + coef) ** degree
    k_rf = (real @ fake.T * gamma + coef) ** degree
    m = real.shape[0]
    off_rr = k_rr.sum() - torch.diagonal(k_rr).sum()
    off_ff = k_ff.sum() - torch.diagonal(k_ff).sum()
    return (off_rr + off_ff) / (m * (m - 1)) - 2 * k_rf.sum() / (m**2)


class KernelInceptionDistance(Metric):
    """KID over kept features; subclasses choose the detector."""

    name: ClassVar[str] = "kid"
    variant: ClassVar[str] = ""
    detector: ClassVar[str] = "inception-pytorch-fid"
    higher_is_better: ClassVar[bool] = False
    subsets: ClassVar[int] = 100
    subset_size: ClassVar[int] = 1000
    degree: ClassVar[int] = 3
    gamma: ClassVar[float | None] = None
    coef: ClassVar[float] = 1.0
    seed: ClassVar[int] = 0

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._real: list[np.ndarray] = []
        self._fake: list[np.ndarray] = []

    def update(self, features: torch.Tensor | np.ndarray, *, real: bool) -> None:
        x = as_feature_matrix(features, name=f"{self.full_name} features")
        chunks = self._real if real else self._fake
        other = self._fake if real else self._real
        for ref in (chunks[:1] + other[:1]):
            if ref.shape[1] != x.shape[1]:
                raise InputError(f"{self.full_name}: expected {ref.shape[1]}-d features, got {x.shape[1]}-d")
        chunks.append(x.copy())

    @staticmethod
    def _cat(chunks: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, 0))

    def compute(self) -> MetricValue:
        real = torch.from_numpy(self._cat(self._real))
        fake = torch.from_numpy(self._cat(self._fake))
        n_r, n_f = real.shape[0], fake.shape[0]
        if min(n_r, n_f) < 2:
            raise InputError(f"{self.full_name}: need at least 2 real and 2 generated samples, have {n_r} and {n_f}")
        notes = []
        m = self.subset_size
        if min(n_r, n_f) < m:
            m = min(n_r, n_f)
            notes.append(f"subset size reduced from {self.subset_size} to {m} (fewer samples than the subset size)")
        gen = torch.Generator().manual_seed(self.seed)
        scores = []
        for _ in range(self.subsets):
            r = real[torch.randperm(n_r, generator=gen)[:m]]
            f = fake[torch.randperm(n_f, generator=gen)[:m]]
            scores.append(polynomial_mmd(r, f, self.degree, self.gamma, self.coef))
        values = torch.stack(scores)
        return MetricValue(
            value=float(values.mean()), std=float(values.std(unbiased=False)),
            details={"subsets": self.subsets, "subset_size": m, "degree": self.degree, "gamma": self.gamma,
                     "coef": self.coef, "seed": self.seed, "n_real": n_r, "n_fake": n_f, "warnings": notes},
        )

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"real_features": self._cat(self._real), "fake_features": self._cat(self._fake)}

    def merge_state(self, state: dict[str, np.ndarray]) -> None:
        """Append another shard's features (merge shards in index order for run-to-run identity)."""
        for key, chunks in (("real_features", self._real), ("fake_features", self._fake)):
            x = np.asarray(state[key], dtype=np.float64)
            if x.size:
                chunks.append(x)

    @property
    def n_real(self) -> int:
        return int(sum(c.shape[0] for c in self._real))

    @property
    def n_fake(self) -> int:
        return int(sum(c.shape[0] for c in self._fake))


@METRICS.register("kid")
class Kid(KernelInceptionDistance):
    """KID on pytorch-fid Inception pool3 frame features: cubic kernel, 100 subsets of 1000 (torchmetrics)."""
