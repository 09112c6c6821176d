"""Inception-v1 I3D in PyTorch, state-dict compatible with piergiaj/VideoGPT/TATS ``pytorch_i3d.py``.

``i3d_pretrained_400.pt`` (VideoGPT, TATS, cd-fvd, JunyaoHu "videogpt") is a plain state dict converted
from the TF-Hub ``i3d-kinetics-400/1`` module; its keys are ``Conv3d_1a_7x7.conv3d.weight``,
``Mixed_3b.b1b.bn.running_mean``, ``logits.conv3d.bias`` and so on, which this module reproduces so the
file loads with ``weights_only=True`` and ``strict=True``.

What matters for identical numbers:

- TF 'SAME' padding is emulated by an explicit zero ``F.pad`` before every convolution and max-pool
  (total padding ``max(k - s, 0)`` when the size is divisible by the stride, ``max(k - size % s, 0)``
  otherwise; the smaller half goes first). Zero padding before a max-pool equals TF's "ignore padding"
  because every pooled tensor follows a ReLU. A 1x1x1 convolution needs no padding, so none is made.
- The fast form (``evalkit.metrics.detector_form.pad_inside``) moves the symmetric 'SAME' padding of
  stride-1 layers into the convolution and the max-pool themselves, saving a padded copy per layer:
  the same sums, possibly in another order inside the convolution; the max-pool's own (-inf) padding
  equals zero padding on the non-negative (post-ReLU) input.
- BatchNorm3d with eps 1e-5 (as in ``pytorch_i3d.py``; Sonnet's TF default would be 1e-3).
- The head: AvgPool3d kernel (2, 7, 7) stride 1, dropout (inactive in eval), a 1x1x1 conv with bias
  to 400 logits, spatial squeeze, then the **mean over the remaining time steps**.
- Three temporal stride-2 reductions leave ceil(ceil(ceil(T/2)/2)/2) steps and the pool needs two, so
  the network needs at least 9 frames (``MIN_FRAMES``).

The module is TorchScript-compatible (``torch.jit.script``), which the StyleGAN-V wrapper in
``i3d_torchscript.py`` relies on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: fewest frames for which the (2, 7, 7) average pool still has two time steps
MIN_FRAMES = 9
NUM_CLASSES = 400


def _same_pad(size: int, kernel: int, stride: int) -> int:
    if size % stride == 0:
        return max(kernel - stride, 0)
    return max(kernel - size % stride, 0)


def _any_padding(pads: list[int]) -> bool:
    for p in pads:
        if p > 0:
            return True
    return False


def symmetric_same_padding(kernel: list[int], stride: list[int]) -> list[int] | None:
    """(t, h, w) padding equal to TF 'SAME' at any input size, or None when 'SAME' can be asymmetric.

    With stride 1 'SAME' pads k - 1 in total, split evenly when k is odd.
    """
    if any(s != 1 for s in stride) or any(k % 2 == 0 for k in kernel):
        return None
    return [k // 2 for k in kernel]


def _same_padding(x: torch.Tensor, kernel: list[int], stride: list[int]) -> list[int]:
    """F.pad argument (w_front, w_back, h_front, h_back, t_front, t_back) for TF 'SAME'."""
    pad_t = _same_pad(x.shape[2], kernel[0], stride[0])
    pad_h = _same_pad(x.shape[3], kernel[1], stride[1])
    pad_w = _same_pad(x.shape[4], kernel[2], stride[2])
    return [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2, pad_t // 2, pad_t - pad_t // 2]


class MaxPool3dSame(nn.Module):
    """Max-pool with TF 'SAME' padding (zero padded, as ``MaxPool3dSamePadding``)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel = list(kernel)
        self.stride = list(stride)
        #: True once the pool pads by itself with ``pool_padding`` (fast form, stride 1 only)
        self.padded_pool = False
        self.pool_padding = [0, 0, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padded_pool:
            return F.max_pool3d(x, self.kernel, self.stride, self.pool_padding)
        pads = _same_padding(x, self.kernel, self.stride)
        if _any_padding(pads):
            x = F.pad(x, pads)
        return F.max_pool3d(x, self.kernel, self.stride)


class Unit3D(nn.Module):
    """Conv3d (no padding) after 'SAME' zero padding, optional BatchNorm3d and ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        use_batch_norm: bool = True,
        use_bias: bool = False,
        use_relu: bool = True,
    ):
        super().__init__()
        self.kernel = list(kernel)
        self.stride = list(stride)
        self.use_batch_norm = use_batch_norm
        self.use_relu = use_relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=0, bias=use_bias)
        # Always present so TorchScript sees one type; only registered as a parameter holder when used.
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-5, momentum=0.001) if use_batch_norm else nn.Identity()
        #: True once the convolution pads by itself (fast form, stride 1 only)
        self.padded_conv = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.padded_conv:
            pads = _same_padding(x, self.kernel, self.stride)
            if _any_padding(pads):
                x = F.pad(x, pads)
        x = self.conv3d(x)
        x = self.bn(x)
        if self.use_relu:
            x = F.relu(x)
        return x


class InceptionModule(nn.Module):
    """Four-branch Inception block; branch names b0, b1a, b1b, b2a, b2b, b3a (pool), b3b."""

    def __init__(self, in_channels: int, out: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.b0 = Unit3D(in_channels, out[0])
        self.b1a = Unit3D(in_channels, out[1])
        self.b1b = Unit3D(out[1], out[2], kernel=(3, 3, 3))
        self.b2a = Unit3D(in_channels, out[3])
        self.b2b = Unit3D(out[3], out[4], kernel=(3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, out[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b0 = self.b0(x)
        b1 = self.b1b(self.b1a(x))
        b2 = self.b2b(self.b2a(x))
        b3 = self.b3b(self.b3a(x))
        return torch.cat([b0, b1, b2, b3], dim=1)


class InceptionI3d(nn.Module):
    """I3D RGB stream: (B, 3, T, 224, 224) in [-1, 1] -> (B, num_classes) time-averaged logits."""

    def __init__(self, num_classes: int = NUM_CLASSES, in_channels: int = 3):
        super().__init__()
        self.num_classes = num_classes
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, kernel=(7, 7, 7), stride=(2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, kernel=(3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionModule(192, (64, 96, 128, 16, 32, 32))
        self.Mixed_3c = InceptionModule(256, (128, 128, 192, 32, 96, 64))
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = InceptionModule(480, (192, 96, 208, 16, 48, 64))
        self.Mixed_4c = InceptionModule(512, (160, 112, 224, 24, 64, 64))
        self.Mixed_4d = InceptionModule(512, (128, 128, 256, 24, 64, 64))
        self.Mixed_4e = InceptionModule(512, (112, 144, 288, 32, 64, 64))
        self.Mixed_4f = InceptionModule(528, (256, 160, 320, 32, 128, 128))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionModule(832, (256, 160, 320, 32, 128, 128))
        self.Mixed_5c = InceptionModule(832, (384, 192, 384, 48, 128, 128))
        self.avg_pool = nn.AvgPool3d(kernel_size=(2, 7, 7), stride=(1, 1, 1))
        self.dropout = nn.Dropout(0.5)
        self.logits = Unit3D(1024, num_classes, use_batch_norm=False, use_bias=True, use_relu=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Mixed_5c activations (B, 1024, T', 7, 7)."""
        x = self.Conv3d_1a_7x7(x)
        x = self.MaxPool3d_2a_3x3(x)
        x = self.Conv3d_2b_1x1(x)
        x = self.Conv3d_2c_3x3(x)
        x = self.MaxPool3d_3a_3x3(x)
        x = self.Mixed_3b(x)
        x = self.Mixed_3c(x)
        x = self.MaxPool3d_4a_3x3(x)
        x = self.Mixed_4b(x)
        x = self.Mixed_4c(x)
        x = self.Mixed_4d(x)
        x = self.Mixed_4e(x)
        x = self.Mixed_4f(x)
        x = self.MaxPool3d_5a_2x2(x)
        x = self.Mixed_5b(x)
        x = self.Mixed_5c(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.logits(self.dropout(self.avg_pool(self.features(x))))
        logits = x.squeeze(3).squeeze(3)
        return logits.mean(dim=2)


def temporal_steps_after_backbone(frames: int) -> int:
    """Time steps left before the (2, 7, 7) average pool for ``frames`` input frames."""
    t = frames
    for _ in range(3):
        t = -(-t // 2)
    return t


def load_i3d_state_dict(path: str, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read ``i3d_pretrained_400.pt`` without unpickling arbitrary objects."""
    state = torch.load(path, map_location=map_location, weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise TypeError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def build_i3d(state_dict: dict[str, torch.Tensor] | None = None, *, seed: int = 0) -> InceptionI3d:
    """An eval-mode I3D: from a state dict (strict), or with seeded random weights and BN statistics."""
    if state_dict is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = InceptionI3d()
            randomize_batchnorm(model)
    else:
        model = InceptionI3d()
        model.load_state_dict(state_dict, strict=True)
    return model.eval()


def randomize_batchnorm(model: nn.Module) -> None:
    """Give BatchNorm layers non-trivial statistics so random-weight features are not degenerate."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.8, 1.2)
                module.bias.normal_(0.0, 0.1)
