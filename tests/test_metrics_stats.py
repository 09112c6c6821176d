"""FeatureStats against numpy's mean/cov, shard merging, and constant state size."""

import numpy as np
import pytest
import torch

from evalkit.errors import InputError
from evalkit.metrics.stats import FeatureStats


def _features(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.5, 1.3, size=(n, d)).astype(np.float32)


def test_mean_and_cov_match_numpy_in_batches():
    x = _features(203, 7)
    stats = FeatureStats()
    for start in range(0, len(x), 17):
        stats.update(torch.from_numpy(x[start:start + 17]))
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(stats.mean(), x64.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats.cov("N-1"), np.cov(x64, rowvar=False), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats.cov("N"), np.cov(x64, rowvar=False, bias=True), rtol=1e-10, atol=1e-12)
    assert stats.count == 203


def test_merge_of_shards_equals_one_pass():
    x = _features(100, 5, seed=1)
    whole = FeatureStats()
    whole.update(x)
    shards = [FeatureStats() for _ in range(3)]
    for rank, shard in enumerate(shards):
        shard.update(x[rank::3])
    merged = FeatureStats()
    for shard in shards:
        merged.merge(FeatureStats.from_state(shard.state_dict()))
    assert merged.count == whole.count
    np.testing.assert_allclose(merged.cov("N"), whole.cov("N"), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(merged.mean(), whole.mean(), rtol=1e-12)


def test_state_size_is_independent_of_sample_count():
    sizes = []
    for n in (10, 1000):
        stats = FeatureStats()
        for chunk in np.array_split(_features(n, 16, seed=n), 5):
            stats.update(chunk)
        sizes.append(sum(a.nbytes for a in stats.state_dict().values()))
    assert sizes[0] == sizes[1] == (16 * 16 + 16) * 8 + 8


def test_prefixed_state_round_trip():
    stats = FeatureStats()
    stats.update(_features(9, 3))
    state = stats.state_dict("real_")
    assert set(state) == {"real_count", "real_sum", "real_outer"}
    again = FeatureStats.from_state(state, "real_")
    np.testing.assert_array_equal(again.outer, stats.outer)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((4, 3), dtype=np.uint8), "floating-point"),
        (np.zeros((4, 3, 2), dtype=np.float32), "shape (N, D)"),
        (np.array([[0.0, np.nan]]), "NaN"),
        ([[0.0, 1.0]], "torch tensor or numpy array"),
    ],
)
def test_bad_features_raise(bad, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FeatureStats().update(bad)


def test_dimension_mismatch_and_too_few_samples():
    stats = FeatureStats()
    stats.update(np.zeros((2, 3)))
    with pytest.raises(InputError, match="dimension 3"):
        stats.update(np.zeros((2, 4)))
    one = FeatureStats()
    one.update(np.zeros((1, 3)))
    with pytest.raises(InputError, match="at least 2"):
        one.cov("N-1")
    with pytest.raises(ValueError, match="divisor"):
        stats.cov("n")
