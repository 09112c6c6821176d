"""Channels-last detector weights (``evalkit.metrics.layout``) give the contiguous network's features."""

from __future__ import annotations

import pytest
import torch

from evalkit.errors import ConfigError
from evalkit.metrics.base import build_detector
from evalkit.metrics.layout import LAYOUT_ENV, requested_layout, uses_channels_last

CONV_DETECTORS = ["inception-pytorch-fid", "inception-legacy-pytorch", "inception-clean", "i3d-torchscript",
                  "i3d-cd-fvd", "c3d-ucf101"]


def conv_weights(detector) -> list[torch.Tensor]:
    modules = [getattr(detector, name) for name in ("model", "layers") if hasattr(detector, name)]
    return [p for m in modules for p in m.parameters() if p.dim() == 2 + detector.conv_dims]


def videos(seed: int = 0) -> torch.Tensor:
    """Two 16-frame clips: smooth colour ramps plus noise, so features differ between inputs."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, 32)
    base = (ramp[None, None, :, None, None] * torch.rand(2, 1, 1, 1, 3, generator=g) * 200
            + ramp[None, :16, None, None, None] * 40)
    noise = torch.rand(2, 16, 32, 32, 3, generator=g) * 15
    return (base + noise).clamp(0, 255).to(torch.uint8)


def test_layout_setting(monkeypatch):
    monkeypatch.delenv(LAYOUT_ENV, raising=False)
    assert requested_layout() == "auto"
    assert uses_channels_last(torch.device("cpu"))
    assert not uses_channels_last(torch.device("cuda"))  # unmeasured there: the references' layout
    assert uses_channels_last(torch.device("cuda"), "channels_last")
    assert not uses_channels_last(torch.device("cpu"), "contiguous")
    monkeypatch.setenv(LAYOUT_ENV, "NHWC")
    with pytest.raises(ConfigError, match="EVALKIT_DETECTOR_LAYOUT='nhwc'.*auto, channels_last, contiguous"):
        requested_layout()


@pytest.mark.parametrize("name", CONV_DETECTORS)
def test_channels_last_features_match_contiguous(name, monkeypatch):
    clips = videos()
    built = {}
    if name.startswith("inception"):
        clips = clips[:, :4]  # frame-wise networks: 8 frames are enough
    for layout in ("contiguous", "channels_last"):
        monkeypatch.setenv(LAYOUT_ENV, layout)
        det = build_detector(name, allow_random_weights=True)
        fmt = torch.channels_last if det.conv_dims == 2 else torch.channels_last_3d
        weights = conv_weights(det)
        assert weights, f"{name}: no convolution weights found"
        assert det.channels_last == (layout == "channels_last")
        if layout == "channels_last":
            assert all(w.is_contiguous(memory_format=fmt) for w in weights), f"{name}: weights not channels-last"
        else:  # 1x1 kernels are both; the others tell the layouts apart
            assert all(w.is_contiguous() for w in weights)
            assert not all(w.is_contiguous(memory_format=fmt) for w in weights)
        built[layout] = det(clips).double()
    ref, fast = built["contiguous"], built["channels_last"]
    spread = (ref - ref.mean(0)).abs().max()
    assert spread > 0, f"{name}: features do not depend on the input; the comparison would be vacuous"
    # the same arithmetic in another summation order: float32 rounding only
    assert torch.allclose(fast, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max())), (
        f"{name}: max difference {float((fast - ref).abs().max()):.3g}")
