"""Inception detectors for frame FID and image IS, each with its reference's preprocessing.

Image detectors treat every frame of every video as an image and return **one row per frame**:
uint8 videos (B, T, H, W, 3) -> features (B*T, D), rows ordered video by video (``per_frame = True``
tells the runner). Frame FID in video papers is computed over frames this way (StyleGAN-V
``fid50k_full``, Video LDM).

- ``inception-pytorch-fid``: pytorch-fid 0.3.0. Its own ``InceptionV3`` module (FID-patched blocks) with
  the ``pt_inception-2015-12-05-6726825d.pth`` state dict; input uint8/255 as ``ToTensor`` gives, bilinear
  ``F.interpolate`` to 299x299 (``align_corners=False``, no antialias) and 2x-1 inside the module; pool3
  2048-d.
- ``inception-pytorch-fid-logits``: the same network and input followed by its 1008-way ``fc`` without
  the bias (torch-fidelity's ``logits_unbiased``, StyleGAN's ``no_output_bias``), for IS.
- ``inception-legacy-pytorch``: clean-fid ``legacy_pytorch`` mode: bilinear resize of 0..255 floats to
  299 in torch, clip to [0, 255], then the pytorch-fid network with its internal resize off on x/255.
- ``inception-clean``: clean-fid ``clean`` mode: each channel resized separately by PIL as float32
  ('F' mode, bicubic, antialiased) to 299x299, clipped to [0, 255], normalised (x-128)/128 and fed to
  the ``layers`` of the TorchScript ``inception-2015-12-05.pt`` (2048-d).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evalkit import weights as W
from evalkit.errors import InputError, WeightsError
from evalkit.metrics.base import Detector
from evalkit.registry import DETECTORS
from evalkit.video import as_video_tensor

#: seed of networks built with random weights (``--allow-random-weights``)
RANDOM_WEIGHTS_SEED = 0


def random_init_(module: nn.Module, seed: int = RANDOM_WEIGHTS_SEED) -> nn.Module:
    """Seeded He-normal weights and zero biases, so activations keep their scale through the depth."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d | nn.Conv3d | nn.Linear):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.zero_()
    return module


class ImageDetector(Detector):
    """Base of frame-wise detectors: (B, T, H, W, 3) uint8 -> (B*T, D), one row per frame."""

    per_frame: ClassVar[bool] = True
    feature_dim: ClassVar[int]
    #: frames per forward pass
    batch_size: ClassVar[int] = 32

    def __init__(self, device: str | torch.device = "cpu", allow_random_weights: bool = False, *,
                 batch_size: int | None = None):
        super().__init__(device=device, allow_random_weights=allow_random_weights)
        if batch_size is not None:
            if batch_size < 1:
                raise InputError(f"{self.name}: batch_size must be a positive integer, got {batch_size}")
            self.batch_size = batch_size
        resolved = W.resolve(self.weights, allow_random=allow_random_weights) if self.weights else None
        self.weights_path: Path | None = resolved.path if resolved else None
        if resolved is not None and resolved.path is None:
            self.weights_digest = f"random-seed{RANDOM_WEIGHTS_SEED}"
            self.comparable = False
        elif resolved is not None:
            self.weights_digest = resolved.digest
            self.comparable = resolved.comparable
        self._build(self.weights_path)

    def _build(self, path: Path | None) -> None:
        """Load the network from ``path`` (None: seeded random weights) onto ``self.device``."""
        raise NotImplementedError

    def _forward_frames(self, frames: torch.Tensor, prompts: list[str] | None) -> torch.Tensor:
        """uint8 frames (n, H, W, 3) on the CPU -> features (n, D)."""
        raise NotImplementedError

    def frames(self, videos: torch.Tensor | np.ndarray) -> torch.Tensor:
        videos = as_video_tensor(videos, name=f"{self.name} input")
        b, t, h, w, c = videos.shape
        if h < 2 or w < 2:
            raise InputError(f"{self.name}: frames must be at least 2x2 pixels, got {h}x{w}")
        return videos.reshape(b * t, h, w, c)

    @torch.inference_mode()
    def __call__(self, videos: torch.Tensor, prompts: list[str] | None = None) -> torch.Tensor:
        frames = self.frames(videos)
        out = torch.empty((frames.shape[0], self.feature_dim), dtype=torch.float32)
        for start in range(0, frames.shape[0], self.batch_size):
            batch = frames[start:start + self.batch_size]
            feats = self._forward_frames(batch, None).float().cpu()
            if feats.shape != (batch.shape[0], self.feature_dim):
                raise WeightsError(
                    f"{self.name}: network returned features shaped {tuple(feats.shape)}, expected "
                    f"({batch.shape[0]}, {self.feature_dim}); is {self.weights_path} the right weight file?"
                )
            out[start:start + batch.shape[0]] = feats
        return out


# ------------------------------------------------------------------------------------- pytorch-fid


def fid_inception_network(path: str | Path | None) -> nn.Module:
    """pytorch-fid's FID-patched torchvision Inception (1008 classes) with weights from ``path``."""
    from pytorch_fid import inception as pfi

    net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    if path is None:
        random_init_(net)
    else:
        state = W.load_state_dict(path)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"{path}: not a pytorch-fid Inception state dict ({str(exc).splitlines()[0]})") from None
    return net.eval()


def pytorch_fid_inception(net: nn.Module, resize_input: bool = True) -> nn.Module:
    """pytorch-fid's ``InceptionV3`` wrapper (pool3 output) around an already loaded network.

    Its constructor fetches weights from the internet; here it receives ``net`` instead.
    """
    from pytorch_fid import inception as pfi

    with mock.patch.object(pfi, "fid_inception_v3", lambda: net):
        wrapper = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=resize_input,
                                  normalize_input=True, use_fid_inception=True)
    return wrapper.eval()


def uint8_frames_to_unit(frames: torch.Tensor) -> torch.Tensor:
    """(n, H, W, 3) uint8 -> (n, 3, H, W) float32 in [0, 1], exactly as torchvision ``ToTensor``."""
    return frames.permute(0, 3, 1, 2).contiguous().to(torch.float32).div(255)


@DETECTORS.register("inception-pytorch-fid")
class PytorchFidInception(ImageDetector):
    """pytorch-fid InceptionV3 pool3 (2048-d), one row per frame; bilinear 299 resize as pytorch-fid."""

    name: ClassVar[str] = "inception-pytorch-fid"
    weights: ClassVar[str | None] = "pytorch-fid-inception"
    feature_dim: ClassVar[int] = 2048
    conv_dims: ClassVar[int] = 2  # convolutional: a fast form on the CPU

    def _build(self, path: Path | None) -> None:
        self.network = fid_inception_network(path)
        self.model = self._place(pytorch_fid_inception(self.network))

    def _forward_frames(self, frames: torch.Tensor, prompts: list[str] | None) -> torch.Tensor:
        x = uint8_frames_to_unit(frames).to(self.device)
        return self.model(x)[0].squeeze(3).squeeze(2)


@DETECTORS.register("inception-pytorch-fid-logits")
class PytorchFidInceptionLogits(PytorchFidInception):
    """pytorch-fid InceptionV3 1008-way logits without the fc bias (for IS), one row per frame."""

    name: ClassVar[str] = "inception-pytorch-fid-logits"
    feature_dim: ClassVar[int] = 1008

    def _build(self, path: Path | None) -> None:
        super()._build(path)
        self.fc_weight = self.network.fc.weight.detach().to(self.device)

    def _forward_frames(self, frames: torch.Tensor, prompts: list[str] | None) -> torch.Tensor:
        pool = super()._forward_frames(frames, prompts)
        return pool @ self.fc_weight.T


@DETECTORS.register("inception-legacy-pytorch")
class LegacyPytorchInception(ImageDetector):
    """clean-fid ``legacy_pytorch``: torch bilinear resize on 0..255, clip, pytorch-fid pool3 (2048-d)."""

    name: ClassVar[str] = "inception-legacy-pytorch"
    weights: ClassVar[str | None] = "pytorch-fid-inception"
    feature_dim: ClassVar[int] = 2048
    conv_dims: ClassVar[int] = 2  # convolutional: a fast form on the CPU

    def _build(self, path: Path | None) -> None:
        self.model = self._place(pytorch_fid_inception(fid_inception_network(path), resize_input=False))

    def _forward_frames(self, frames: torch.Tensor, prompts: list[str] | None) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).to(torch.float32).to(self.device)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False).clamp(0, 255)
        return self.model(x / 255)[0].squeeze(3).squeeze(2)


# ------------------------------------------------------------------------------------- clean-fid


def pil_bicubic_float_resize(frame: np.ndarray, size: int = 299) -> np.ndarray:
    """clean-fid's ``clean`` resizer: per channel, PIL float ('F') bicubic to size x size, clip to [0, 255]."""
    from PIL import Image

    channels = []
    for c in range(frame.shape[2]):
        img = Image.fromarray(np.ascontiguousarray(frame[:, :, c], dtype=np.float32))
        img = img.resize((size, size), resample=Image.Resampling.BICUBIC)
        channels.append(np.asarray(img).clip(0, 255).reshape(size, size, 1))
    return np.concatenate(channels, axis=2).astype(np.float32)


@DETECTORS.register("inception-clean")
class CleanFidInception(ImageDetector):
    """clean-fid ``clean`` mode: PIL float bicubic to 299, (x-128)/128, TorchScript Inception layers (2048-d)."""

    name: ClassVar[str] = "inception-clean"
    weights: ClassVar[str | None] = "inception-torchscript"
    feature_dim: ClassVar[int] = 2048
    conv_dims: ClassVar[int] = 2  # convolutional: a fast form on the CPU

    def _build(self, path: Path | None) -> None:
        if path is None:
            net = random_init_(fid_inception_network(None))
            # The random stand-in takes the same normalised 299x299 input as the TorchScript ``layers``.
            self.layers: Any = nn.Sequential(*list(pytorch_fid_inception(net, resize_input=False).blocks)).eval()
        else:
            module = W.load_torchscript(path, map_location=str(self.device))
            if not hasattr(module, "layers"):
                raise WeightsError(f"{path}: TorchScript Inception has no 'layers' submodule (clean-fid calls base.layers)")
            self.layers = module.layers
        self.layers = self._place(self.layers)

    def _forward_frames(self, frames: torch.Tensor, prompts: list[str] | None) -> torch.Tensor:
        arrays = frames.numpy()
        resized = np.stack([pil_bicubic_float_resize(a).transpose(2, 0, 1) for a in arrays])
        x = torch.from_numpy(resized).to(self.device)
        x = (x - 128) / 128
        return self.layers(x).reshape(x.shape[0], -1)

