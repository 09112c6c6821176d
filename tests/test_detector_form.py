"""The fast detector form (``evalkit.metrics.detector_form``: channels-last kernels, BatchNorm folded, frozen TorchScript)
gives the reference network's features."""

from __future__ import annotations

import warnings

import pytest
import torch

from evalkit import weights
from evalkit.errors import ConfigError
from evalkit.metrics.base import build_detector
from evalkit.metrics.detector_form import (
    FORM_ENV,
    fold_batchnorm,
    freeze_script,
    pad_inside,
    requested_form,
    uses_fast_form,
)
from evalkit.metrics.detectors.i3d_pytorch import build_i3d
from evalkit.metrics.detectors.i3d_pytorch_detectors import preprocess_tats, preprocess_videogpt
from evalkit.metrics.detectors.i3d_torchscript import StyleGANVI3D, script_module

CONV_DETECTORS = ["inception-pytorch-fid", "inception-legacy-pytorch", "inception-clean", "i3d-torchscript",
                  "i3d-cd-fvd", "c3d-ucf101"]


def networks(detector) -> list[torch.nn.Module]:
    return [getattr(detector, name) for name in ("model", "layers") if hasattr(detector, name)]


def frozen(module: torch.nn.Module) -> bool:
    """A frozen TorchScript module: its weights are graph constants, not parameters."""
    return isinstance(module, torch.jit.ScriptModule) and not list(module.parameters())


def graph_tensors(module: torch.jit.ScriptModule) -> list[torch.Tensor]:
    nodes = module.graph.findAllNodes("prim::Constant")
    return [n.output().toIValue() for n in nodes if n.output().type().kind() == "TensorType"]


def conv_weights(detector) -> list[torch.Tensor]:
    tensors = [t for m in networks(detector) for t in (graph_tensors(m) if frozen(m) else m.parameters())]
    return [t for t in tensors if t.dim() == 2 + detector.conv_dims]


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
    comparison's tolerance, so a broken fast form could pass; one training-mode pass sets the statistics.
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


def test_form_setting(monkeypatch):
    monkeypatch.delenv(FORM_ENV, raising=False)
    assert requested_form() == "auto"
    assert uses_fast_form(torch.device("cpu"))
    assert not uses_fast_form(torch.device("cuda"))  # unmeasured there: the reference form
    assert uses_fast_form(torch.device("cuda"), "fast")
    assert not uses_fast_form(torch.device("cpu"), "reference")
    monkeypatch.setenv(FORM_ENV, "NHWC")
    with pytest.raises(ConfigError, match="EVALKIT_DETECTOR_FORM='nhwc'.*auto, fast, reference"):
        requested_form()


def batchnorms(detector) -> int:
    """BatchNorm layers of a detector's networks (Python or scripted modules, or ops of a frozen graph)."""
    count = 0
    for root in networks(detector):
        if frozen(root):
            count += len(root.graph.findAllNodes("aten::batch_norm"))
        else:
            count += sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                         or getattr(m, "original_name", "").startswith("BatchNorm") for m in root.modules())
    return count


def test_fold_batchnorm_leaves_training_and_scripted_modules_alone():
    net = build_i3d(None, seed=0).train()
    assert fold_batchnorm(net) == 0  # training mode: the statistics still move
    scripted = script_module(StyleGANVI3D(net.eval()))
    assert fold_batchnorm(scripted) == 0
    assert fold_batchnorm(net) == 57 and not any(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules())


def test_pad_inside_moves_only_stride_1_padding_and_keeps_the_output():
    net = build_i3d(None, seed=0).eval()
    x = torch.randn(1, 3, 10, 64, 64)
    with torch.no_grad():
        ref = net.features(x)
        # the 3x3x3 convolutions (Conv3d_2c and two per Inception module) and the 9 branch max-pools
        assert pad_inside(net) == 1 + 2 * 9 + 9
        assert net.Conv3d_1a_7x7.conv3d.padding == (0, 0, 0) and not net.Conv3d_1a_7x7.padded_conv  # stride 2
        assert net.Mixed_3b.b1b.conv3d.padding == (1, 1, 1) and net.Mixed_3b.b3a.pool_padding == [1, 1, 1]
        assert not net.MaxPool3d_4a_3x3.padded_pool  # stride 2: 'SAME' may be asymmetric
        got = net.features(x)
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-6 * float(ref.abs().max()))
    assert pad_inside(script_module(StyleGANVI3D(build_i3d(None, seed=0).eval()))) == 0


def test_freeze_script_folds_batchnorm_and_keeps_other_modules(monkeypatch):
    net = build_i3d(None, seed=0).eval()
    assert freeze_script(net) is net  # a Python module: the other rewrites handle it
    scripted = script_module(StyleGANVI3D(net))
    assert freeze_script(scripted.train()) is scripted  # training mode: the statistics still move
    x = torch.randint(0, 256, (1, 3, 10, 40, 40), dtype=torch.uint8)
    with torch.no_grad():
        ref = scripted.eval()(x, rescale=True, resize=True, return_features=True)
        fast = freeze_script(scripted)
        assert frozen(fast) and not fast.graph.findAllNodes("aten::batch_norm")
        got = fast(x, rescale=True, resize=True, return_features=True)
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))

    def refuse(module):
        raise RuntimeError("cannot freeze this graph")

    monkeypatch.setattr(torch.jit, "freeze", refuse)
    with pytest.warns(RuntimeWarning, match="runs unfrozen.*cannot freeze this graph"):
        assert freeze_script(scripted) is scripted


@pytest.mark.parametrize("preprocess", [preprocess_tats, preprocess_videogpt])
def test_channels_last_preprocessing_gives_the_same_values(preprocess):
    clips = videos()[:, :, :, :24]  # not square: VideoGPT resizes the shorter side and crops
    ref = preprocess(clips)
    fast = preprocess(clips, channels_last=True)
    assert ref.is_contiguous() and fast.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(fast, ref)


@pytest.mark.parametrize("name", CONV_DETECTORS)
def test_fast_form_features_match_reference_form(name, monkeypatch, i3d_files):
    clips = videos()
    built = {}
    if name.startswith("inception"):
        clips = clips[:, :4]  # frame-wise networks: 8 frames are enough
    for form in ("reference", "fast"):
        monkeypatch.setenv(FORM_ENV, form)
        with weights.overrides(i3d_files):  # Inception and C3D: seeded random weights
            det = build_detector(name, allow_random_weights=True)
        fmt = torch.channels_last if det.conv_dims == 2 else torch.channels_last_3d
        kernels = conv_weights(det)
        assert kernels, f"{name}: no convolution weights found"
        assert det.fast_form == (form == "fast")
        if form == "fast":
            assert all(w.is_contiguous(memory_format=fmt) for w in kernels), f"{name}: weights not channels-last"
        else:  # 1x1 kernels are both; the others tell the layouts apart
            assert all(w.is_contiguous() for w in kernels)
            assert not all(w.is_contiguous(memory_format=fmt) for w in kernels)
        built[form] = (det(clips).double(), batchnorms(det))
    (ref, ref_bn), (fast, fast_bn) = built["reference"], built["fast"]
    # every BatchNorm is folded: in the networks built here as modules (the random Inception stand-ins too)
    # by the fast form, in TorchScript files (StyleGAN-V's I3D) by freezing; C3D has none
    if name == "c3d-ucf101":
        assert ref_bn == fast_bn == 0
    else:
        assert ref_bn > 50 and fast_bn == 0, (name, ref_bn, fast_bn)
    if name in ("i3d-torchscript", "c3d-ucf101"):
        assert frozen(networks(det)[0])
    atol = 1e-5 * float(ref.abs().max())
    spread = float((ref - ref.mean(0)).abs().max())
    assert spread > 100 * atol, f"{name}: features differ between inputs by {spread:.3g} only; the check would be vacuous"
    # the same arithmetic in another order and grouping: float32 rounding only
    assert torch.allclose(fast, ref, rtol=1e-4, atol=atol), f"{name}: max difference {float((fast - ref).abs().max()):.3g}"
