"""Bootstrap rounds that skip work must give the values of plain rounds, to the bit.

A plain round feeds fresh metrics the resampled rows and computes them. The bootstrap instead shares
one real-set state between the two rows of a paired round and sends resamples whose covariance is
singular by construction straight to the reference's sqrtm, with one BLAS thread for features up to
512 wide. These tests replay the plain rounds from the same seed, at the same thread count, and compare.
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import evalkit.metrics.frechet as frechet
from evalkit.metrics.frechet import FrechetMetric
from evalkit.metrics.kid import KernelInceptionDistance
from evalkit.reports.bootstrap import (
    bootstrap_values,
    constant_column,
    interval_from_values,
    too_few_distinct_rows,
)
from evalkit.reports.paired import paired_bootstrap


class _PytorchFidLike(FrechetMetric):
    name, variant, detector = "fd", "test", "none"
    cov_divisor, sqrt_method = "N-1", "scipy-pytorch-fid"


class _SmallKID(KernelInceptionDistance):
    name, variant, detector = "kid", "test", "none"
    subsets, subset_size = 3, 20


class _StyleGANVLike(FrechetMetric):
    name, variant, detector = "fd", "test-n", "none"
    cov_divisor, sqrt_method, real_first = "N", "scipy-real", False


def _plain(factory, fake: np.ndarray, real: np.ndarray | None) -> float:
    with threadpool_limits(limits=1, user_api="blas"):
        metric = factory()
        for rows, is_real in ((fake, False), (real, True)):
            if rows is not None:
                metric.update(rows.reshape(-1, rows.shape[-1]), real=is_real)
        return float(metric.compute().value)


def _plain_paired_values(factory, a, b, real, rounds, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        idx = rng.integers(0, len(a), len(a))
        real_r = real[rng.integers(0, len(real), len(real))] if real is not None else None
        values.append(_plain(factory, b[idx], real_r) - _plain(factory, a[idx], real_r))
    return np.array(values)


def _sets(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape)
    b = 0.8 * a + 0.3 * rng.standard_normal(shape) + 0.1
    real = rng.standard_normal((len(a) + 7, *shape[1:])) * 1.1
    return a, b, real


def test_too_few_distinct_rows_only_flags_rank_deficient_resamples():
    rng = np.random.default_rng(0)
    seen = set()
    for shape in [(30, 24), (30, 2, 24), (40, 24)]:
        x = rng.standard_normal(shape)
        for _ in range(40):
            idx = rng.integers(0, len(x), len(x))
            rank = np.linalg.matrix_rank(np.cov(x[idx].reshape(-1, shape[-1]), rowvar=False))
            flagged = too_few_distinct_rows(x, idx)
            seen.add(flagged)
            # Gaussian rows in general position: full rank once there are more distinct rows than D
            assert rank < shape[-1] if flagged else rank == shape[-1]
    assert seen == {True, False}


def test_constant_column_finds_a_dead_unit():
    x = np.random.default_rng(1).standard_normal((50, 3, 8))
    assert not constant_column(x) and not constant_column(x[:, 0, 0])
    x[..., 5] = 0.0
    assert constant_column(x) and constant_column(x[:, 0, :])
    assert np.linalg.matrix_rank(np.cov(x.reshape(-1, 8), rowvar=False)) == 7


@pytest.mark.parametrize("factory", [_PytorchFidLike, _StyleGANVLike])
@pytest.mark.parametrize("shape", [(30, 24), (30, 2, 24), (60, 24), "dead unit"])
def test_paired_rounds_equal_plain_rounds_to_the_bit(factory, shape):
    if shape == "dead unit":  # a detector unit that is 0 for every clip, real and generated
        a, b, real = _sets((30, 2, 24), seed=9)
        for x in (a, b, real):
            x[..., 3] = 0.0
    else:
        a, b, real = _sets(shape, seed=sum(shape))
    iv = paired_bootstrap(factory, a, b, real, rounds=12, seed=5)
    plain = _plain_paired_values(factory, a, b, real, rounds=12, seed=5)
    expected = interval_from_values(_plain(factory, b, real) - _plain(factory, a, real), plain, method="percentile")
    assert (iv.value, iv.low, iv.high, iv.std) == (expected.value, expected.low, expected.high, expected.std)


def test_paired_rounds_equal_plain_rounds_for_a_metric_without_sums():
    a, b, real = _sets((40, 6), seed=1)
    factory = _SmallKID
    iv = paired_bootstrap(factory, a, b, real, rounds=6, seed=2)
    plain = _plain_paired_values(factory, a, b, real, rounds=6, seed=2)
    assert (iv.low, iv.high, iv.std) == tuple(
        getattr(interval_from_values(iv.value, plain, method="percentile"), k) for k in ("low", "high", "std"))


def test_bootstrap_values_equal_plain_rounds_to_the_bit():
    _, fake, real = _sets((30, 2, 24), seed=3)
    value, values = bootstrap_values(_PytorchFidLike, fake, real, rounds=10, seed=4)
    rng = np.random.default_rng(4)
    plain = []
    for _ in range(10):
        fake_r = fake[rng.integers(0, len(fake), len(fake))]
        real_r = real[rng.integers(0, len(real), len(real))]
        plain.append(_plain(_PytorchFidLike, fake_r, real_r))
    assert value == _plain(_PytorchFidLike, fake, real)
    assert values.tolist() == plain


def test_singular_resamples_skip_the_eigenvalue_attempt(monkeypatch):
    calls = []
    original = frechet._trace_sqrt_from_eigenvalues
    monkeypatch.setattr(frechet, "_trace_sqrt_from_eigenvalues",
                        lambda s1, s2: calls.append(1) or original(s1, s2))
    a, b, real = _sets((30, 24), seed=6)  # about 19 distinct rows of 24 dimensions in every resample
    paired_bootstrap(_PytorchFidLike, a, b, real, rounds=5, seed=0)
    assert len(calls) == 2  # the two full-data values only: 30 rows > 24 dimensions
    plain_calls = len(calls)
    _plain_paired_values(_PytorchFidLike, a, b, real, rounds=5, seed=0)
    assert len(calls) - plain_calls == 10  # a plain round tries it twice and falls back to sqrtm
    for x in (a, b, real):
        x[:, 7] = 1.0  # a dead unit: every covariance is singular, the full-data ones too
    calls.clear()
    paired_bootstrap(_PytorchFidLike, a, b, real, rounds=5, seed=0)
    assert calls == []


def test_rounds_use_one_blas_thread_up_to_512_dimensions_only():
    from threadpoolctl import threadpool_info

    from evalkit.reports.bootstrap import one_blas_thread

    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    with one_blas_thread(128):
        assert blas_threads() == {1}
    outside = blas_threads()
    with one_blas_thread(2048):
        assert blas_threads() == outside
