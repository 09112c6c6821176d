"""CLIP detectors through open_clip, with the OpenAI weights and OpenAI preprocessing.

The OpenAI checkpoints use QuickGELU; open_clip >= 2.29 builds ``ViT-B-32`` with nn.GELU unless told
otherwise, which silently changes the embeddings (open_clip #771), so every model here is built with
``force_quick_gelu=True`` and loaded strictly from the registry file (the OpenAI TorchScript archive,
a torch state dict, or an open_clip safetensors file). Computation is float32 on every device (OpenAI's
``clip.load`` keeps fp16 weights on GPU; that difference is deliberate and recorded in the docs).

Preprocessing is open_clip's evaluation transform on PIL images, identical to OpenAI ``clip``: PIL
bicubic resize of the shorter side to 224 (antialiased), center crop 224, /255, OpenAI mean/std.

- ``clipsim-*`` detectors need prompts and return **one row per video** (B, 1): the mean over frames of
  the raw cosine between the L2-normalised text and frame embeddings (GODIVA / Video LDM CLIPSIM; no
  clamping, no x100).
- ``clip-fid-vit-b-32`` returns clean-fid's CLIP-FID features, **one row per frame** (B*T, 512):
  ``encode_image`` output, not normalised.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import ClassVar

import torch

from evalkit import weights as W
from evalkit.errors import InputError, WeightsError
from evalkit.metrics.detectors.inception import RANDOM_WEIGHTS_SEED, ImageDetector
from evalkit.registry import DETECTORS

#: keys of OpenAI's TorchScript archives that are not parameters of the open_clip model
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")


def build_open_clip(arch: str, path: str | Path | None, device: torch.device):
    """(model, preprocess, tokenizer) for ``arch`` with QuickGELU and weights from ``path``."""
    import open_clip

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # open_clip logs "initialized randomly" before weights are loaded
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            model, _, preprocess = open_clip.create_model_and_transforms(
                arch, pretrained=None, force_quick_gelu=True, precision="fp32", device="cpu"
            )
    finally:
        logging.disable(previous)
    if path is not None:
        state = W.load_state_dict(path)
        for key in _OPENAI_EXTRA_KEYS:
            state.pop(key, None)
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"{path}: not a CLIP {arch} checkpoint ({str(exc).splitlines()[0]})") from None
    tokenizer = open_clip.get_tokenizer(arch)
    return model.to(device).eval(), preprocess, tokenizer


class ClipDetector(ImageDetector):
    """Shared loading and preprocessing of the CLIP detectors."""

    arch: ClassVar[str]
    batch_size: ClassVar[int] = 64

    def _build(self, path: Path | None) -> None:
        self.model, self.preprocess, self.tokenizer = build_open_clip(self.arch, path, self.device)

    def image_features(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (n, H, W, 3) -> unnormalised ``encode_image`` features (n, D)."""
        from PIL import Image

        pixels = torch.stack([self.preprocess(Image.fromarray(f)) for f in frames.numpy()])
        return self.model.encode_image(pixels.to(self.device)).float()

    def text_features(self, prompts: list[str]) -> torch.Tensor:
        """L2-normalised text embeddings; prompts beyond the 77-token context are truncated with a warning."""
        context = getattr(self.tokenizer, "context_length", 77)
        for prompt in prompts:
            n_tokens = len(self.tokenizer.encode(prompt)) + 2 if hasattr(self.tokenizer, "encode") else 0
            if n_tokens > context:
                warnings.warn(f"{self.name}: prompt truncated to {context} tokens: {prompt[:60]!r}...", stacklevel=3)
        tokens = self.tokenizer(prompts).to(self.device)
        text = self.model.encode_text(tokens).float()
        return text / text.norm(dim=-1, keepdim=True)

    def _forward_frames(self, frames: torch.Tensor, prompts: list[str] | None) -> torch.Tensor:
        return self.image_features(frames)


class ClipSimDetector(ClipDetector):
    """Per-video CLIPSIM: mean over frames of cos(text, frame), (B, 1); needs one prompt per video."""

    needs_prompts: ClassVar[bool] = True
    per_frame: ClassVar[bool] = False
    feature_dim: ClassVar[int] = 1

    @torch.inference_mode()
    def __call__(self, videos: torch.Tensor, prompts: list[str] | None = None) -> torch.Tensor:
        frames = self.frames(videos)
        b = videos.shape[0]
        t = frames.shape[0] // b if b else 0
        if prompts is None or len(prompts) != b or not all(isinstance(p, str) for p in prompts):
            got = "none" if prompts is None else f"{len(prompts)}"
            raise InputError(f"{self.name}: needs one text prompt per video ({b} videos, got {got} prompts)")
        out = torch.empty((b, 1), dtype=torch.float32)
        per_batch = max(1, self.batch_size // max(t, 1))
        for start in range(0, b, per_batch):
            stop = min(b, start + per_batch)
            image = self.image_features(frames[start * t:stop * t])
            image = image / image.norm(dim=-1, keepdim=True)
            text = self.text_features(list(prompts[start:stop]))
            cos = (image.view(stop - start, t, -1) * text[:, None, :]).sum(-1)
            out[start:stop, 0] = cos.mean(dim=1).cpu()
        return out


@DETECTORS.register("clipsim-vit-b-32")
class ClipSimViTB32(ClipSimDetector):
    """CLIPSIM with OpenAI CLIP ViT-B/32 (Video LDM, LaVie): per-video mean frame-text cosine (B, 1)."""

    name: ClassVar[str] = "clipsim-vit-b-32"
    arch: ClassVar[str] = "ViT-B-32"
    weights: ClassVar[str | None] = "clip-vit-b-32-openai"


@DETECTORS.register("clipsim-vit-b-16")
class ClipSimViTB16(ClipSimDetector):
    """CLIPSIM with OpenAI CLIP ViT-B/16 (VideoPoet, Phenaki): per-video mean frame-text cosine (B, 1)."""

    name: ClassVar[str] = "clipsim-vit-b-16"
    arch: ClassVar[str] = "ViT-B-16"
    weights: ClassVar[str | None] = "clip-vit-b-16-openai"


@DETECTORS.register("clipsim-vit-l-14")
class ClipSimViTL14(ClipSimDetector):
    """CLIPSIM with OpenAI CLIP ViT-L/14: per-video mean frame-text cosine (B, 1)."""

    name: ClassVar[str] = "clipsim-vit-l-14"
    arch: ClassVar[str] = "ViT-L-14"
    weights: ClassVar[str | None] = "clip-vit-l-14-openai"


@DETECTORS.register("clip-fid-vit-b-32")
class ClipFidViTB32(ClipDetector):
    """clean-fid CLIP-FID features: OpenAI ViT-B/32 ``encode_image`` (512-d, unnormalised), one row per frame."""

    name: ClassVar[str] = "clip-fid-vit-b-32"
    arch: ClassVar[str] = "ViT-B-32"
    weights: ClassVar[str | None] = "clip-vit-b-32-openai"
    feature_dim: ClassVar[int] = 512

