"""Video detectors for FVD and video IS; importing this module registers them.

Their weight files are entries of ``evalkit.weights`` (i3d-torchscript, i3d-pretrained-400, c3d-ucf101,
videomae-v2-g-ssv2).

Detectors (``DETECTORS`` keys) and the reference each reproduces:

- ``i3d-torchscript``: StyleGAN-V ``i3d_torchscript.pt`` (uint8 BCTHW in, 400-d logits)
- ``i3d-videogpt``: VideoGPT, PyTorch I3D, shorter side 224 + center crop
- ``i3d-tats``: TATS, PyTorch I3D, squash to 224x224
- ``i3d-cd-fvd``: cd-fvd 0.1.1 I3D path (TATS preprocessing)
- ``videomae-v2-cd-fvd``: cd-fvd 0.1.1 VideoMAE-v2 ViT-g path (1408-d)
- ``c3d-ucf101``: StyleGAN-V ``c3d_ucf101.pt`` (TGANv2 C3D, 101 probabilities)
"""

from __future__ import annotations

from evalkit.metrics.detectors.c3d import C3DUCF101
from evalkit.metrics.detectors.i3d_pytorch_detectors import (
    I3DCdFvd,
    I3DTats,
    I3DVideoGPT,
    cdfvd_loader_transform,
    preprocess_tats,
    preprocess_videogpt,
)
from evalkit.metrics.detectors.i3d_torchscript import I3DTorchScript, StyleGANVI3D, build_styleganv_i3d
from evalkit.metrics.detectors.video_base import VideoDetector
from evalkit.metrics.detectors.videomae import VideoMAEv2CdFvd, preprocess_videomae

__all__ = [
    "C3DUCF101",
    "I3DCdFvd",
    "I3DTats",
    "I3DTorchScript",
    "I3DVideoGPT",
    "StyleGANVI3D",
    "VideoDetector",
    "VideoMAEv2CdFvd",
    "build_styleganv_i3d",
    "cdfvd_loader_transform",
    "preprocess_tats",
    "preprocess_videogpt",
    "preprocess_videomae",
]
