"""Video IS: the C3D chain against an independent functional transcription of TGANv2's, and both IS
conventions against the formulas of StyleGAN-V (``isv``) and TGANv2 (``inception_score``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evalkit import weights
from evalkit.errors import InputError, WeightsError
from evalkit.metrics.base import build_detector, build_metric
from evalkit.metrics.detectors.c3d import load_tgan2_c3d

torch.set_num_threads(1)
CONVS = ["conv1a", "conv2a", "conv3a", "conv3b", "conv4a", "conv4b", "conv5a", "conv5b"]
CHANNELS = [3, 64, 128, 256, 256, 512, 512, 512, 512]


@pytest.fixture(scope="module")
def chainer_files(tmp_path_factory):
    """Random arrays in TGANv2's npz layout (``conv1a/W`` ...) and a mean2.npz (3, 16, 128, 171)."""
    rng = np.random.default_rng(0)

    def normal(std, shape):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)

    params = {}
    for name, cin, cout in zip(CONVS, CHANNELS[:-1], CHANNELS[1:]):
        params[f"{name}/W"] = normal(np.sqrt(2.0 / (27 * cin)), (cout, cin, 3, 3, 3))
        params[f"{name}/b"] = normal(0.01, cout)
    for name, cin, cout in (("fc6", 8192, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 101)):
        params[f"{name}/W"] = normal(np.sqrt(2.0 / cin), (cout, cin))
        params[f"{name}/b"] = normal(0.01, cout)
    mean = rng.uniform(60, 140, (3, 16, 128, 171)).astype(np.float32)
    folder = tmp_path_factory.mktemp("tgan2")
    np.savez(folder / "conv3d_deepnetA_ucf.npz", **params)
    np.savez(folder / "mean2.npz", mean=mean)
    return folder, params, mean


def _tgan2_chain(x_pm1: torch.Tensor, params: dict, mean: np.ndarray) -> torch.Tensor:
    """TGANv2 ``C3DVersion1UCF101`` + softmax, written with functional ops and explicit -inf padding."""
    pre = torch.zeros(3, 3, 1, 1, 1)
    pre[[0, 1, 2], [2, 1, 0]] = 128
    h = F.conv3d(x_pm1, pre)
    n, c, t, hh, ww = h.shape
    h = F.interpolate(h.permute(0, 2, 1, 3, 4).reshape(n * t, c, hh, ww), size=(112, 112), mode="bilinear",
                      align_corners=True).reshape(n, t, c, 112, 112).permute(0, 2, 1, 3, 4)
    h = h + torch.from_numpy(128 - mean[:, :, 8:120, 8:120])

    def pool(h, k):  # chainer max_pooling_nd(cover_all=True): pad the end with -inf up to a full window
        pads = []
        for size, kk in zip(reversed(h.shape[2:]), reversed(k)):
            out = -(-(size - kk) // kk) + 1
            pads += [0, (out - 1) * kk + kk - size]
        return F.max_pool3d(F.pad(h, pads, value=float("-inf")), k, k)

    def conv(h, name):
        return F.relu(F.conv3d(h, torch.from_numpy(params[f"{name}/W"]), torch.from_numpy(params[f"{name}/b"]),
                               padding=1))

    h = pool(conv(h, "conv1a"), (1, 2, 2))
    h = pool(conv(h, "conv2a"), (2, 2, 2))
    h = pool(conv(conv(h, "conv3a"), "conv3b"), (2, 2, 2))
    h = pool(conv(conv(h, "conv4a"), "conv4b"), (2, 2, 2))
    h = pool(conv(conv(h, "conv5a"), "conv5b"), (2, 2, 2))
    assert h.shape[2:] == (1, 4, 4)
    h = h.reshape(n, -1)
    for name in ("fc6", "fc7"):
        h = F.relu(F.linear(h, torch.from_numpy(params[f"{name}/W"]), torch.from_numpy(params[f"{name}/b"])))
    logits = F.linear(h, torch.from_numpy(params["fc8/W"]), torch.from_numpy(params["fc8/b"]))
    return torch.softmax(logits, dim=1)


def _videos(n: int, t: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, t, h, w, 3), generator=g, dtype=torch.uint8)


def test_c3d_chain_through_registry_equals_tgan2_transcription(tmp_path, chainer_files):
    folder, params, mean = chainer_files
    chain = load_tgan2_c3d(str(folder / "conv3d_deepnetA_ucf.npz"), str(folder / "mean2.npz"))
    # Ship it the way StyleGAN-V does: a TorchScript file taking uint8 BCTHW and returning probabilities.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(chain), str(tmp_path / "c3d_ucf101.pt"))
    weights.add("c3d-ucf101", tmp_path / "c3d_ucf101.pt")
    detector = build_detector("c3d-ucf101")
    assert detector.comparable  # the entry has no published digest
    videos = _videos(1, 16, 40, 52, seed=0)
    probs = detector(videos)
    x = videos.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0
    with torch.no_grad():
        expected = _tgan2_chain(x, params, mean)
    assert probs.shape == (1, 101)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(1))
    torch.testing.assert_close(probs, expected, rtol=1e-4, atol=1e-6)


def test_c3d_needs_exactly_16_frames_and_uint8():
    detector = build_detector("c3d-ucf101", allow_random_weights=True)
    assert detector.comparable is False
    with pytest.raises(InputError, match="exactly 16 frames"):
        detector(_videos(1, 15, 16, 16, seed=0))
    with pytest.raises(InputError, match="exactly 16 frames"):
        detector(_videos(1, 17, 16, 16, seed=0))
    with pytest.raises(InputError, match="uint8"):
        detector(torch.zeros(1, 16, 16, 16, 3))


def test_chainer_npz_missing_array(tmp_path):
    np.savez(tmp_path / "broken.npz", **{"conv1a/W": np.zeros((64, 3, 3, 3, 3), np.float32)})
    np.savez(tmp_path / "mean2.npz", mean=np.zeros((3, 16, 128, 171), np.float32))
    with pytest.raises(WeightsError, match="conv1a/b"):
        load_tgan2_c3d(str(tmp_path / "broken.npz"), str(tmp_path / "mean2.npz"))


# ------------------------------------------------------------------------------------------ IS formulas


def _styleganv_isv(probs: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
    """StyleGAN-V ``compute_isv``: RandomState(42) shuffle, splits at i*N//k, no epsilon."""
    probs = probs.copy()
    np.random.RandomState(42).shuffle(probs)
    n = len(probs)
    scores = []
    for i in range(num_splits):
        part = probs[i * n // num_splits : (i + 1) * n // num_splits]
        kl = part * (np.log(part) - np.log(np.mean(part, axis=0, keepdims=True)))
        scores.append(np.exp(np.mean(np.sum(kl, axis=1))))
    return float(np.mean(scores)), float(np.std(scores))


def _tgan2_runs(probs: np.ndarray, n_loops: int = 10, eps: float = 1e-20) -> tuple[float, float]:
    """TGANv2 ``compute_inception_score.py``: each run is ``inception_score(..., splits=1)``."""
    per_run = len(probs) // n_loops
    scores = []
    for r in range(n_loops):
        part = probs[r * per_run : (r + 1) * per_run] + eps
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return float(np.mean(scores)), float(np.std(scores))


def _probs(n: int, seed: int, concentration: float = 0.3) -> np.ndarray:
    rng = np.random.RandomState(seed)
    p = rng.dirichlet(np.full(101, concentration), size=n).astype(np.float32)
    return p / p.sum(axis=1, keepdims=True, dtype=np.float32)


@pytest.mark.parametrize("n", [2048, 1000])
def test_is_styleganv_equals_reference_formula(n):
    probs = _probs(n, seed=n)
    metric = build_metric("is:c3d-styleganv")
    assert metric.detector == "c3d-ucf101" and metric.higher_is_better
    for chunk in np.array_split(probs, 7):
        metric.update(torch.from_numpy(chunk), real=False)
    value = metric.compute()
    mean, std = _styleganv_isv(probs.astype(np.float64))
    assert value.value == pytest.approx(mean, rel=1e-12)
    assert value.std == pytest.approx(std, rel=1e-9)


def test_is_tgan2_equals_reference_formula():
    probs = _probs(10 * 256, seed=3, concentration=0.05)
    probs[0, :] = 0.0
    probs[0, 5] = 1.0  # exact zeros: TGANv2's epsilon keeps the score finite
    metric = build_metric("is:c3d-tgan2")
    metric.update(probs, real=False)
    value = metric.compute()
    mean, std = _tgan2_runs(probs.astype(np.float64))
    assert np.isfinite(value.value)
    assert value.value == pytest.approx(mean, rel=1e-12)
    assert value.std == pytest.approx(std, rel=1e-9)
    assert value.details["split_scores"][0] != value.details["split_scores"][1]


def test_is_styleganv_zero_probability_raises_instead_of_nan():
    """StyleGAN-V has no epsilon: 0 * log(0) makes its score NaN; we stop with the reason."""
    probs = _probs(100, seed=4)
    probs[3, :] = 0.0
    probs[3, 0] = 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        assert np.isnan(_styleganv_isv(probs.astype(np.float64))[0])
    metric = build_metric("is:c3d-styleganv")
    metric.update(probs, real=False)
    with pytest.raises(InputError, match="eps"):
        metric.compute()


def test_is_of_random_c3d_on_videos_is_between_1_and_classes():
    detector = build_detector("c3d-ucf101", allow_random_weights=True)
    probs = detector(_videos(2, 16, 24, 24, seed=5))
    metric = build_metric("is:c3d-tgan2")
    metric.update(torch.cat([probs] * 10), real=False)
    value = metric.compute().value
    assert 1.0 - 1e-6 <= value <= 101.0
