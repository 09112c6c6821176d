"""ADM-style video U-Net with inserted temporal layers: the baseline Snap Video compares FIT against.

The network is the ADM U-Net of Dhariwal & Nichol applied to every frame (frames folded into the
batch): ResBlocks with scale-shift normalisation driven by an embedding of the noise level, the frame
rate and the pooled text, and GLIDE-style spatial attention whose keys/values are the frame's own
pixels joined with the projected text tokens (self- and cross-attention in one softmax, so a
dropped caption never leaves the softmax empty). Video comes in through temporal layers that mix
frames at each pixel: a temporal self-attention with a T5-style relative position bias after every
spatial attention and, optionally, a temporal (3, 1, 1) convolution after every ResBlock. Every
temporal branch is residual with a zero-initialised output projection, so a fresh network is
exactly the per-frame image network (VDM, Make-A-Video, Imagen Video do the same).

Images (``cond.fps`` = inf) travel either as static clips (all frames equal, handled like any
video) or with their temporal branches switched off, as ``image_mode`` chooses.

The call convention is FIT's (``evalkit.generators.conditioning``): ``net(c_in * x_sigma, c_noise,
cond) -> F`` on (B, C, T, H, W), so preconditioning, loss, sampler and trainer are shared and the two
baselines differ only in the network. The noise level, frame interval and original resolution are
embedded with FIT's ``ScalarEmbedding`` and summed with the pooled text into ADM's embedding vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from evalkit.errors import InputError
from evalkit.generators.conditioning import Conditioning, ScalarEmbedding, frame_interval

ImageMode = Literal["static_clip", "skip_temporal"]


@dataclass
class UNetConfig:
    """Architecture of the video U-Net (field names follow Snap Video Table 7 / ADM)."""

    in_channels: int = 3
    out_channels: int = 3
    base_channels: int = 128
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 2, 3])
    num_res_blocks: int = 2
    #: feature-map sizes (at ``attention_reference`` input width) that get spatial+temporal attention
    attention_resolutions: list[int] = field(default_factory=lambda: [32, 16, 8])
    #: ADM's ``image_size``: attention sits where reference // downsampling is in attention_resolutions
    attention_reference: int = 64
    head_channels: int = 64
    #: width the text tokens are projected to before the cross-attention ("conditioning channels")
    cond_channels: int = 768
    #: width of the text encoder's token embeddings fed to ``forward``
    text_dim: int = 768
    dropout: float = 0.1
    scale_shift_norm: bool = True
    resblock_updown: bool = False
    norm_groups: int = 32
    temporal_attention: bool = True
    temporal_conv: bool = False
    rel_pos_buckets: int = 32
    rel_pos_max_distance: int = 32
    #: how image samples pass: as static clips, or with every temporal branch switched off
    image_mode: ImageMode = "static_clip"
    #: embed the frame interval 1/fps into the conditioning embedding (images: interval 0)
    fps_conditioning: bool = True
    #: embed the original (height, width) of the training clip, as FIT's resolution token does
    resolution_conditioning: bool = True

    def __post_init__(self) -> None:
        if not self.channel_mult:
            raise ValueError("channel_mult must list at least one level")
        for name in ("in_channels", "out_channels", "base_channels", "num_res_blocks", "head_channels",
                     "cond_channels", "text_dim", "norm_groups", "attention_reference"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for mult in self.channel_mult:
            ch = self.base_channels * mult
            if ch % self.norm_groups:
                raise ValueError(f"norm_groups={self.norm_groups} must divide every level width; "
                                 f"base_channels*{mult}={ch} is not divisible")
        for res in self.attention_resolutions:
            if res < 1 or self.attention_reference % res:
                raise ValueError(f"attention_resolutions entry {res} must divide attention_reference="
                                 f"{self.attention_reference}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def attention_downsampling(self) -> set[int]:
        return {self.attention_reference // r for r in self.attention_resolutions}

    @property
    def downsampling(self) -> int:
        """Total spatial downsampling factor; inputs must be divisible by it."""
        return 2 ** (len(self.channel_mult) - 1)


# --------------------------------------------------------------------------------------------------
# helpers


def zero_module(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def relative_position_bucket(relative: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """T5's bidirectional log-spaced bucketing of signed distances (j - i)."""
    num_buckets //= 2
    bucket = (relative > 0).long() * num_buckets
    n = relative.abs()
    max_exact = num_buckets // 2
    is_small = n < max_exact
    large = max_exact + (
        torch.log(n.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).long()
    large = large.clamp(max=num_buckets - 1)
    return bucket + torch.where(is_small, n, large)


# --------------------------------------------------------------------------------------------------
# blocks; all spatial blocks see (B*T, C, H, W), temporal blocks see (B, C, T, H, W) via ``frames``


class ResBlock(nn.Module):
    """ADM residual block with scale-shift (FiLM) conditioning, optional down/up sampling."""

    def __init__(self, channels: int, emb_dim: int, out_channels: int, dropout: float, groups: int,
                 scale_shift: bool, down: bool = False, up: bool = False):
        super().__init__()
        self.scale_shift = scale_shift
        self.down, self.up = down, up
        self.norm1 = nn.GroupNorm(groups, channels)
        self.conv1 = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_channels if scale_shift else out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            return F.avg_pool2d(x, 2)
        if self.up:
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return x

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(x))
        h = self.conv1(self._resample(h))
        x = self._resample(x)
        e = self.emb(F.silu(emb))[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class SpatialAttention(nn.Module):
    """Per-frame self-attention over pixels whose keys/values also hold the text tokens (GLIDE)."""

    def __init__(self, channels: int, head_channels: int, cond_channels: int, groups: int):
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.text_kv = nn.Linear(cond_channels, 2 * channels)
        self.proj = zero_module(nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
        # x (N, C, H, W) with N = B*T; context (N, L, D); context_mask (N, L) bool, True = keep
        n, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (N, HW, C)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        tk, tv = self.text_kv(context).chunk(2, dim=-1)
        k = torch.cat([k, tk], dim=1)
        v = torch.cat([v, tv], dim=1)
        keep = torch.cat([context_mask.new_ones(n, h * w), context_mask], dim=1)  # (N, HW+L)
        out = _attention(q, k, v, self.heads, keep[:, None, None, :])
        return x + self.proj(out).transpose(1, 2).reshape(n, c, h, w)


class TemporalAttention(nn.Module):
    """Self-attention across frames at each pixel, with a learned relative position bias."""

    def __init__(self, channels: int, head_channels: int, groups: int, buckets: int, max_distance: int):
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.buckets, self.max_distance = buckets, max_distance
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.rel_bias = nn.Embedding(buckets, self.heads)
        self.proj = zero_module(nn.Linear(channels, channels))

    def bias(self, frames: int, device: torch.device) -> torch.Tensor:
        pos = torch.arange(frames, device=device)
        bucket = relative_position_bucket(pos[None, :] - pos[:, None], self.buckets, self.max_distance)
        return self.rel_bias(bucket).permute(2, 0, 1)  # (heads, T, T)

    def forward(self, x: torch.Tensor, frames: int, active: torch.Tensor | None) -> torch.Tensor:
        bt, c, h, w = x.shape
        b = bt // frames
        y = self.norm(x)  # GroupNorm is per frame here, like every spatial norm
        tokens = y.reshape(b, frames, c, h * w).permute(0, 3, 1, 2).reshape(b * h * w, frames, c)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        out = self.proj(_attention(q, k, v, self.heads, self.bias(frames, x.device)[None]))
        out = out.reshape(b, h * w, frames, c).permute(0, 2, 3, 1).reshape(bt, c, h, w)
        return x + _gate(out, active, frames)


class TemporalConv(nn.Module):
    """Residual (3, 1, 1) convolution across frames; zero-initialised output."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.conv = zero_module(nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0)))

    def forward(self, x: torch.Tensor, frames: int, active: torch.Tensor | None) -> torch.Tensor:
        bt, c, h, w = x.shape
        y = F.silu(self.norm(x)).reshape(bt // frames, frames, c, h, w).transpose(1, 2)
        out = self.conv(y).transpose(1, 2).reshape(bt, c, h, w)
        return x + _gate(out, active, frames)


def _gate(out: torch.Tensor, active: torch.Tensor | None, frames: int) -> torch.Tensor:
    """Zero the temporal branch for samples whose ``active`` flag is False (images)."""
    if active is None:
        return out
    return out * active.to(out.dtype).repeat_interleave(frames)[:, None, None, None]


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, mask: torch.Tensor) -> torch.Tensor:
    n, lq, c = q.shape
    split = lambda t: t.reshape(n, t.shape[1], heads, c // heads).transpose(1, 2)  # noqa: E731
    out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask)
    return out.transpose(1, 2).reshape(n, lq, c)


class Stage(nn.Module):
    """A sequence of layers at one resolution: ResBlock [+ temporal conv] [+ attention + temporal attention]."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor,
                frames: int, active: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layers:
            if isinstance(layer, (ResBlock, Downsample, Upsample)):
                x = layer(x, emb)
            elif isinstance(layer, SpatialAttention):
                x = layer(x, context, context_mask)
            else:
                x = layer(x, frames, active)
        return x


# --------------------------------------------------------------------------------------------------


class VideoUNet(nn.Module):
    """The video U-Net. ``forward`` returns the raw network output F with the input's shape."""

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        cfg = self.config = config or UNetConfig()
        ch0 = cfg.base_channels
        emb_dim = 4 * ch0
        self.emb_dim = emb_dim
        # the same scalar embeddings (and scales) as FIT's conditioning tokens, summed as in ADM
        self.sigma_embed = ScalarEmbedding(emb_dim, scale=1000.0, features=ch0)
        self.fps_embed = ScalarEmbedding(emb_dim, scale=1000.0, features=ch0) if cfg.fps_conditioning else None
        self.resolution_embed = (ScalarEmbedding(emb_dim, scale=1.0, num_values=2, features=ch0)
                                 if cfg.resolution_conditioning else None)
        self.text_proj = nn.Linear(cfg.text_dim, cfg.cond_channels)
        self.text_norm = nn.LayerNorm(cfg.cond_channels)
        self.pool_proj = nn.Linear(cfg.cond_channels, emb_dim)

        def res(cin: int, cout: int, **kw) -> list[nn.Module]:
            layers: list[nn.Module] = [ResBlock(cin, emb_dim, cout, cfg.dropout, cfg.norm_groups,
                                                cfg.scale_shift_norm, **kw)]
            if cfg.temporal_conv:
                layers.append(TemporalConv(cout, cfg.norm_groups))
            return layers

        def attn(c: int) -> list[nn.Module]:
            layers: list[nn.Module] = [SpatialAttention(c, cfg.head_channels, cfg.cond_channels, cfg.norm_groups)]
            if cfg.temporal_attention:
                layers.append(TemporalAttention(c, cfg.head_channels, cfg.norm_groups, cfg.rel_pos_buckets,
                                                cfg.rel_pos_max_distance))
            return layers

        def resample(c: int, down: bool) -> list[nn.Module]:
            if cfg.resblock_updown:
                return res(c, c, down=down, up=not down)
            return [Downsample(c) if down else Upsample(c)]

        attn_ds = cfg.attention_downsampling
        self.conv_in = nn.Conv2d(cfg.in_channels, ch0, 3, padding=1)
        self.down = nn.ModuleList()
        skips = [ch0]
        ch, ds = ch0, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers = res(ch, ch0 * mult)
                ch = ch0 * mult
                if ds in attn_ds:
                    layers += attn(ch)
                self.down.append(Stage(layers))
                skips.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.down.append(Stage(resample(ch, down=True)))
                skips.append(ch)
                ds *= 2
        self.middle = Stage(res(ch, ch) + attn(ch) + res(ch, ch))
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = res(ch + skips.pop(), ch0 * mult)
                ch = ch0 * mult
                if ds in attn_ds:
                    layers += attn(ch)
                if level and i == cfg.num_res_blocks:
                    layers += resample(ch, down=False)
                    ds //= 2
                self.up.append(Stage(layers))
        self.norm_out = nn.GroupNorm(cfg.norm_groups, ch)
        self.conv_out = zero_module(nn.Conv2d(ch, cfg.out_channels, 3, padding=1))

    # ----------------------------------------------------------------------------------------------

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``InputError`` for a layout or size the network cannot process."""
        cfg = self.config
        if x.ndim != 5 or x.shape[1] != cfg.in_channels:
            raise InputError(f"VideoUNet input: expected (B, {cfg.in_channels}, T, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        k = cfg.downsampling
        if h % k or w % k:
            raise InputError(
                f"VideoUNet input: height and width must be divisible by {k} (2 ** (len(channel_mult) - 1) "
                f"with channel_mult={cfg.channel_mult}), got {h}x{w}; pad the video (Snap Video pads 36 -> 40)"
            )

    def embed(self, c_noise: torch.Tensor, pooled: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """ADM's embedding vector: noise level + pooled text (+ frame interval + original resolution)."""
        emb = self.sigma_embed(c_noise) + self.pool_proj(pooled)
        if self.fps_embed is not None:
            emb = emb + self.fps_embed(frame_interval(cond.fps.to(c_noise.device)))
        if self.resolution_embed is not None:
            emb = emb + self.resolution_embed(cond.resolution.to(c_noise.device))
        return emb

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """Raw output F (B, C, T, H, W) for ``x`` = c_in * x_sigma, ``c_noise`` (B,) = ln(sigma)/4.

        Reads ``cond.text``/``text_mask`` (tokens for cross-attention and pooling), ``cond.fps``
        (inf marks images) and ``cond.resolution``; the shared call convention of
        ``evalkit.generators.conditioning``.
        """
        self.check_input(x)
        b, _, t, h, w = x.shape
        text_mask = cond.text_mask.to(x.device).bool()
        context = self.text_norm(self.text_proj(cond.text.to(x.device, x.dtype)))
        weights = text_mask.to(context.dtype)[..., None]
        pooled = (context * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        emb = self.embed(c_noise.reshape(-1).expand(b).to(x.dtype), pooled, cond)

        active = ~cond.is_image.to(x.device) if self.config.image_mode == "skip_temporal" else None
        emb_f = emb.repeat_interleave(t, dim=0)
        ctx_f = context.repeat_interleave(t, dim=0)
        mask_f = text_mask.repeat_interleave(t, dim=0)

        hcur = self.conv_in(x.transpose(1, 2).reshape(b * t, -1, h, w))
        skips = [hcur]
        for stage in self.down:
            hcur = stage(hcur, emb_f, ctx_f, mask_f, t, active)
            skips.append(hcur)
        hcur = self.middle(hcur, emb_f, ctx_f, mask_f, t, active)
        for stage in self.up:
            hcur = stage(torch.cat([hcur, skips.pop()], dim=1), emb_f, ctx_f, mask_f, t, active)
        out = self.conv_out(F.silu(self.norm_out(hcur)))
        return out.reshape(b, t, -1, h, w).transpose(1, 2)

    def temporal_modules(self) -> list[nn.Module]:
        return [m for m in self.modules() if isinstance(m, (TemporalAttention, TemporalConv))]


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (works on the meta device, so paper-size models cost nothing)."""
    return sum(p.numel() for p in module.parameters())
