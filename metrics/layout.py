"""Memory layout of the convolutional detectors' weights.

On the CPU, oneDNN runs convolutions with channels-last weights (NHWC / NDHWC) markedly faster than
with the default contiguous ones: I3D about 1.7x, the pytorch-fid Inception about 1.75x on the 2-core
machine of ``benchmarks/README.md``. Converting the weights is enough: a convolution with
channels-last weights returns a channels-last output, so the whole network follows, whatever layout
the input has, and TorchScript reference files convert the same way. The arithmetic is the same;
only the order of float32 additions inside a convolution changes: features move by up to about 1e-5
of their largest value and FVD/FID by about 1e-6 relative (``tests/test_detector_layout.py`` checks
the features against the contiguous network, ``benchmarks/metrics_throughput.py`` the values against
the references).

``EVALKIT_DETECTOR_LAYOUT`` chooses: ``auto`` (the default: channels-last on the CPU, contiguous on
other devices, where it has not been measured), ``channels_last`` or ``contiguous`` (the
references' own layout, for bit-level comparisons).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from evalkit.errors import ConfigError

LAYOUT_ENV = "EVALKIT_DETECTOR_LAYOUT"
LAYOUTS = ("auto", "channels_last", "contiguous")


def requested_layout() -> str:
    """The layout asked for through ``EVALKIT_DETECTOR_LAYOUT`` (default ``auto``)."""
    value = os.environ.get(LAYOUT_ENV, "auto").strip().lower() or "auto"
    if value not in LAYOUTS:
        raise ConfigError(f"{LAYOUT_ENV}={value!r}: expected one of {', '.join(LAYOUTS)}")
    return value


def uses_channels_last(device: torch.device, layout: str | None = None) -> bool:
    """Whether a convolutional detector on ``device`` keeps its weights channels-last."""
    layout = requested_layout() if layout is None else layout
    if layout == "auto":
        return device.type == "cpu"
    return layout == "channels_last"


def apply_layout(module: nn.Module, conv_dims: int, channels_last: bool) -> nn.Module:
    """``module`` with its convolution kernels (parameters of rank ``conv_dims + 2``) channels-last, in place.

    Only parameters move: buffers such as C3D's 4-d mean clip keep their layout (``Module.to`` with a
    memory format would convert every tensor of that rank, and refuses a 4-d one for 3-d layouts).
    """
    if not channels_last or conv_dims not in (2, 3):
        return module
    fmt = torch.channels_last if conv_dims == 2 else torch.channels_last_3d
    with torch.no_grad():
        for param in module.parameters():
            if param.dim() == conv_dims + 2:
                param.data = param.data.contiguous(memory_format=fmt)
    return module
