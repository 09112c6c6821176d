"""Named U-Net architectures: the two baselines of Snap Video Table 7 and a tiny CPU model.

Table 7 lists base channels, channel multipliers, residual blocks per level, attention resolutions,
attention head channels and conditioning channels; it does not say where the temporal layers go.
With ADM's resampling ResBlocks (``resblock_updown``, as in ADM's own 64-px models), a temporal
attention after every spatial attention and a temporal convolution after every ResBlock, the
parameter counts land within 5% of the published 85M and 284M (checked on the meta device in
``tests/test_unet.py``), so those are the settings used here. The text width is T5-11B's 1024.
"""

from __future__ import annotations

import dataclasses

from evalkit.generators.unet import UNetConfig

from evalkit.errors import ConfigError

_TABLE7 = dict(num_res_blocks=2, attention_resolutions=[32, 16, 8], attention_reference=64, head_channels=64,
               cond_channels=768, text_dim=1024, dropout=0.1, scale_shift_norm=True, resblock_updown=True,
               temporal_attention=True, temporal_conv=True)

UNET_CONFIGS: dict[str, UNetConfig] = {
    "unet-85m": UNetConfig(base_channels=128, channel_mult=[1, 2, 2, 3], **_TABLE7),
    "unet-284m": UNetConfig(base_channels=192, channel_mult=[1, 2, 3, 4], **_TABLE7),
    # CPU-sized: two levels, attention (spatial + temporal) at the lower one, 384-d MiniLM text
    "unet-tiny": UNetConfig(base_channels=32, channel_mult=[1, 2], num_res_blocks=1, attention_resolutions=[32],
                            attention_reference=64, head_channels=32, cond_channels=128, text_dim=384,
                            dropout=0.1, norm_groups=8, resblock_updown=False, temporal_attention=True,
                            temporal_conv=True),
}

#: parameter counts published in Snap Video Table 2/7
PAPER_PARAMETERS = {"unet-85m": 85e6, "unet-284m": 284e6}


def unet_config(name: str, **overrides) -> UNetConfig:
    """A copy of the named architecture with ``overrides`` applied (e.g. ``text_dim``)."""
    if name not in UNET_CONFIGS:
        raise ConfigError(f"unknown U-Net architecture '{name}' (known: {', '.join(sorted(UNET_CONFIGS))})",
                          path="architecture")
    return dataclasses.replace(UNET_CONFIGS[name], **overrides)
