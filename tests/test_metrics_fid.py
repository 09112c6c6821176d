"""Frame FID detectors and variants against pytorch-fid itself and clean-fid's documented steps.

Weight files are built in the real formats with seeded random weights: a pytorch-fid Inception state
dict (``torch.save``) and a TorchScript module with the ``layers`` submodule clean-fid calls. They go
through the weights registry (``--weights NAME=FILE`` overrides) and the same loaders as real files.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from pytorch_fid import fid_score
from pytorch_fid import inception as pfi

from evalkit import weights as W
from evalkit.errors import InputError, WeightsError
from evalkit.metrics.base import build_detector, build_metric
from evalkit.metrics.detectors.inception import fid_inception_network, random_init_

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def fid_weights(tmp_path_factory) -> Path:
    """A pytorch-fid Inception state dict with seeded random weights, in the format of the real file."""
    net = random_init_(fid_inception_network(None), seed=123)
    path = tmp_path_factory.mktemp("weights") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def videos() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (2, 2, 24, 20, 3), generator=gen, dtype=torch.uint8)
    fake = (real.int() // 2 + 60).to(torch.uint8)
    return real, fake


@pytest.fixture(scope="module")
def pytorch_fid_detector(fid_weights):
    with W.overrides({"pytorch-fid-inception": fid_weights}):
        return build_detector("inception-pytorch-fid")


def _reference_model(path: Path) -> pfi.InceptionV3:
    """pytorch-fid's own InceptionV3, with its download replaced by our file."""
    original = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = lambda *a, **k: torch.load(path, weights_only=True)
    try:
        return pfi.InceptionV3([3]).eval()
    finally:
        pfi.load_state_dict_from_url = original


def _write_pngs(frames: torch.Tensor, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, frame in enumerate(frames.reshape(-1, *frames.shape[2:]).numpy()):
        path = folder / f"{i:03d}.png"
        Image.fromarray(frame).save(path)
        files.append(str(path))
    return files


@pytest.fixture(scope="module")
def features(pytorch_fid_detector, videos) -> tuple[torch.Tensor, torch.Tensor]:
    real, fake = videos
    return pytorch_fid_detector(real), pytorch_fid_detector(fake)


def test_pytorch_fid_features_equal_pytorch_fid_pipeline(pytorch_fid_detector, fid_weights, videos, features,
                                                         tmp_path):
    real, _ = videos
    files = _write_pngs(real, tmp_path / "real")
    ours = features[0].double().numpy()
    assert ours.shape == (4, 2048) and pytorch_fid_detector.per_frame
    reference = fid_score.get_activations(files, _reference_model(fid_weights), batch_size=3, dims=2048,
                                          device="cpu", num_workers=0)
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5 * np.abs(reference).max())
    assert np.abs(reference).max() > 1e-3  # random weights keep a usable activation scale
    assert pytorch_fid_detector.comparable is False  # digest differs from the published file
    assert pytorch_fid_detector.weights_digest == W.file_digest(fid_weights)


def test_fid_metric_equals_pytorch_fid_on_same_features(features):
    fr, ff = features[0].double().numpy(), features[1].double().numpy()
    # A 16-d slice keeps scipy's sqrtm fast; the 2048-d path is the same code (heavy test below).
    fr, ff = fr[:, :16], ff[:, :16]
    fr = np.concatenate([fr, fr * 1.1 + 0.01, fr[::-1] * 0.9], axis=0)
    ff = np.concatenate([ff, ff * 0.8 + 0.02, ff[::-1] * 1.2], axis=0)
    metric = build_metric("fid:pytorch-fid")
    metric.update(torch.from_numpy(fr).float(), real=True)
    metric.update(torch.from_numpy(ff).float(), real=False)
    fr32, ff32 = fr.astype(np.float32).astype(np.float64), ff.astype(np.float32).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        expected = fid_score.calculate_frechet_distance(fr32.mean(0), np.cov(fr32, rowvar=False),
                                                        ff32.mean(0), np.cov(ff32, rowvar=False))
    value = metric.compute()
    assert value.value == pytest.approx(expected, rel=1e-6)
    assert value.details["sqrt_method"] == "scipy-pytorch-fid" and value.details["cov_divisor"] == "N-1"


@pytest.mark.heavy
def test_fid_end_to_end_equals_calculate_fid_given_paths(pytorch_fid_detector, fid_weights, videos, tmp_path):
    real, fake = videos
    _write_pngs(real, tmp_path / "real")
    _write_pngs(fake, tmp_path / "fake")
    original = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = lambda *a, **k: torch.load(fid_weights, weights_only=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            expected = fid_score.calculate_fid_given_paths([str(tmp_path / "real"), str(tmp_path / "fake")],
                                                           batch_size=4, device="cpu", dims=2048, num_workers=0)
    finally:
        pfi.load_state_dict_from_url = original
    metric = build_metric("fid:pytorch-fid")
    metric.update(pytorch_fid_detector(real), real=True)
    metric.update(pytorch_fid_detector(fake), real=False)
    assert metric.compute().value == pytest.approx(expected, rel=1e-4)


def test_logits_detector_is_fc_without_bias(fid_weights, features, videos):
    real, _ = videos
    with W.overrides({"pytorch-fid-inception": fid_weights}):
        logits = build_detector("inception-pytorch-fid-logits")(real)
    state = torch.load(fid_weights, weights_only=True)
    expected = features[0] @ state["fc.weight"].T
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    assert logits.shape == (4, 1008)


def test_legacy_pytorch_follows_clean_fid_steps(fid_weights, videos):
    real, _ = videos
    with W.overrides({"pytorch-fid-inception": fid_weights}):
        ours = build_detector("inception-legacy-pytorch")(real)
    model = _reference_model(fid_weights)
    model.resize_input = False
    frames = []
    for frame in real.reshape(-1, 24, 20, 3).numpy():  # clean-fid: per image, torch bilinear on 0..255, clip
        x = torch.Tensor(frame.transpose((2, 0, 1)))[None]
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        frames.append(x[0].numpy().transpose((1, 2, 0)).clip(0, 255))
    batch = torch.from_numpy(np.stack(frames).transpose(0, 3, 1, 2))
    with torch.no_grad():
        expected = model(batch / 255)[0].squeeze(-1).squeeze(-1)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)


class _InceptionLike(torch.nn.Module):
    """The call signature of the TorchScript ``inception-2015-12-05.pt``: ``layers`` plus forward flags."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, stride=4), torch.nn.ReLU(), torch.nn.Conv2d(8, 2048, 3, stride=4),
            torch.nn.AdaptiveAvgPool2d(1),
        )

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.layers((x - 128) / 128).flatten(1)


def test_clean_detector_follows_clean_fid_steps(tmp_path, videos):
    torch.manual_seed(0)
    module = torch.jit.script(_InceptionLike().eval())
    path = tmp_path / "inception-2015-12-05.pt"
    torch.jit.save(module, str(path))
    real, _ = videos
    W.add("inception-torchscript", path)  # no published digest: installed as unverified reference
    detector = build_detector("inception-clean")
    assert detector.comparable and detector.weights_digest == W.file_digest(path)
    ours = detector(real)
    resized = []
    for frame in real.reshape(-1, 24, 20, 3).numpy():
        chans = []
        for c in range(3):
            img = Image.fromarray(frame[:, :, c].astype(np.float32), mode="F")
            chans.append(np.asarray(img.resize((299, 299), resample=Image.BICUBIC)).clip(0, 255)[:, :, None])
        resized.append(np.concatenate(chans, axis=2).transpose(2, 0, 1))
    x = torch.tensor(np.stack(resized))
    with torch.no_grad():
        expected = module.layers((x - 128) / 128).view(x.shape[0], 2048)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)


def test_random_weights_only_when_asked_and_marked():
    with pytest.raises(WeightsError) as err:
        build_detector("inception-clean")
    message = str(err.value)
    assert "inception-2015-12-05.pt" in message and "https://nvlabs-fi-cdn.nvidia.com" in message
    assert "evalkit weights add inception-torchscript" in message


def test_bad_inputs(pytorch_fid_detector):
    with pytest.raises(InputError, match="uint8"):
        pytorch_fid_detector(torch.zeros((1, 2, 8, 8, 3)))
    with pytest.raises(InputError, match=r"\(B, T, H, W, 3\)"):
        pytorch_fid_detector(torch.zeros((2, 8, 8, 3), dtype=torch.uint8))
    with pytest.raises(InputError, match="2x2"):
        pytorch_fid_detector(torch.zeros((1, 1, 1, 8, 3), dtype=torch.uint8))


def test_wrong_weight_file_is_named(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(3)}, bad)
    with W.overrides({"pytorch-fid-inception": bad}), pytest.raises(WeightsError, match="bad.pth"):
        build_detector("inception-pytorch-fid")
