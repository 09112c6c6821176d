"""Bootstrap intervals: coverage on Gaussians with a known Fréchet distance, determinism, spreads."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.errors import InputError
from evalkit.reports.bootstrap import (
    bootstrap_frame,
    bootstrap_interval,
    bootstrap_values,
    interval_from_values,
    seed_spread,
)
from evalkit.reports.load import load_run, results_frame
from evalkit.reports.testing import GaussianFrechet, MeanScore, use_test_metrics, write_example_run

D, N = 4, 300
MU, SCALE = 0.5, 1.3


def true_fd() -> float:
    """FD between N(0, I) and N(mu*1, scale^2 I): |mu|^2 d + d (1 - scale)^2 (closed form)."""
    return D * MU**2 + D * (1.0 - SCALE) ** 2


def draw(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((N, D))
    fake = MU + SCALE * rng.standard_normal((N, D))
    return fake, real


def test_reference_metric_matches_closed_form_for_large_samples():
    rng = np.random.default_rng(0)
    metric = GaussianFrechet()
    metric.update(MU + SCALE * rng.standard_normal((200_000, D)), real=False)
    metric.update(rng.standard_normal((200_000, D)), real=True)
    assert metric.compute().value == pytest.approx(true_fd(), abs=0.02)


def test_basic_interval_covers_true_distance_at_stated_rate():
    """90% basic intervals over 120 independent data sets: coverage within binomial noise of 0.9."""
    reps, hits, hits_pct = 120, 0, 0
    for rep in range(reps):
        fake, real = draw(1000 + rep)
        value, values = bootstrap_values(GaussianFrechet, fake, real, rounds=100, seed=rep)
        hits += interval_from_values(value, values, level=0.9, method="basic").covers(true_fd())
        hits_pct += interval_from_values(value, values, level=0.9, method="percentile").covers(true_fd())
    rate = hits / reps
    # binomial sd at p=0.9, n=120 is 0.027: [0.80, 0.97] is about 3.5 sd below and 2.5 sd above
    assert 0.80 <= rate <= 0.97, rate
    # the percentile interval carries the estimator's upward bias twice and covers less often
    assert hits_pct <= hits


def test_interval_without_real_set_covers_mean():
    hits = 0
    for rep in range(100):
        scores = np.random.default_rng(rep).normal(0.3, 0.05, (200, 1))
        hits += bootstrap_interval(MeanScore, scores, None, rounds=100, seed=rep, level=0.9).covers(0.3)
    assert 0.80 <= hits / 100 <= 0.98


def test_same_seed_same_interval_and_other_seed_differs():
    fake, real = draw(7)
    a = bootstrap_interval(GaussianFrechet, fake, real, rounds=30, seed=3)
    b = bootstrap_interval(GaussianFrechet, fake, real, rounds=30, seed=3)
    c = bootstrap_interval(GaussianFrechet, fake, real, rounds=30, seed=4)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert a.low < a.value < a.high


def test_interval_methods_relation():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    pct = interval_from_values(5.0, values, level=0.8, method="percentile")
    basic = interval_from_values(5.0, values, level=0.8, method="basic")
    lo, hi = np.quantile(values, [0.1, 0.9])
    assert (pct.low, pct.high) == pytest.approx((lo, hi))
    assert (basic.low, basic.high) == pytest.approx((10.0 - hi, 10.0 - lo))
    assert basic.std == pytest.approx(values.std(ddof=1))


def test_per_frame_rows_are_resampled_whole():
    """(n, T, D) features: a replicate picks whole videos, then frames enter as rows."""
    seen = []

    class Recorder(MeanScore):
        def update(self, features, *, real):
            seen.append(np.asarray(features))
            super().update(features, real=real)

    video_means = np.arange(10, dtype=np.float64)
    feats = np.repeat(video_means[:, None, None], 4, axis=1)  # (10, 4 frames, 1): frames of a video equal
    feats = feats + np.array([0.0, 0.1, 0.2, 0.3])[None, :, None]
    bootstrap_values(Recorder, feats, None, rounds=3, seed=0)
    for rows in seen[1:]:
        assert rows.shape == (40, 1)
        blocks = rows.reshape(10, 4)
        np.testing.assert_allclose(blocks - blocks[:, :1], np.tile([0.0, 0.1, 0.2, 0.3], (10, 1)), atol=1e-12)


def test_bad_input_is_rejected():
    fake, real = draw(0)
    with pytest.raises(InputError, match="rounds"):
        bootstrap_interval(GaussianFrechet, fake, real, rounds=0)
    with pytest.raises(InputError, match="real"):
        bootstrap_interval(GaussianFrechet, fake, None, rounds=5)
    with pytest.raises(InputError, match="at least 2"):
        bootstrap_interval(MeanScore, fake[:1], None, rounds=5)
    with pytest.raises(InputError, match="method"):
        interval_from_values(1.0, np.ones(5), method="bca")


def test_seed_spread_matches_numpy():
    values = [201.3, 198.7, 205.1]
    spread = seed_spread(values)
    assert spread.mean == pytest.approx(np.mean(values))
    assert spread.std == pytest.approx(np.std(values, ddof=1))
    assert spread.n == 3
    assert seed_spread([4.0]).std == 0.0
    with pytest.raises(InputError):
        seed_spread([float("nan")])


def test_bootstrap_frame_from_run_directory(tmp_path, monkeypatch):
    use_test_metrics(monkeypatch)
    write_example_run(tmp_path / "run", steps=(8, 32))
    frame = results_frame([load_run(tmp_path / "run")])
    out, messages = bootstrap_frame(frame, rounds=40, seed=0, level=0.9)
    fit = out[out["generator"] == "fit[steps=8]"].set_index("metric")
    for metric in ("fvd", "clipsim"):
        low, high, value = fit.loc[metric, ["ci_low", "ci_high", "value"]]
        # a basic interval corrects the bias, so it need not contain the value, but it lies near it
        assert low < high and low - (high - low) < value < high + (high - low)
        assert "90% bootstrap (basic, 40 rounds, seed 0)" == fit.loc[metric, "interval"]
    # the interval is the one bootstrap_interval gives on the stored arrays with the row's seed: recompute
    # independently from the written features
    from evalkit.reports.features import load_fake_features, load_real_features

    fake = load_fake_features(tmp_path / "run", "fit[steps=8]", "ucf101-zeroshot/test", "gauss")
    real = load_real_features(tmp_path / "run", "ucf101-zeroshot/test", "gauss")
    metric = GaussianFrechet()
    metric.update(fake, real=False)
    metric.update(real, real=True)
    assert metric.compute().value == pytest.approx(fit.loc["fvd", "value"], rel=1e-5)
    # the partial unet row has no features: it keeps no interval and says why
    unet = out[out["generator"] == "unet"].iloc[0]
    assert np.isnan(unet["ci_low"])
    assert any("unet" in m and "no feature chunks" in m for m in messages)


def test_distance_intervals_stop_at_zero():
    """Identical distributions: the basic interval of a Fréchet distance would reach below 0."""
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(200, 4)), rng.normal(size=(200, 4))
    iv = bootstrap_interval("fid:pytorch-fid", fake, real, rounds=50, seed=0)
    assert iv.low >= 0.0 and iv.high >= iv.low
    raw = interval_from_values(iv.value, np.full(50, 10 * iv.value + 1.0))
    assert raw.low < 0  # without the floor the reflection goes negative
