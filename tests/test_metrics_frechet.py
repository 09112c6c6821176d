"""Fréchet distance: pytorch-fid's function, an independent eigen write-out, and the metric class."""

import warnings

import numpy as np
import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance

from evalkit.errors import InputError
from evalkit.metrics.frechet import SQRT_METHODS, FrechetError, FrechetMetric, frechet_distance


def _sets(n: int = 300, d: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    a = rng.normal(size=(n, d)) @ mix + 0.3
    b = rng.normal(size=(n + 37, d)) @ (mix + 0.2 * rng.normal(size=(d, d)) / np.sqrt(d)) - 0.1
    return a, b


def _moments(x, ddof=1):
    return x.mean(axis=0), np.cov(x, rowvar=False, ddof=ddof)


def _eigen_reference(mu1, s1, mu2, s2):
    """Independent write-out: Tr sqrt(S1 S2) = sum of sqrt of eigenvalues of sqrt(S1) S2 sqrt(S1)."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(inner, 0, None))))


def _pytorch_fid(mu1, s1, mu2, s2) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pytorch-fid passes sqrtm(disp=False)
        return float(calculate_frechet_distance(mu1, s1, mu2, s2))


def test_matches_pytorch_fid_function_by_both_routes():
    a, b = _sets()
    mu1, s1 = _moments(a)
    mu2, s2 = _moments(b)
    expected = _pytorch_fid(mu1, s1, mu2, s2)
    fast = frechet_distance(mu1, s1, mu2, s2, "scipy-pytorch-fid", n1=len(a), n2=len(b))
    assert fast.trace_route == "eigenvalues" and fast.sqrtm_residual is None
    assert fast.details()["trace_route"] == "eigenvalues"
    assert fast.value == pytest.approx(expected, rel=1e-12)
    full = frechet_distance(mu1, s1, mu2, s2, "scipy-pytorch-fid", trace="sqrtm")
    assert full.trace_route == "sqrtm" and full.value == expected  # the same expression, bit for bit
    assert full.method == "scipy-pytorch-fid" and not full.retried
    assert full.sqrtm_residual is not None and full.sqrtm_residual < 1e-8
    with pytest.raises(InputError, match="trace='eig'"):
        frechet_distance(mu1, s1, mu2, s2, trace="eig")


def test_eigenvalue_route_at_inception_size_and_fallbacks():
    """D = 256 features from a rectified low-rank mixture (like pooled CNN features): the eigenvalue
    route matches pytorch-fid when N > D; with N <= D, or an explicitly singular product, the reference
    sqrtm runs and gives pytorch-fid's own number."""
    rng = np.random.default_rng(11)
    d = 256
    basis = rng.normal(size=(32, d))

    def features(n, shift):
        return np.maximum(rng.normal(size=(n, 32)) @ basis * 0.1 + rng.normal(size=(n, d)) * 0.3 + shift, 0)

    for n, route in ((600, "eigenvalues"), (200, "sqrtm")):
        a, b = features(n, 0.0), features(n + 13, 0.05)
        mu1, s1 = _moments(a)
        mu2, s2 = _moments(b)
        expected = _pytorch_fid(mu1, s1, mu2, s2)
        got = frechet_distance(mu1, s1, mu2, s2, "scipy-pytorch-fid", n1=len(a), n2=len(b))
        assert got.trace_route == route
        if route == "sqrtm":
            assert got.value == expected
        else:
            assert got.value == pytest.approx(expected, rel=1e-10)
    # without counts the eigenvalues themselves reveal the singular product (rank <= 200 < 256)
    singular = frechet_distance(mu1, s1, mu2, s2, "scipy-pytorch-fid")
    assert singular.trace_route == "sqrtm" and singular.value == expected


@pytest.mark.parametrize("method", SQRT_METHODS)
def test_every_method_matches_independent_eigen_write_out(method):
    a, b = _sets(seed=3)
    mu1, s1 = _moments(a)
    mu2, s2 = _moments(b)
    expected = _eigen_reference(mu1, s1, mu2, s2)
    got = frechet_distance(mu1, s1, mu2, s2, method)
    rel = 1e-4 if method == "svd-torch" else 1e-8  # svd-torch runs in float32 like VideoGPT/TATS
    assert got.value == pytest.approx(expected, rel=rel)
    assert expected > 0.1


def test_svd_torch_equals_videogpt_style_computation_on_features():
    a, b = _sets(n=200, d=8, seed=5)
    x1, x2 = torch.from_numpy(a).float(), torch.from_numpy(b).float()

    def cov(m):
        m = m.t()
        centred = m - m.mean(dim=1, keepdim=True)
        return centred @ centred.t() / (m.size(1) - 1)

    def root(mat):
        u, s, vh = torch.linalg.svd(mat)
        return u @ torch.diag(torch.where(s < 1e-10, s, s.sqrt())) @ vh

    s1, s2 = cov(x1), cov(x2)
    r = root(s1)
    expected = torch.trace(s1 + s2) - 2 * torch.trace(root(r @ s2 @ r)) + ((x1.mean(0) - x2.mean(0)) ** 2).sum()
    got = frechet_distance(*_moments(a), *_moments(b), "svd-torch")
    assert got.value == pytest.approx(float(expected), rel=1e-4)


def test_identical_statistics_give_zero_not_negative():
    a, _ = _sets(seed=7)
    mu, s = _moments(a)
    for method in SQRT_METHODS:
        got = frechet_distance(mu, s, mu, s, method)
        assert 0.0 <= got.value < 1e-6 * np.trace(s)
        if got.raw_value < 0:
            assert got.value == 0.0 and any("clamped" in w for w in got.warnings)


def test_pytorch_fid_imaginary_rule_raises():
    s1 = np.diag([1.0, -1.0])  # sqrtm has an imaginary diagonal entry of 1
    s2 = np.eye(2)
    mu = np.zeros(2)
    with pytest.raises(FrechetError, match="Imaginary component"):
        frechet_distance(mu, s1, mu, s2, "scipy-pytorch-fid")
    with pytest.raises(ValueError, match="Imaginary component"):  # pytorch-fid itself agrees
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            calculate_frechet_distance(mu, s1, mu, s2)


def test_clearly_negative_value_raises():
    mu = np.zeros(2)
    s1 = np.diag([1.0, 1.0])
    s2 = np.diag([4.0, 4.0])
    # A non-PSD "covariance" makes the expression meaningless and negative: Tr(0) + Tr(-I) = -2.
    with pytest.raises(FrechetError, match="negative"):
        frechet_distance(mu, np.zeros((2, 2)), mu, -np.eye(2), "svd-tfgan")
    assert frechet_distance(mu, s1, mu, s2, "svd-tfgan").value == pytest.approx(2.0)


def test_few_samples_warn_and_bad_inputs_raise():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 10))
    b = rng.normal(size=(6, 10))
    got = frechet_distance(*_moments(a), *_moments(b), "svd-tfgan", n1=6, n2=6)
    assert any("N <= D" in w for w in got.warnings)
    with pytest.raises(InputError, match="equal length"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(InputError, match="NaN"):
        frechet_distance(np.zeros(2), np.eye(2) * np.nan, np.zeros(2), np.eye(2))
    with pytest.raises(InputError, match="unknown method"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), "sqrtm")


class _StyleGANVLike(FrechetMetric):
    name, variant, detector = "fd", "test-n", "none"
    cov_divisor, sqrt_method, real_first = "N", "scipy-real", False


class _PytorchFidLike(FrechetMetric):
    name, variant, detector = "fd", "test", "none"
    cov_divisor, sqrt_method = "N-1", "scipy-pytorch-fid"


def test_metric_streams_and_merges_like_one_pass():
    a, b = _sets(seed=11)
    single = _PytorchFidLike()
    single.update(a, real=True)
    single.update(b, real=False)
    shards = [_PytorchFidLike() for _ in range(2)]
    for rank, shard in enumerate(shards):
        shard.update(torch.from_numpy(a[rank::2]), real=True)
        shard.update(torch.from_numpy(b[rank::2]), real=False)
    merged = _PytorchFidLike()
    for shard in shards:
        merged.merge_state(shard.state_dict())
    v1, v2 = single.compute(), merged.compute()
    assert v2.value == pytest.approx(v1.value, rel=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        expected = calculate_frechet_distance(*_moments(a), *_moments(b))
    assert v1.value == pytest.approx(expected, rel=1e-6)
    assert v1.details["sqrt_method"] == "scipy-pytorch-fid" and v1.details["cov_divisor"] == "N-1"
    assert (merged.n_real, merged.n_fake) == (len(a), len(b))


def test_styleganv_conventions_divisor_n_and_order():
    a, b = _sets(seed=13)
    metric = _StyleGANVLike()
    metric.update(a, real=True)
    metric.update(b, real=False)
    mu_r, s_r = _moments(a, ddof=0)
    mu_g, s_g = _moments(b, ddof=0)
    import scipy.linalg

    s = scipy.linalg.sqrtm(s_g @ s_r)
    expected = float(np.real(np.square(mu_g - mu_r).sum() + np.trace(s_g + s_r - 2 * s)))
    assert metric.compute().value == pytest.approx(expected, rel=1e-9)


def test_real_moments_and_cached_state_match_features():
    a, b = _sets(seed=17)
    from_features = _PytorchFidLike()
    from_features.update(a, real=True)
    from_features.update(b, real=False)
    from_moments = _PytorchFidLike()
    from_moments.set_real_moments(*_moments(a), count=len(a))
    from_moments.update(b, real=False)
    from_cache = _PytorchFidLike()
    from_cache.load_real_state(from_features.real.state_dict())
    from_cache.update(b, real=False)
    expected = from_features.compute().value
    assert from_moments.compute().value == pytest.approx(expected, rel=1e-8)
    assert from_cache.compute().value == pytest.approx(expected, rel=1e-12)
    with pytest.raises(InputError, match="real moments"):
        from_moments.update(a, real=True)


def test_metric_state_size_constant_and_too_few_samples():
    metric = _PytorchFidLike()
    sizes = []
    for n in (5, 500):
        metric.reset()
        metric.update(np.random.default_rng(n).normal(size=(n, 4)), real=False)
        sizes.append(sum(v.nbytes for v in metric.state_dict().values()))
    assert sizes[0] == sizes[1]
    with pytest.raises(InputError, match="at least 2 real"):
        metric.compute()
