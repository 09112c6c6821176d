"""Named U-Net architectures: the two baselines of Snap Video Table 7 and a tiny CPU model.

Table 7 lists base channels, channel multipliers, residual blocks per level, attention resolutions,
attention head channels and conditioning channels; it does not say where the temporal layers go.
With ADM's resampling ResBlocks (``resblock_updown``, as in ADM's own 64-px models), a temporal
attention after every spatial attention and a temporal convolution after every ResBlock, the
parameter counts land within 5% of the published 85M and 284M (checked on the meta device in
``tests/test_unet.py``), so those are the settings used here. The text width is T5-11B's 1024.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from evalkit.config import from_dict, to_dict
from evalkit.errors import ConfigError
from evalkit.generators.diffusion import DiffusionConfig
from evalkit.generators.unet import UNetConfig

_TABLE7 = dict(num_res_blocks=2, attention_resolutions=[32, 16, 8], attention_reference=64, head_channels=64,
               cond_channels=768, text_dim=1024, dropout=0.1, scale_shift_norm=True, resblock_updown=True,
               temporal_attention=True, temporal_conv=True)

UNET_CONFIGS: dict[str, UNetConfig] = {
    "unet-85m": UNetConfig(base_channels=128, channel_mult=[1, 2, 2, 3], **_TABLE7),
    "unet-284m": UNetConfig(base_channels=192, channel_mult=[1, 2, 3, 4], **_TABLE7),
    # CPU-sized, 16 x 40 x 64 clips: four levels from 8 channels, spatial + temporal attention at the two
    # lowest (10x16, 5x8), 384-d MiniLM text. Convolutions at full resolution dominate a pixel-space U-Net's
    # cost: this is ~3.3 GFLOP per video forward (fit-tiny: ~0.7), 0.9M parameters.
    "unet-tiny": UNetConfig(base_channels=8, channel_mult=[1, 2, 4, 8], num_res_blocks=1,
                            attention_resolutions=[16, 8], attention_reference=64, head_channels=16,
                            cond_channels=64, text_dim=384, dropout=0.1, norm_groups=4, resblock_updown=False,
                            temporal_attention=True, temporal_conv=True),
}

#: parameter counts published in Snap Video Table 2/7
PAPER_PARAMETERS = {"unet-85m": 85e6, "unet-284m": 284e6}


def unet_config(name: str, **overrides) -> UNetConfig:
    """A copy of the named architecture with ``overrides`` applied (e.g. ``text_dim``)."""
    if name not in UNET_CONFIGS:
        raise ConfigError(f"unknown U-Net architecture '{name}' (known: {', '.join(sorted(UNET_CONFIGS))})",
                          path="architecture")
    return dataclasses.replace(UNET_CONFIGS[name], **overrides)


# --------------------------------------------------------------------------------------------------
# model configs: network + diffusion + clip size, the U-Net counterpart of SnapVideoModelConfig


@dataclasses.dataclass
class UNetModelConfig:
    """A trainable U-Net video model: network, EDM-with-sigma_in settings, sizes, label dropout."""

    unet: UNetConfig = dataclasses.field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = dataclasses.field(default_factory=DiffusionConfig)
    frames: int = 16                   # network input T x H x W (after padding)
    height: int = 40
    width: int = 64
    video_height: int | None = None    # clip size before padding (64x36 clips pad to 40); None = height
    video_width: int | None = None
    text_dropout: float = 0.1          # label dropout for classifier-free guidance
    text_encoder: str = "minilm"       # encoder the model is meant for (its width is unet.text_dim)

    def __post_init__(self) -> None:
        if min(self.frames, self.height, self.width) < 1:
            raise ValueError(f"frames, height, width must be positive, got {self.frames}x{self.height}x{self.width}")
        k = self.unet.downsampling
        if self.height % k or self.width % k:
            raise ValueError(f"network input {self.height}x{self.width} must be divisible by {k} (the U-Net's "
                             f"downsampling with channel_mult={self.unet.channel_mult}); pad the clips")
        h, w = self.clip_size
        if h > self.height or w > self.width:
            raise ValueError(f"video size {h}x{w} exceeds the network input {self.height}x{self.width}")
        if (self.height - h) % 2 or (self.width - w) % 2:
            raise ValueError(f"padding {h}x{w} to {self.height}x{self.width} must be even on each axis (centred)")
        if not 0 <= self.text_dropout <= 1:
            raise ValueError(f"text_dropout must be in [0, 1], got {self.text_dropout}")

    @property
    def clip_size(self) -> tuple[int, int]:
        return (self.video_height or self.height, self.video_width or self.width)


def _model(name: str, **kw) -> UNetModelConfig:
    return UNetModelConfig(unet=unet_config(name), **kw)


#: same clip sizes as the FIT configs of the same role (fit-500m / fit-tiny: 16 x 36 x 64 padded to 40)
UNET_MODEL_CONFIGS = {
    "unet-85m": lambda: _model("unet-85m", video_height=36, video_width=64, text_encoder="t5-11b"),
    "unet-284m": lambda: _model("unet-284m", video_height=36, video_width=64, text_encoder="t5-11b"),
    "unet-tiny": lambda: _model("unet-tiny", video_height=36, video_width=64),
}


def _merge(base: dict, overrides: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def resolve_unet_model_config(spec: str | dict[str, Any] | UNetModelConfig, *, file: str | None = None,
                              path: str = "model") -> UNetModelConfig:
    """A name, a full mapping, or ``{base: name, ...overrides}`` (nested mappings merge)."""
    if isinstance(spec, UNetModelConfig):
        return spec
    known = ", ".join(UNET_MODEL_CONFIGS)
    if isinstance(spec, str):
        if spec not in UNET_MODEL_CONFIGS:
            raise ConfigError(f"unknown U-Net model config '{spec}' (known: {known})", file=file, path=path)
        return UNET_MODEL_CONFIGS[spec]()
    if not isinstance(spec, dict):
        raise ConfigError(f"expected a U-Net model config name or mapping, got {type(spec).__name__}",
                          file=file, path=path)
    data = dict(spec)
    base = data.pop("base", None)
    if base is not None:
        if base not in UNET_MODEL_CONFIGS:
            raise ConfigError(f"unknown base U-Net model config '{base}' (known: {known})", file=file,
                              path=f"{path}.base")
        data = _merge(to_dict(UNET_MODEL_CONFIGS[base]()), data)
    return from_dict(UNetModelConfig, data, file=file, path=path)
