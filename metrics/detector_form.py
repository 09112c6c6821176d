"""The form a convolutional detector runs in: the reference network as loaded, or a faster equivalent.

On the CPU these rewrites make Inception, I3D and C3D markedly faster without changing what they compute:

- Channels-last convolution weights (NHWC / NDHWC), which oneDNN runs faster (I3D about 1.5x with
  nothing else changed, on the 2-core machine of ``benchmarks/README.md``). Converting the weights
  is enough: a convolution with channels-last weights returns a channels-last output, so
  the whole network follows, and TorchScript reference files convert the same way.
- Inference BatchNorm folded into the convolution before it (``torch.nn.utils.fusion``), for the
  networks built here as modules (pytorch-fid's Inception: another 1.3x; I3D: a few percent).
- I3D's stride-1 'SAME' padding done by the convolutions and max-pools themselves instead of an
  explicit padded copy before each (``pad_inside``; about 1.1x on I3D).
- TorchScript reference files (StyleGAN-V's I3D and C3D, clean-fid's Inception) frozen with
  ``torch.jit.freeze``, which folds their BatchNorm the same way (``freeze_script``).

All of them change only the order and grouping of float32 operations: features move by up to about 1e-5 of
their largest value and FVD/FID by about 1e-6 relative (``tests/test_detector_form.py`` checks the
features against the reference form, ``benchmarks/metrics_throughput.py`` the values against the
reference code).

``EVALKIT_DETECTOR_FORM`` chooses: ``auto`` (the default: ``fast`` on the CPU, ``reference`` on other
devices, where it has not been measured), ``fast`` or ``reference`` (the network exactly as the
reference runs it, for bit-level comparisons).
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from evalkit.errors import ConfigError

FORM_ENV = "EVALKIT_DETECTOR_FORM"
FORMS = ("auto", "fast", "reference")


def requested_form() -> str:
    """The form asked for through ``EVALKIT_DETECTOR_FORM`` (default ``auto``)."""
    value = os.environ.get(FORM_ENV, "auto").strip().lower() or "auto"
    if value not in FORMS:
        raise ConfigError(f"{FORM_ENV}={value!r}: expected one of {', '.join(FORMS)}")
    return value


def uses_fast_form(device: torch.device, form: str | None = None) -> bool:
    """Whether a convolutional detector on ``device`` runs in the fast form."""
    form = requested_form() if form is None else form
    if form == "auto":
        return device.type == "cpu"
    return form == "fast"


def _conv_bn_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """(conv, bn) attribute names of a block whose forward applies the BatchNorm right after the conv."""
    from torchvision.models.inception import BasicConv2d  # pytorch-fid's Inception blocks

    from evalkit.metrics.detectors.i3d_pytorch import Unit3D

    if isinstance(module, BasicConv2d):
        return [("conv", "bn")]
    if isinstance(module, Unit3D) and isinstance(module.bn, nn.BatchNorm3d):
        return [("conv3d", "bn")]
    return []


def fold_batchnorm(module: nn.Module) -> int:
    """Fold eval-mode BatchNorm into the preceding convolution of known blocks, in place; returns the count.

    Only blocks whose forward is conv -> bn are touched (pytorch-fid's ``BasicConv2d``, I3D's
    ``Unit3D``); TorchScript modules have no such Python blocks and are left as they are.
    """
    if isinstance(module, torch.jit.ScriptModule):
        return 0
    folded = 0
    for block in list(module.modules()):
        for conv_name, bn_name in _conv_bn_pairs(block):
            conv, bn = getattr(block, conv_name), getattr(block, bn_name)
            if bn.training:  # training-mode BatchNorm uses batch statistics: nothing to fold
                continue
            setattr(block, conv_name, fuse_conv_bn_eval(conv, bn))
            setattr(block, bn_name, nn.Identity())
            folded += 1
    return folded


def pad_inside(module: nn.Module) -> int:
    """Let I3D's stride-1 convolutions and max-pools pad by themselves, in place; returns the count.

    Stride-1 'SAME' padding with odd kernels is symmetric at every input size, so the layer's own
    padding gives the same result without the padded copy. For the max-pools (-inf padding instead of
    zeros) this relies on I3D's invariant that every pooled tensor follows a ReLU, so the network is
    matched by type (``InceptionI3d``) rather than by block.
    """
    from evalkit.metrics.detectors.i3d_pytorch import (
        InceptionI3d,
        MaxPool3dSame,
        Unit3D,
        symmetric_same_padding,
    )

    if isinstance(module, torch.jit.ScriptModule):
        return 0
    changed = 0
    for net in [m for m in module.modules() if isinstance(m, InceptionI3d)]:
        for block in net.modules():
            if isinstance(block, (Unit3D, MaxPool3dSame)):
                pads = symmetric_same_padding(block.kernel, block.stride)
                if pads is None or not any(pads):
                    continue
                if isinstance(block, Unit3D):
                    block.conv3d.padding = tuple(pads)
                    block.padded_conv = True
                else:
                    block.pool_padding = pads
                    block.padded_pool = True
                changed += 1
    return changed


def channels_last_weights(module: nn.Module, conv_dims: int) -> nn.Module:
    """``module`` with its convolution kernels (parameters of rank ``conv_dims + 2``) channels-last, in place.

    Only parameters move: buffers such as C3D's 4-d mean clip keep their layout (``Module.to`` with a
    memory format would convert every tensor of that rank, and refuses a 4-d one for 3-d layouts).
    """
    if conv_dims not in (2, 3):
        return module
    fmt = torch.channels_last if conv_dims == 2 else torch.channels_last_3d
    with torch.no_grad():
        for param in module.parameters():
            if param.dim() == conv_dims + 2:
                param.data = param.data.contiguous(memory_format=fmt)
    return module


def freeze_script(module: nn.Module) -> nn.Module:
    """A TorchScript module in eval mode frozen for inference (``torch.jit.freeze``); others as they are.

    A reference file's graph cannot be rewritten block by block, but freezing inlines its weights as
    constants, and TorchScript then folds each BatchNorm into the convolution before it (channels-last
    kernels stay channels-last). Only ``forward`` is kept, which is all the detectors call. A file that
    does not freeze runs unfrozen, with a warning that says why.
    """
    if not isinstance(module, torch.jit.ScriptModule) or module.training:
        return module
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is the reference files' format
            return torch.jit.freeze(module)
    except (RuntimeError, TypeError) as exc:
        warnings.warn(f"TorchScript detector runs unfrozen: torch.jit.freeze failed ({exc})", RuntimeWarning,
                      stacklevel=2)
        return module


def apply_form(module: nn.Module, conv_dims: int, fast: bool) -> nn.Module:
    """``module`` in the fast form (BatchNorm folded, padding inside, channels-last kernels) when ``fast``.

    Python modules change in place; a TorchScript module is returned frozen (``freeze_script``).
    """
    if not fast or conv_dims not in (2, 3):
        return module
    fold_batchnorm(module)
    pad_inside(module)
    return freeze_script(channels_last_weights(module, conv_dims))
