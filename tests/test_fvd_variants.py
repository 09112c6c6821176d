"""FVD variants against each reference's distance code on the same features.

cd-fvd's own ``compute_fvd_from_stats`` and ``FeatureStats`` (StyleGAN-V's, copied) and TATS's torch
``frechet_distance`` (shipped in cd-fvd) are called directly; StyleGAN-V's and fvd-comparison's numpy
formulas are transcribed here from their descriptions (divisor, sqrtm argument order, real part).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from cdfvd.fvd import cdfvd as CdFvd
from cdfvd.third_party.i3d.utils import frechet_distance as tats_frechet_distance
from cdfvd.utils.metric_utils import FeatureStats as RefFeatureStats

from evalkit.metrics.base import build_metric
from evalkit.metrics.frechet import frechet_distance
from evalkit.registry import DETECTORS, METRICS

VARIANTS = {
    "fvd:styleganv": ("i3d-torchscript", "N", "scipy-real", False),
    "fvd:videogpt": ("i3d-videogpt", "N-1", "svd-torch", True),
    "fvd:tats": ("i3d-tats", "N-1", "svd-torch", True),
    "fvd:cd-fvd-i3d": ("i3d-cd-fvd", "N", "scipy-real", True),
    "fvd:cd-fvd-videomae": ("videomae-v2-cd-fvd", "N", "scipy-real", True),
    "fvd:fvd-comparison": ("i3d-torchscript", "N-1", "scipy-real", False),
}


def _sqrtm(a):
    out = scipy.linalg.sqrtm(a)
    return out[0] if isinstance(out, tuple) else out


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.RandomState(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return (rng.normal(size=(n, d)) @ mix + shift).astype(np.float32)


def _feed(metric, real: np.ndarray, fake: np.ndarray, batch: int = 64) -> None:
    for i in range(0, len(real), batch):
        metric.update(torch.from_numpy(real[i : i + batch]), real=True)
    for i in range(0, len(fake), batch):
        metric.update(torch.from_numpy(fake[i : i + batch]), real=False)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_settings(name):
    detector, divisor, sqrt, real_first = VARIANTS[name]
    metric = build_metric(name)
    assert (metric.detector, metric.cov_divisor, metric.sqrt_method, metric.real_first) == (
        detector, divisor, sqrt, real_first)
    assert metric.detector in DETECTORS and not metric.higher_is_better and metric.uses_real
    assert name in METRICS.names("fvd:*")


def test_fvd_comparison_golden_setup_reproduces_their_formula():
    """compare_metrics.py's seeds (RandomState(1) fake, RandomState(2) real, 128 each) on 400-d features;
    their formula: np.cov (N-1), sqrtm(S_fake S_real), real part. N < D, so the covariances are singular,
    as in their run."""
    fake = np.random.RandomState(1).rand(128, 400).astype(np.float32)
    real = np.random.RandomState(2).rand(128, 400).astype(np.float32)
    mu_f, s_f = fake.mean(axis=0), np.cov(fake, rowvar=False)
    mu_r, s_r = real.mean(axis=0), np.cov(real, rowvar=False)
    expected = np.real(np.square(mu_f - mu_r).sum() + np.trace(s_f + s_r - _sqrtm(np.dot(s_f, s_r)) * 2))

    metric = build_metric("fvd:fvd-comparison")
    _feed(metric, real, fake, batch=50)
    value = metric.compute()
    assert value.value == pytest.approx(float(expected), rel=1e-6)
    assert any("N <= D" in w for w in value.details["warnings"])


def test_styleganv_equals_its_formula():
    """StyleGAN-V: float64 sums, divisor N, sqrtm(S_gen S_real), |mu_gen - mu_real|^2, real part."""
    real, fake = _features(700, 48, seed=0), _features(600, 48, seed=1, shift=0.3)

    def mean_cov(x):
        x64 = x.astype(np.float64)
        mean = x64.sum(axis=0) / len(x)
        return mean, x64.T @ x64 / len(x) - np.outer(mean, mean)

    mu_g, s_g = mean_cov(fake)
    mu_r, s_r = mean_cov(real)
    expected = np.real(np.square(mu_g - mu_r).sum() + np.trace(s_g + s_r - _sqrtm(np.dot(s_g, s_r)) * 2))
    metric = build_metric("fvd:styleganv")
    _feed(metric, real, fake)
    assert metric.compute().value == pytest.approx(float(expected), rel=1e-10)


@pytest.mark.parametrize("d", [24, 400])
def test_cdfvd_i3d_equals_package_compute_fvd_from_stats(d):
    real, fake = _features(900, d, seed=2), _features(800, d, seed=3, shift=0.1)
    ref_real = RefFeatureStats(capture_mean_cov=True)
    ref_fake = RefFeatureStats(capture_mean_cov=True)
    for i in range(0, 900, 16):  # cd-fvd appends batches of 16
        ref_real.append(real[i : i + 16])
    for i in range(0, 800, 16):
        ref_fake.append(fake[i : i + 16])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # sqrtm(disp=...) on SciPy >= 1.16
        expected = CdFvd.compute_fvd_from_stats(None, ref_fake, ref_real)  # uses no instance state
    metric = build_metric("fvd:cd-fvd-i3d")
    _feed(metric, real, fake, batch=16)
    assert metric.compute().value == pytest.approx(float(expected), rel=1e-9)


@pytest.mark.parametrize("name", ["fvd:tats", "fvd:videogpt"])
def test_tats_videogpt_equal_torch_reference(name):
    """TATS/VideoGPT compute mean, covariance and the SVD square roots in float32 torch."""
    real, fake = _features(2000, 16, seed=4), _features(1500, 16, seed=5, shift=0.2)
    expected = float(tats_frechet_distance(torch.from_numpy(real), torch.from_numpy(fake)))
    metric = build_metric(name)
    _feed(metric, real, fake, batch=256)
    assert metric.compute().value == pytest.approx(expected, rel=1e-4)


def test_tfgan_svd_and_scipy_sqrtm_agree_when_well_conditioned():
    rng = np.random.RandomState(6)
    scales = rng.uniform(0.5, 2.0, 32)
    real = (rng.normal(size=(3000, 32)) * scales).astype(np.float32)
    fake = (rng.normal(size=(3000, 32)) * scales[::-1] + 0.05).astype(np.float32)
    mu1, s1 = real.mean(0, dtype=np.float64), np.cov(real.astype(np.float64), rowvar=False)
    mu2, s2 = fake.mean(0, dtype=np.float64), np.cov(fake.astype(np.float64), rowvar=False)
    assert np.linalg.cond(s1) < 1e3 and np.linalg.cond(s2) < 1e3
    svd = frechet_distance(mu1, s1, mu2, s2, "svd-tfgan").value
    scipy_real = frechet_distance(mu1, s1, mu2, s2, "scipy-real").value
    assert svd == pytest.approx(scipy_real, rel=1e-9)


def test_shards_merge_to_the_single_process_value():
    real, fake = _features(500, 20, seed=8), _features(400, 20, seed=9, shift=0.2)
    whole = build_metric("fvd:styleganv")
    _feed(whole, real, fake)
    a, b = build_metric("fvd:styleganv"), build_metric("fvd:styleganv")
    _feed(a, real[:123], fake[:300])
    _feed(b, real[123:], fake[300:])
    a.merge_state(b.state_dict())
    assert (a.n_real, a.n_fake) == (500, 400)
    assert a.compute().value == pytest.approx(whole.compute().value, rel=1e-12)
