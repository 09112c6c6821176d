"""Named Snap Video model configs: the paper's Table 8 models and tiny CPU models of the same shape.

A model config is data (``SnapVideoModelConfig``): the FIT architecture, the diffusion settings, the clip
size before padding, training-only settings (label dropout, self-conditioning rate) and, for upsamplers,
the low-resolution input. ``resolve_model_config`` accepts a name, a full mapping, or a mapping with
``base: <name>`` plus overrides (nested mappings merge), e.g. ``{base: fit-tiny, fit: {text_dim: 64}}``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from evalkit.config import from_dict, to_dict
from evalkit.errors import ConfigError
from evalkit.generators.diffusion import DiffusionConfig
from evalkit.generators.fit import FITConfig


@dataclass
class UpsamplerConfig:
    """Low-resolution conditioning of an upsampler stage."""

    lowres_height: int = 36            # size of the previous stage's clips
    lowres_width: int = 64
    aug_max: float = 0.5               # training noise-augmentation level ~ U(0, aug_max), pixels in [-1, 1]
    # Diffuse the difference between the clip and its low-resolution input resized up (bilinear), and add
    # the resized input back after sampling. Not in the paper (its upsampler diffuses the clip itself); a
    # network that outputs nothing then gives bilinear resizing, not a blank clip (docs/training.md).
    residual: bool = False

    def __post_init__(self) -> None:
        if self.lowres_height < 1 or self.lowres_width < 1:
            raise ValueError(f"lowres size must be positive, got {self.lowres_height}x{self.lowres_width}")
        if self.aug_max < 0:
            raise ValueError(f"aug_max must be >= 0, got {self.aug_max}")


@dataclass
class SnapVideoModelConfig:
    fit: FITConfig = field(default_factory=FITConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    video_height: int | None = None    # clip height before padding (64x36 clips pad to 40); None = fit.height
    video_width: int | None = None
    text_dropout: float = 0.1          # label dropout for classifier-free guidance
    self_cond_rate: float = 0.9        # fraction of training samples that see first-pass latents
    upsampler: UpsamplerConfig | None = None
    text_encoder: str = "minilm"       # encoder the model is meant for (its width is fit.text_dim)

    def __post_init__(self) -> None:
        h, w = self.clip_size
        if h > self.fit.height or w > self.fit.width:
            raise ValueError(f"video size {h}x{w} exceeds the network input {self.fit.height}x{self.fit.width}")
        if (self.fit.height - h) % 2 or (self.fit.width - w) % 2:
            raise ValueError(
                f"padding {h}x{w} to {self.fit.height}x{self.fit.width} must be even on each axis (centred padding)"
            )
        for name in ("text_dropout", "self_cond_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if (self.upsampler is not None) != bool(self.fit.lowres_channels):
            raise ValueError("an upsampler config needs fit.lowres_channels > 0 and vice versa")

    @property
    def clip_size(self) -> tuple[int, int]:
        return (self.video_height or self.fit.height, self.video_width or self.fit.width)


def _fit_500m() -> SnapVideoModelConfig:
    fit = FITConfig(frames=16, height=40, width=64, group_size=[16, 5, 4], patch_width=768, num_latents=512,
                    latent_width=1024, num_blocks=6, global_layers=4, patch_head_dim=48, latent_head_dim=64,
                    cond_width=768, text_dim=1024)
    return SnapVideoModelConfig(fit=fit, video_height=36, video_width=64, text_encoder="t5-11b")


def _fit_3_9b() -> SnapVideoModelConfig:
    fit = FITConfig(frames=16, height=40, width=64, group_size=[16, 5, 4], patch_width=1024, num_latents=768,
                    latent_width=3072, num_blocks=6, global_layers=4, patch_head_dim=64, latent_head_dim=128,
                    cond_width=1024, text_dim=1024)
    return SnapVideoModelConfig(fit=fit, video_height=36, video_width=64, text_encoder="t5-11b")


def _fit_upsampler_3_9b() -> SnapVideoModelConfig:
    fit = FITConfig(frames=16, height=288, width=512, group_size=[16, 18, 16], patch_width=1024, num_latents=768,
                    latent_width=3072, num_blocks=6, global_layers=4, patch_head_dim=64, latent_head_dim=128,
                    cond_width=1024, text_dim=1024, lowres_channels=3, aug_level_token=True)
    return SnapVideoModelConfig(fit=fit, upsampler=UpsamplerConfig(lowres_height=36, lowres_width=64),
                                text_encoder="t5-11b")


def _fit_tiny() -> SnapVideoModelConfig:
    # CPU-sized. Patch tokens are twice as wide as a 1x4x4x3 patch (48 values): at width 48 they could not
    # hold the noisy patch and what the latents write back, and the denoiser stayed worse than a constant at
    # high noise (docs/training.md). A batch-8 training step (two self-conditioning passes): ~0.9 s of one core.
    fit = FITConfig(frames=16, height=40, width=64, group_size=[16, 5, 4], patch_width=96, num_latents=64,
                    latent_width=128, num_blocks=2, global_layers=4, patch_head_dim=16, latent_head_dim=32,
                    cond_width=128, text_dim=384)
    return SnapVideoModelConfig(fit=fit, video_height=36, video_width=64)


def _fit_upsampler_tiny() -> SnapVideoModelConfig:
    # Patch tokens 96 wide: an upsampler patch is 1x4x4 x (3 noisy + 3 low-res channels) = 96 values, and a
    # narrower token cannot carry the low-resolution input through to the output (at 32 the trained
    # upsampler stayed far worse than plain bilinear resizing; docs/training.md).
    fit = FITConfig(frames=16, height=72, width=128, group_size=[16, 6, 8], patch_width=96, num_latents=48,
                    latent_width=128, num_blocks=2, global_layers=2, patch_head_dim=16, latent_head_dim=32,
                    cond_width=128, text_dim=384, lowres_channels=3, aug_level_token=True)
    return SnapVideoModelConfig(fit=fit, upsampler=UpsamplerConfig(lowres_height=36, lowres_width=64))


MODEL_CONFIGS = {
    "fit-500m": _fit_500m,
    "fit-3.9b": _fit_3_9b,
    "fit-upsampler-3.9b": _fit_upsampler_3_9b,
    "fit-tiny": _fit_tiny,
    "fit-upsampler-tiny": _fit_upsampler_tiny,
}

#: parameter counts reported by the paper (Table 2 / section 3.4), for the size check
PAPER_PARAMETERS = {"fit-500m": 500e6, "fit-3.9b": 3.9e9, "fit-upsampler-3.9b": 3.9e9}


def model_config(name: str) -> SnapVideoModelConfig:
    try:
        return MODEL_CONFIGS[name]()
    except KeyError:
        raise ConfigError(f"unknown model config '{name}' (known: {', '.join(MODEL_CONFIGS)})", path="model") from None


def _merge(base: dict, overrides: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_model_config(spec: str | dict[str, Any] | SnapVideoModelConfig, *, file: str | None = None,
                         path: str = "model") -> SnapVideoModelConfig:
    """A name, a full mapping, or ``{base: name, ...overrides}`` -> validated ``SnapVideoModelConfig``."""
    if isinstance(spec, SnapVideoModelConfig):
        return spec
    if isinstance(spec, str):
        return model_config(spec)
    if not isinstance(spec, dict):
        raise ConfigError(f"expected a model config name or mapping, got {type(spec).__name__}", file=file, path=path)
    data = dict(spec)
    base = data.pop("base", None)
    if base is not None:
        if base not in MODEL_CONFIGS:
            raise ConfigError(f"unknown base model config '{base}' (known: {', '.join(MODEL_CONFIGS)})",
                              file=file, path=f"{path}.base")
        data = _merge(to_dict(model_config(base)), data)
    return from_dict(SnapVideoModelConfig, data, file=file, path=path)
