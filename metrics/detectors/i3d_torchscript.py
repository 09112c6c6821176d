"""StyleGAN-V's FVD detector: the TorchScript I3D ``i3d_torchscript.pt`` (port of TF-Hub i3d-kinetics-400).

StyleGAN-V (``src/metrics/frechet_video_distance.py``) calls it as
``detector(videos_uint8_BCTHW, rescale=True, resize=True, return_features=True)``: uint8 [0, 255] videos
shaped (B, 3, T, H, W) at the dataset's resolution; the module scales to [-1, 1] and resizes to 224x224
itself and returns the 400-d pre-softmax logits (time-averaged). The detector passes uint8 exactly
like that, so the file's own preprocessing is what runs (normalising first would double-normalise,
stylegan-v #41 / fid-metrics #5).

With ``allow_random_weights`` a scriptable stand-in with the same call signature is built from the
PyTorch I3D with seeded random weights (``StyleGANVI3D``). Its preprocessing (``2 * x / 255 - 1``, then
bilinear ``align_corners=False`` squash to 224x224) is what the published port is believed to do; the
archive's ``code/`` folder has not been inspected here, so the stand-in is never comparable with
published numbers (its features are only for testing the pipeline).
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from evalkit.errors import WeightsError
from evalkit.metrics.detectors.i3d_pytorch import MIN_FRAMES, NUM_CLASSES, InceptionI3d, build_i3d
from evalkit.metrics.detectors.video_base import RANDOM_WEIGHTS_SEED, VideoDetector
from evalkit.registry import DETECTORS


class StyleGANVI3D(nn.Module):
    """I3D with StyleGAN-V's TorchScript call signature ``forward(x, rescale, resize, return_features)``."""

    def __init__(self, i3d: InceptionI3d):
        super().__init__()
        self.i3d = i3d

    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> torch.Tensor:
        x = x.float()
        if rescale:
            x = 2.0 * x / 255.0 - 1.0
        if resize:
            b, c, t, h, w = x.shape
            frames = x.transpose(1, 2).reshape(b * t, c, h, w)
            frames = F.interpolate(frames, size=(224, 224), mode="bilinear", align_corners=False)
            x = frames.reshape(b, t, c, 224, 224).transpose(1, 2).contiguous()
        logits = self.i3d(x)
        if return_features:
            return logits
        return F.softmax(logits, dim=1)


def script_module(module: nn.Module) -> torch.jit.ScriptModule:
    """``torch.jit.script`` without its deprecation warning (TorchScript is the reference's format)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(module)


def build_styleganv_i3d(seed: int = RANDOM_WEIGHTS_SEED) -> torch.jit.ScriptModule:
    """A scripted random-weight stand-in for ``i3d_torchscript.pt``."""
    return script_module(StyleGANVI3D(build_i3d(None, seed=seed)).eval())


def load_torchscript(path: str, device: str | torch.device = "cpu", *, what: str) -> torch.jit.ScriptModule:
    """``torch.jit.load`` (no pickle) with an error that names the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(path, map_location=torch.device(device))
    except (RuntimeError, ValueError, OSError) as exc:
        raise WeightsError(f"{path}: cannot be loaded as the TorchScript {what} ({exc})") from None
    return module.eval()


@DETECTORS.register("i3d-torchscript")
class I3DTorchScript(VideoDetector):
    """StyleGAN-V FVD features: uint8 BCTHW into the TorchScript I3D, 400-d logits out."""

    name: ClassVar[str] = "i3d-torchscript"
    weights: ClassVar[str | None] = "i3d-torchscript"
    feature_dim: ClassVar[int] = NUM_CLASSES
    min_frames: ClassVar[int] = MIN_FRAMES
    batch_size: ClassVar[int] = 16
    frames_reason: ClassVar[str] = (
        "I3D halves time three times and its final (2, 7, 7) average pool needs 2 steps, so T >= 9"
    )
    conv_dims: ClassVar[int] = 3  # convolutional: a fast form on the CPU

    def _load(self, path: str | None) -> torch.jit.ScriptModule:
        if path is None:
            return build_styleganv_i3d()
        return load_torchscript(path, self.device, what="StyleGAN-V I3D (i3d_torchscript.pt)")

    def _forward(self, videos: torch.Tensor) -> torch.Tensor:
        bcthw = videos.permute(0, 4, 1, 2, 3).contiguous()
        return self.model(bcthw, rescale=True, resize=True, return_features=True)
