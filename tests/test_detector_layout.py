"""Channels-last detector weights (``evalkit.metrics.layout``) give the contiguous network's features."""

from __future__ import annotations

import warnings

import pytest
import torch

from evalkit import weights
from evalkit.errors import ConfigError
from evalkit.metrics.base import build_detector
from evalkit.metrics.detectors.i3d_pytorch import build_i3d
from evalkit.metrics.detectors.i3d_pytorch_detectors import preprocess_tats
from evalkit.metrics.detectors.i3d_torchscript import StyleGANVI3D, script_module
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


@pytest.fixture(scope="module")
def i3d_files(tmp_path_factory) -> dict[str, str]:
    """One random-weight I3D as cd-fvd's state dict and as StyleGAN-V's TorchScript, BatchNorm calibrated.

    With fresh running statistics a random I3D's logits differ between inputs by about 4e-7, below the
    comparison's tolerance, so a broken layout could pass; one training-mode pass sets the statistics.
    """
    net = build_i3d(None, seed=0)
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the pass
    net.train()
    with torch.no_grad():
        net(preprocess_tats(videos(seed=1)))
    net.eval()
    folder = tmp_path_factory.mktemp("i3d")
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, folder / "i3d_pretrained_400.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is the reference's format
        torch.jit.save(script_module(StyleGANVI3D(net).eval()), str(folder / "i3d_torchscript.pt"))
    return {"i3d-pretrained-400": str(folder / "i3d_pretrained_400.pt"),
            "i3d-torchscript": str(folder / "i3d_torchscript.pt")}


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
def test_channels_last_features_match_contiguous(name, monkeypatch, i3d_files):
    clips = videos()
    built = {}
    if name.startswith("inception"):
        clips = clips[:, :4]  # frame-wise networks: 8 frames are enough
    for layout in ("contiguous", "channels_last"):
        monkeypatch.setenv(LAYOUT_ENV, layout)
        with weights.overrides(i3d_files):  # Inception and C3D: seeded random weights
            det = build_detector(name, allow_random_weights=True)
        fmt = torch.channels_last if det.conv_dims == 2 else torch.channels_last_3d
        kernels = conv_weights(det)
        assert kernels, f"{name}: no convolution weights found"
        assert det.channels_last == (layout == "channels_last")
        if layout == "channels_last":
            assert all(w.is_contiguous(memory_format=fmt) for w in kernels), f"{name}: weights not channels-last"
        else:  # 1x1 kernels are both; the others tell the layouts apart
            assert all(w.is_contiguous() for w in kernels)
            assert not all(w.is_contiguous(memory_format=fmt) for w in kernels)
        built[layout] = det(clips).double()
    ref, fast = built["contiguous"], built["channels_last"]
    atol = 1e-5 * float(ref.abs().max())
    spread = float((ref - ref.mean(0)).abs().max())
    assert spread > 100 * atol, f"{name}: features differ between inputs by {spread:.3g} only; the check would be vacuous"
    # the same arithmetic in another summation order: float32 rounding only
    assert torch.allclose(fast, ref, rtol=1e-4, atol=atol), f"{name}: max difference {float((fast - ref).abs().max()):.3g}"
