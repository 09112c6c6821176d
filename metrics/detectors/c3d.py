"""C3D fine-tuned on UCF-101 (101 classes): the video Inception Score network of TGAN/TGANv2 and StyleGAN-V.

Lineage: the Caffe ``c3d_ucf101_finetune_whole_iter_20000`` -> TGANv2's Chainer ``C3DVersion1UCF101``
(``conv3d_deepnetA_ucf.npz`` + ``mean2.npz``) -> StyleGAN-V's TorchScript ``c3d_ucf101.pt``, which
StyleGAN-V calls with uint8 [0, 255] videos (B, 3, 16, H, W) and no other argument, and which returns
class probabilities.

TGANv2's forward chain (``tgan2/models/c3d/c3d_ucf101.py``), reproduced by ``TGANv2C3D``:

1. input in [-1, 1], (N, 3, 16, H, W) RGB;
2. ``pre``: a fixed 1x1x1 conv that swaps RGB -> BGR and multiplies by 128;
3. every frame resized to 112x112 with Chainer ``F.resize_images`` (bilinear, corner-aligned, i.e.
   ``align_corners=True``), the whole frame squashed;
4. plus ``128 - mean``, the mean being ``mean2.npz['mean'][:, :, 8:120, 8:120]`` (3x16x112x112), so
   the net effect is BGR in 0..256 minus the C3D mean;
5. conv1a(64) pool1(1,2,2) conv2a(128) pool2 conv3a/3b(256) pool3 conv4a/4b(512) pool4 conv5a/5b(512)
   pool5 fc6(4096) fc7(4096) fc8(101), ReLU after each conv/fc but fc8, dropout inactive at test time,
   softmax. Chainer's ``max_pooling_nd`` defaults to ``cover_all=True``: pool5 turns 2x7x7 into 1x4x4
   (PyTorch ``ceil_mode=True``), hence fc6's 512*4*4 inputs.

Uint8 videos enter step 1 as ``x / 127.5 - 1``. The 16 frames are fixed by the mean bias (3x16x...).
With ``allow_random_weights`` the chain is built with seeded random weights and, lacking ``mean2.npz``,
the per-channel BGR mean TGANv2 lists in a comment (90.25, 97.66, 101.41); never comparable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evalkit.errors import WeightsError
from evalkit.metrics.detectors.i3d_torchscript import load_torchscript, script_module
from evalkit.metrics.detectors.video_base import RANDOM_WEIGHTS_SEED, VideoDetector
from evalkit.registry import DETECTORS

NUM_CLASSES = 101
FRAMES = 16
SIZE = 112
#: BGR channel means from the comment in TGANv2's C3D (used only by the random-weight stand-in)
CHANNEL_MEAN_BGR = (90.25164795, 97.65701294, 101.4083252)
_CONVS = (
    ("conv1a", 3, 64),
    ("conv2a", 64, 128),
    ("conv3a", 128, 256),
    ("conv3b", 256, 256),
    ("conv4a", 256, 512),
    ("conv4b", 512, 512),
    ("conv5a", 512, 512),
    ("conv5b", 512, 512),
)
_FCS = (("fc6", 512 * 4 * 4, 4096), ("fc7", 4096, 4096), ("fc8", 4096, NUM_CLASSES))


class C3D(nn.Module):
    """C3D on mean-subtracted BGR clips (N, 3, 16, 112, 112) -> fc8 logits (N, 101)."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        for name, cin, cout in _CONVS:
            setattr(self, name, nn.Conv3d(cin, cout, kernel_size=3, stride=1, padding=1))
        self.fc6 = nn.Linear(512 * 4 * 4, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1a(x))
        x = F.max_pool3d(x, (1, 2, 2), (1, 2, 2), ceil_mode=True)
        x = F.relu(self.conv2a(x))
        x = F.max_pool3d(x, 2, 2, ceil_mode=True)
        x = F.relu(self.conv3b(F.relu(self.conv3a(x))))
        x = F.max_pool3d(x, 2, 2, ceil_mode=True)
        x = F.relu(self.conv4b(F.relu(self.conv4a(x))))
        x = F.max_pool3d(x, 2, 2, ceil_mode=True)
        x = F.relu(self.conv5b(F.relu(self.conv5a(x))))
        x = F.max_pool3d(x, 2, 2, ceil_mode=True)
        x = F.relu(self.fc6(x.flatten(1)))
        x = F.relu(self.fc7(x))
        return self.fc8(x)


class TGANv2C3D(nn.Module):
    """The whole chain with StyleGAN-V's TorchScript call form: uint8 (B, 3, 16, H, W) -> probabilities."""

    def __init__(self, c3d: C3D, mean: torch.Tensor):
        super().__init__()
        if tuple(mean.shape) != (3, FRAMES, SIZE, SIZE):
            raise ValueError(f"C3D mean must be (3, {FRAMES}, {SIZE}, {SIZE}), got {tuple(mean.shape)}")
        self.c3d = c3d
        self.register_buffer("bias", 128.0 - mean.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 127.5 - 1.0
        x = x.flip(1) * 128.0  # RGB -> BGR, x128 (TGANv2's fixed 1x1x1 'pre' conv)
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        frames = F.interpolate(frames, size=(112, 112), mode="bilinear", align_corners=True)
        x = frames.reshape(b, t, c, 112, 112).transpose(1, 2) + self.bias
        return F.softmax(self.c3d(x), dim=1)


def crop_tgan2_mean(mean: np.ndarray) -> torch.Tensor:
    """``mean2.npz['mean'][:, :, 8:120, 8:120]`` as TGANv2 takes it."""
    mean = np.asarray(mean, dtype=np.float32)
    if mean.ndim != 4 or mean.shape[0] != 3 or mean.shape[1] != FRAMES or min(mean.shape[2:]) < 8 + SIZE:
        raise WeightsError(f"mean2.npz 'mean': expected (3, 16, >=120, >=120), got {mean.shape}")
    return torch.from_numpy(np.ascontiguousarray(mean[:, :, 8 : 8 + SIZE, 8 : 8 + SIZE]))


def c3d_from_chainer(params: Mapping[str, np.ndarray]) -> C3D:
    """C3D from TGANv2's ``conv3d_deepnetA_ucf.npz`` arrays (``conv1a/W``, ``conv1a/b``, ..., ``fc8/b``).

    Chainer's ConvolutionND and Linear store weights in PyTorch's layout, so arrays copy over as is.
    """
    model = C3D()
    state = {}
    for name in [c[0] for c in _CONVS] + [f[0] for f in _FCS]:
        for src, dst in (("W", "weight"), ("b", "bias")):
            key = f"{name}/{src}"
            if key not in params:
                raise WeightsError(f"C3D npz: missing array {key!r} (found {sorted(params)[:6]}...)")
            state[f"{name}.{dst}"] = torch.from_numpy(np.asarray(params[key], dtype=np.float32))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"C3D npz: arrays do not fit C3DVersion1UCF101 ({exc})") from None
    return model.eval()


def load_tgan2_c3d(weights_npz: str, mean_npz: str) -> TGANv2C3D:
    """The TGANv2 chain from its two Chainer files (read with ``allow_pickle=False``)."""
    with np.load(weights_npz, allow_pickle=False) as params:
        c3d = c3d_from_chainer({k: params[k] for k in params.files})
    with np.load(mean_npz, allow_pickle=False) as means:
        if "mean" not in means.files:
            raise WeightsError(f"{mean_npz}: expected an array named 'mean', found {means.files}")
        mean = crop_tgan2_mean(means["mean"])
    return TGANv2C3D(c3d, mean).eval()


def build_random_c3d(seed: int = RANDOM_WEIGHTS_SEED) -> TGANv2C3D:
    """Seeded random-weight chain (constant per-channel mean), scripted like the reference file."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        c3d = C3D()
        # Caffe/Chainer's C3D initialisers (normal 0.01 convs, 0.005 fcs) keep activations finite.
        with torch.no_grad():
            for module in c3d.modules():
                if isinstance(module, nn.Conv3d):
                    module.weight.normal_(0.0, 0.01)
                    module.bias.zero_()
                elif isinstance(module, nn.Linear):
                    module.weight.normal_(0.0, 0.005)
                    module.bias.fill_(0.1)
    mean = torch.tensor(CHANNEL_MEAN_BGR, dtype=torch.float32).view(3, 1, 1, 1).expand(3, FRAMES, SIZE, SIZE)
    return script_module(TGANv2C3D(c3d.eval(), mean.contiguous()).eval())


@DETECTORS.register("c3d-ucf101")
class C3DUCF101(VideoDetector):
    """StyleGAN-V ``isv`` network: uint8 BCTHW 16-frame clips into ``c3d_ucf101.pt``, 101 probabilities out."""

    name: ClassVar[str] = "c3d-ucf101"
    weights: ClassVar[str | None] = "c3d-ucf101"
    feature_dim: ClassVar[int] = NUM_CLASSES
    min_frames: ClassVar[int] = FRAMES
    exact_frames: ClassVar[int | None] = FRAMES
    batch_size: ClassVar[int] = 16
    frames_reason: ClassVar[str] = "the C3D mean bias is 3x16x112x112, so clips are exactly 16 frames"
    conv_dims: ClassVar[int] = 3  # convolutional: a fast form on the CPU

    def _load(self, path: str | None) -> torch.jit.ScriptModule:
        if path is None:
            return build_random_c3d()
        return load_torchscript(path, self.device, what="StyleGAN-V C3D (c3d_ucf101.pt)")

    def _forward(self, videos: torch.Tensor) -> torch.Tensor:
        return self.model(videos.permute(0, 4, 1, 2, 3).contiguous())
