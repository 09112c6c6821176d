"""Streaming Gaussian sufficient statistics of feature sets.

Fréchet metrics only need the mean and covariance of each feature set, and both follow from three
sums: the count, the sum of features and the sum of their outer products. Keeping those sums in
float64 (as StyleGAN-V's ``FeatureStats`` does) makes the state independent of the number of samples,
lets shards be merged by plain addition, and gives the same covariance whichever way the samples
were split between processes.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from evalkit.errors import InputError

CovDivisor = Literal["N", "N-1"]


def as_feature_matrix(features: torch.Tensor | np.ndarray, *, name: str = "features") -> np.ndarray:
    """Return features as a finite float64 numpy matrix (N, D), or raise ``InputError``."""
    if isinstance(features, torch.Tensor):
        features = features.detach().to("cpu")
        if not features.is_floating_point():
            raise InputError(f"{name}: expected floating-point features, got dtype {features.dtype}")
        features = features.to(torch.float64).numpy()
    elif isinstance(features, np.ndarray):
        if not np.issubdtype(features.dtype, np.floating):
            raise InputError(f"{name}: expected floating-point features, got dtype {features.dtype}")
        features = features.astype(np.float64, copy=False)
    else:
        raise InputError(f"{name}: expected a torch tensor or numpy array (N, D), got {type(features).__name__}")
    if features.ndim != 2:
        raise InputError(f"{name}: expected shape (N, D), got {tuple(features.shape)}")
    if not np.isfinite(features).all():
        raise InputError(f"{name}: features contain NaN or infinite values")
    return features


class FeatureStats:
    """Count, float64 sum and float64 sum of outer products of D-dimensional features.

    Memory is ``D*D + D + 1`` floats whatever the number of samples.
    """

    def __init__(self, dim: int | None = None):
        self.dim: int | None = None
        self.count = 0
        self.sum: np.ndarray | None = None
        self.outer: np.ndarray | None = None
        if dim is not None:
            self._allocate(int(dim))

    def _allocate(self, dim: int) -> None:
        if dim < 1:
            raise InputError(f"FeatureStats: feature dimension must be positive, got {dim}")
        self.dim = dim
        self.sum = np.zeros(dim, dtype=np.float64)
        self.outer = np.zeros((dim, dim), dtype=np.float64)

    def update(self, features: torch.Tensor | np.ndarray) -> None:
        """Add a batch of features (N, D)."""
        x = as_feature_matrix(features)
        if self.dim is None:
            self._allocate(x.shape[1])
        if x.shape[1] != self.dim:
            raise InputError(f"features: expected dimension {self.dim}, got shape {tuple(x.shape)}")
        if x.shape[0] == 0:
            return
        self.count += int(x.shape[0])
        self.sum += x.sum(axis=0)
        self.outer += x.T @ x

    def merge(self, other: FeatureStats) -> None:
        """Add the sums of another ``FeatureStats`` (another shard of the same set)."""
        if other.dim is None:
            return
        if self.dim is None:
            self._allocate(other.dim)
        if other.dim != self.dim:
            raise InputError(f"FeatureStats.merge: dimension {other.dim} does not match {self.dim}")
        self.count += other.count
        self.sum += other.sum
        self.outer += other.outer

    def _require(self, minimum: int) -> None:
        if self.dim is None or self.count < minimum:
            raise InputError(f"FeatureStats: need at least {minimum} samples, have {self.count}")

    def mean(self) -> np.ndarray:
        self._require(1)
        return self.sum / self.count

    def cov(self, divisor: CovDivisor = "N-1") -> np.ndarray:
        """Covariance with divisor N (StyleGAN-V, cd-fvd) or N-1 (np.cov, pytorch-fid, TF-GAN)."""
        if divisor not in ("N", "N-1"):
            raise ValueError(f"cov divisor must be 'N' or 'N-1', got {divisor!r}")
        mean = self.mean()
        if divisor == "N":
            # Same arithmetic as StyleGAN-V: E[x x^T] - mu mu^T.
            return self.outer / self.count - np.outer(mean, mean)
        self._require(2)
        return (self.outer - self.count * np.outer(mean, mean)) / (self.count - 1)

    def state_dict(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Plain arrays; adding two state dicts element-wise merges the sets."""
        dim = 0 if self.dim is None else self.dim
        return {
            f"{prefix}count": np.array(self.count, dtype=np.int64),
            f"{prefix}sum": self.sum if self.sum is not None else np.zeros(dim, dtype=np.float64),
            f"{prefix}outer": self.outer if self.outer is not None else np.zeros((dim, dim), dtype=np.float64),
        }

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], prefix: str = "") -> FeatureStats:
        try:
            count = int(np.asarray(state[f"{prefix}count"]))
            total = np.asarray(state[f"{prefix}sum"], dtype=np.float64)
            outer = np.asarray(state[f"{prefix}outer"], dtype=np.float64)
        except KeyError as exc:
            raise InputError(f"FeatureStats state: missing key {exc.args[0]!r}") from None
        stats = cls()
        if total.size == 0:
            return stats
        if total.ndim != 1 or outer.shape != (total.shape[0], total.shape[0]):
            raise InputError(f"FeatureStats state: inconsistent shapes sum {total.shape}, outer {outer.shape}")
        stats._allocate(total.shape[0])
        stats.count = count
        stats.sum += total
        stats.outer += outer
        return stats

    def copy(self) -> FeatureStats:
        return FeatureStats.from_state(self.state_dict())

    def __repr__(self) -> str:
        return f"FeatureStats(dim={self.dim}, count={self.count})"
