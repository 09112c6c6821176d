"""FVD detectors against the reference code paths on the same random weights and inputs.

The PyTorch I3D path is compared with cd-fvd 0.1.1 itself (its ``pytorch_i3d.py`` is TATS's, its
``preprocess_i3d`` is TATS's preprocessing); VideoGPT's preprocessing with an independent per-video
transcription of ``videogpt/data.py``; the StyleGAN-V TorchScript detector with TorchScript files saved
by the test (the exact call signature) and loaded through the weights registry.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cdfvd.fvd import cdfvd as CdFvd
from cdfvd.third_party.i3d.pytorch_i3d import InceptionI3d as RefInceptionI3d
from cdfvd.third_party.i3d.utils import preprocess_i3d as ref_preprocess_i3d

from evalkit import weights
from evalkit.errors import InputError, WeightsError
from evalkit.metrics.base import build_detector, build_metric
from evalkit.metrics.detectors.i3d_pytorch import InceptionI3d, temporal_steps_after_backbone
from evalkit.metrics.detectors.i3d_pytorch_detectors import (
    cdfvd_loader_transform,
    preprocess_tats,
    preprocess_videogpt,
)
from evalkit.metrics.detectors.i3d_torchscript import StyleGANVI3D, build_styleganv_i3d, script_module

torch.set_num_threads(1)

# bit-level comparisons: the reference form (the default fast form is checked in test_detector_form.py)
pytestmark = pytest.mark.usefixtures("reference_form")


def _jit_save(module, path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(module, str(path))


def _videos(n: int, t: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, t, h, w, 3), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory) -> str:
    """A random-weight ``i3d_pretrained_400.pt`` in the converter's format (no num_batches_tracked).

    BatchNorm running statistics come from one training-mode pass over random clips: with made-up
    statistics the logits of different videos differ by about 1e-7, and a comparison at atol 1e-5 could
    not tell a wrong input from a right one. Calibrated, they differ by about 0.1.
    """
    torch.manual_seed(1234)
    ref = RefInceptionI3d(400, in_channels=3)
    for module in ref.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration pass
    ref.train()
    with torch.no_grad():
        ref(ref_preprocess_i3d(_videos(4, 10, 32, 48, seed=99).numpy()))
    state = OrderedDict()
    for key, value in ref.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        state[key] = value.clone()
    path = tmp_path_factory.mktemp("i3d") / "i3d_pretrained_400.pt"
    torch.save(state, path)
    return str(path)


def test_state_dict_keys_match_pytorch_i3d():
    assert set(InceptionI3d().state_dict()) == set(RefInceptionI3d(400, in_channels=3).state_dict())


def test_min_frames_arithmetic():
    assert temporal_steps_after_backbone(9) == 2
    assert temporal_steps_after_backbone(8) == 1
    assert temporal_steps_after_backbone(16) == 2


def test_tats_preprocessing_equals_cdfvd():
    videos = _videos(2, 3, 36, 64, seed=0)
    ours = preprocess_tats(videos)
    ref = ref_preprocess_i3d(videos.numpy())
    assert ours.shape == (2, 3, 3, 224, 224)
    assert torch.equal(ours, ref)


def _videogpt_reference(videos: np.ndarray, resolution: int = 224) -> torch.Tensor:
    """Per-video transcription of VideoGPT ``data.preprocess`` + ``fvd.preprocess`` (x2)."""
    out = []
    for video in torch.from_numpy(videos):
        v = video.permute(0, 3, 1, 2).float() / 255.0
        t, c, h, w = v.shape
        scale = resolution / min(h, w)
        size = (resolution, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), resolution)
        v = F.interpolate(v, size=size, mode="bilinear", align_corners=False)
        t, c, h, w = v.shape
        ws, hs = (w - resolution) // 2, (h - resolution) // 2
        v = v[:, :, hs : hs + resolution, ws : ws + resolution].permute(1, 0, 2, 3).contiguous()
        v -= 0.5
        out.append(v)
    return torch.stack(out) * 2


@pytest.mark.parametrize("shape", [(36, 64), (64, 48), (224, 224), (300, 400)])
def test_videogpt_preprocessing_equals_reference(shape):
    videos = _videos(2, 2, *shape, seed=1)
    ours = preprocess_videogpt(videos)
    assert ours.shape == (2, 3, 2, 224, 224)
    assert torch.equal(ours, _videogpt_reference(videos.numpy()))


def test_cdfvd_loader_transform_equals_package():
    from cdfvd.utils.data_utils import preprocess as ref_loader

    videos = _videos(2, 4, 40, 70, seed=2)
    ours = cdfvd_loader_transform(videos, 32)
    for i in range(2):
        ref = ref_loader(videos[i], 32)["video"]  # (C, T, r, r) in [0, 1]
        ref_uint8 = (ref * 255).permute(1, 2, 3, 0).byte()  # what compute_real_stats feeds on
        assert torch.equal(ours[i], ref_uint8)


def test_i3d_cdfvd_features_and_stats_equal_cdfvd_package(i3d_file):
    """Same file through our registry and through ``cdfvd(model='i3d', ckpt_path=...)``."""
    weights.add("i3d-pretrained-400", i3d_file, force=True)  # random weights: digest differs
    detector = build_detector("i3d-cd-fvd")
    assert detector.weights_path.endswith("i3d_pretrained_400.pt")
    assert detector.comparable is False  # forced, non-reference file
    assert detector.weights_digest == weights.file_digest(i3d_file)

    real = _videos(2, 9, 24, 32, seed=3)
    ref = CdFvd(model="i3d", ckpt_path=i3d_file, device="cpu", n_real="full", n_fake="full")
    ref.add_real_stats(real.numpy())

    real_feats = detector(real)
    assert real_feats.shape == (2, 400) and real_feats.dtype == torch.float32
    metric = build_metric("fvd:cd-fvd-i3d")
    metric.update(real_feats, real=True)
    # cd-fvd keeps float64 sums of float32 features, exactly as our FeatureStats does
    assert ref.real_stats.num_items == metric.n_real == 2
    np.testing.assert_array_equal(metric.real.sum, ref.real_stats.raw_mean)
    np.testing.assert_array_equal(metric.real.outer, ref.real_stats.raw_cov)


def test_i3d_tats_and_videogpt_run_the_reference_network(i3d_file):
    """i3d-tats = cd-fvd network on TATS preprocessing; i3d-videogpt differs only by preprocessing."""
    videos = _videos(2, 10, 32, 48, seed=5)
    ref = RefInceptionI3d(400, in_channels=3)
    ref.load_state_dict(torch.load(i3d_file, weights_only=True))
    ref.eval()
    with weights.overrides({"i3d-pretrained-400": i3d_file}):
        tats = build_detector("i3d-tats")
        videogpt = build_detector("i3d-videogpt")
    with torch.no_grad():
        expected_tats = ref(ref_preprocess_i3d(videos.numpy()))
        expected_videogpt = ref(_videogpt_reference(videos.numpy()))
    # the network separates inputs far beyond the tolerance, so the comparison below has teeth
    assert (expected_tats[0] - expected_tats[1]).abs().max() > 1e-2
    assert (expected_tats - expected_videogpt).abs().max() > 1e-3
    torch.testing.assert_close(tats(videos), expected_tats, rtol=0, atol=1e-5)
    torch.testing.assert_close(videogpt(videos), expected_videogpt, rtol=0, atol=1e-5)


class _SignatureProbe(torch.nn.Module):
    """Tiny stand-in with StyleGAN-V's I3D signature; refuses anything but uint8 BCTHW + all flags."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 400)

    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> torch.Tensor:
        if x.dtype != torch.uint8:
            raise RuntimeError("expected uint8 input")
        if not (rescale and resize and return_features):
            raise RuntimeError("expected rescale=True, resize=True, return_features=True")
        if x.shape[1] != 3:
            raise RuntimeError("expected channels in dimension 1 (BCTHW)")
        pooled = x.float().mean(dim=(2, 3, 4)) * (2.0 / 255.0) - 1.0
        return self.proj(pooled)


def test_torchscript_detector_calls_with_styleganv_signature(tmp_path):
    torch.manual_seed(0)
    probe = script_module(_SignatureProbe().eval())
    path = tmp_path / "i3d_torchscript.pt"
    _jit_save(probe, path)
    weights.add("i3d-torchscript", path, force=True)
    detector = build_detector("i3d-torchscript")
    videos = _videos(3, 9, 20, 30, seed=6)
    feats = detector(videos)
    expected = probe(videos.permute(0, 4, 1, 2, 3).contiguous(), rescale=True, resize=True, return_features=True)
    assert feats.shape == (3, 400)
    torch.testing.assert_close(feats, expected.detach(), rtol=0, atol=0)
    assert detector.comparable is False


def test_random_weight_torchscript_i3d_roundtrip(tmp_path):
    """The seeded stand-in scripts, saves and reloads; it equals TATS preprocessing on the same seed."""
    scripted = build_styleganv_i3d(seed=0)
    path = tmp_path / "i3d_torchscript.pt"
    _jit_save(scripted, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(path))
    videos = _videos(1, 9, 24, 24, seed=7)
    with weights.overrides({"i3d-torchscript": path}):
        from_file = build_detector("i3d-torchscript")(videos)
    random_build = build_detector("i3d-torchscript", allow_random_weights=True)
    assert random_build.comparable is False and random_build.weights_digest == "random-seed0"
    for key, value in loaded.state_dict().items():
        assert torch.equal(random_build.model.state_dict()[key], value), key
    tats_random = build_detector("i3d-tats", allow_random_weights=True)
    bcthw = videos.permute(0, 4, 1, 2, 3).contiguous()
    with torch.no_grad():
        direct = loaded(bcthw, rescale=True, resize=True, return_features=True)
    torch.testing.assert_close(from_file, direct, rtol=0, atol=0)
    # the stand-in's internal preprocessing is TATS's squash-resize and scaling
    torch.testing.assert_close(tats_random(videos), direct, rtol=0, atol=1e-5)
    assert isinstance(StyleGANVI3D(InceptionI3d()), torch.nn.Module)


def test_missing_weights_error_names_file_url_and_command():
    with pytest.raises(WeightsError) as info:
        build_detector("i3d-torchscript")
    message = str(info.value)
    assert "i3d_torchscript.pt" in message and "dropbox.com" in message and "evalkit weights add" in message


def test_bad_torchscript_file_is_a_weights_error(tmp_path):
    bad = tmp_path / "i3d_torchscript.pt"
    bad.write_bytes(b"not a zip archive")
    with weights.overrides({"i3d-torchscript": bad}), pytest.raises(WeightsError, match="i3d_torchscript.pt"):
        build_detector("i3d-torchscript")


@pytest.mark.parametrize("name", ["i3d-torchscript", "i3d-tats", "i3d-videogpt", "i3d-cd-fvd"])
def test_bad_input_is_rejected_before_the_network(name):
    detector = build_detector(name, allow_random_weights=True)
    with pytest.raises(InputError, match="at least 9 frames"):
        detector(_videos(2, 8, 16, 16, seed=0))
    with pytest.raises(InputError, match="uint8"):
        detector(torch.rand(1, 9, 16, 16, 3))
    with pytest.raises(InputError, match=r"\(B, T, H, W, 3\)"):
        detector(torch.zeros(1, 9, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(InputError, match=r"\(B, T, H, W, 3\)"):
        detector(torch.zeros(9, 16, 16, 3, dtype=torch.uint8))
