"""Snap Video FIT: a far-reaching interleaved transformer over 1x4x4 video patches (section 3.4).

Data flow of one call ``FIT(x_in, c_noise, cond) -> (F, latents)``:
patchify (B, C, T, H, W) into 1x4x4 patches -> linear projection (or, with ``embed_kernel``, a strided
convolution that also reads the neighbouring pixels) + learnable (factorised t/h/w) positional
embeddings -> split into G groups, each spanning ALL frames and a spatial window -> L latent tokens
(learned embedding + self-conditioning from the previous call's latents) -> N blocks of

    1. conditioning read: latents cross-attend to [text tokens, sigma, frame rate, resolution(, aug)]; FF
    2. group-wise read: each group's L/G latents cross-attend to that group's patch tokens; FF
    3. K global layers: self-attention over all L latents; FF (dropout)
    4. group-wise write: each group's patch tokens cross-attend to that group's latents; FF

-> LayerNorm + linear head on patch tokens -> un-patchify -> F. All sub-layers are pre-LayerNorm
residuals; cross-attentions also normalise keys/values. There are no local (patch self-attention)
layers; ``local_mixing`` (not in the paper, off by default) adds a residual depthwise convolution over
the patch grid after each write. Patch tokens stay in group layout (B*G, P/G, d_p), ordered (t_group, h_group, w_group, t, h, w).

Self-conditioning: ``cond.carry`` holds the latents returned by the previous call (None = zeros);
they enter only through LN0(MLP(carry)) added to the latent initialisation, with LN0 zero-initialised
so the path starts inactive. The module keeps no state between calls.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from evalkit.errors import InputError
from evalkit.generators.conditioning import Conditioning, ConditioningTokens

POS_INITS = ("normal", "sincos")


@dataclass
class FITConfig:
    """Architecture of one FIT stage (names follow Snap Video Table 8)."""

    frames: int = 16                   # network input size T x H x W (after any padding)
    height: int = 40
    width: int = 64
    patch_size: list[int] = field(default_factory=lambda: [1, 4, 4])   # (T, H, W) pixels
    group_size: list[int] = field(default_factory=lambda: [16, 5, 4])  # (T, H, W) in patches
    in_channels: int = 3
    out_channels: int = 3
    lowres_channels: int = 0           # upsampler: channels of the low-res video concatenated to the input
    aug_level_token: bool = False      # upsampler: noise-augmentation level as a conditioning token
    patch_width: int = 768
    num_latents: int = 512
    latent_width: int = 1024
    num_blocks: int = 6
    global_layers: int = 4             # latent self-attention layers per block
    patch_head_dim: int = 48           # head channels where patch tokens are queries
    latent_head_dim: int = 64          # head channels where latents are queries
    cond_width: int = 768              # conditioning channels
    text_dim: int = 1024               # width of the text encoder's token embeddings
    ff_ratio: int = 4
    dropout: float = 0.1               # in the feed-forwards of the global layers
    pos_init: str = "normal"           # initial positional embeddings: "normal" or "sincos" (see init_positional)
    pos_init_std: float = 0.02         # pos_init "normal": standard deviation of each of the t/h/w tables
    pos_sincos_amplitude: float = 1.0  # pos_init "sincos": multiplier of the sin/cos tables
    embed_kernel: list[int] | None = None  # (T, H, W) pixels each patch token is embedded from; None = the patch
    local_mixing: list[int] | None = None  # (T, H, W) patches of a depthwise conv after each write; None = none

    def __post_init__(self) -> None:
        for name in ("patch_size", "group_size"):
            value = getattr(self, name)
            if len(value) != 3 or any(int(v) < 1 for v in value):
                raise ValueError(f"{name} must be three positive integers (T, H, W), got {value}")
        for name, head in (("patch_width", "patch_head_dim"), ("latent_width", "latent_head_dim")):
            if getattr(self, name) % getattr(self, head):
                raise ValueError(f"{name}={getattr(self, name)} must be divisible by {head}={getattr(self, head)}")
        try:
            check_layout((self.frames, self.height, self.width), self.patch_size, self.group_size,
                         self.num_latents, where="FITConfig")
        except InputError as exc:
            raise ValueError(str(exc)) from None
        if self.embed_kernel is not None:
            kernel, patch = self.embed_kernel, self.patch_size
            if len(kernel) != 3 or any(int(k) < int(p) or (int(k) - int(p)) % 2 for k, p in zip(kernel, patch)):
                raise ValueError(f"embed_kernel must be three sizes (T, H, W), each at least the patch size {patch} "
                                 f"and larger by an even number (centred on its patch), got {kernel}")
        if self.local_mixing is not None:
            if len(self.local_mixing) != 3 or any(int(k) < 1 or int(k) % 2 == 0 for k in self.local_mixing):
                raise ValueError(f"local_mixing must be three odd sizes (T, H, W) in patches, got {self.local_mixing}")
        if self.pos_init not in POS_INITS:
            raise ValueError(f"pos_init must be one of {POS_INITS}, got {self.pos_init!r}")
        if not self.pos_init_std >= 0:
            raise ValueError(f"pos_init_std must be >= 0, got {self.pos_init_std}")
        if not self.pos_sincos_amplitude >= 0:
            raise ValueError(f"pos_sincos_amplitude must be >= 0, got {self.pos_sincos_amplitude}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def patch_grid(self) -> tuple[int, int, int]:
        return tuple(s // p for s, p in zip((self.frames, self.height, self.width), self.patch_size))

    @property
    def group_grid(self) -> tuple[int, int, int]:
        return tuple(n // g for n, g in zip(self.patch_grid, self.group_size))

    @property
    def num_groups(self) -> int:
        t, h, w = self.group_grid
        return t * h * w

    @property
    def num_patches(self) -> int:
        t, h, w = self.patch_grid
        return t * h * w

    @property
    def latents_per_group(self) -> int:
        return self.num_latents // self.num_groups


def check_layout(size, patch_size, group_size, num_latents: int, *, where: str) -> None:
    """Raise a clear error unless patches tile the clip, groups tile the patch grid and latents split evenly."""
    axes = ("frames", "height", "width")
    for axis, s, p in zip(axes, size, patch_size):
        if s % p:
            raise InputError(f"{where}: {axis} {s} is not divisible by the patch size {p} (patch_size={list(patch_size)})")
    grid = [s // p for s, p in zip(size, patch_size)]
    for axis, n, g in zip(axes, grid, group_size):
        if n % g:
            raise InputError(
                f"{where}: {n} patches along {axis} are not divisible by the group size {g} "
                f"(patch grid {grid}, group_size={list(group_size)} in patches)"
            )
    groups = 1
    for n, g in zip(grid, group_size):
        groups *= n // g
    if num_latents % groups:
        raise InputError(f"{where}: num_latents={num_latents} cannot be split evenly over {groups} groups")


# -- token bookkeeping --------------------------------------------------------------------------

def patchify(x: torch.Tensor, patch: tuple[int, int, int]) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, Tp, Hp, Wp, C*pt*ph*pw) non-overlapping patches."""
    b, c, t, h, w = x.shape
    pt, ph, pw = patch
    x = x.reshape(b, c, t // pt, pt, h // ph, ph, w // pw, pw)
    return x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, t // pt, h // ph, w // pw, c * pt * ph * pw)


def unpatchify(tokens: torch.Tensor, patch: tuple[int, int, int], channels: int) -> torch.Tensor:
    """Inverse of ``patchify``: (B, Tp, Hp, Wp, C*pt*ph*pw) -> (B, C, T, H, W)."""
    b, tp, hp, wp, _ = tokens.shape
    pt, ph, pw = patch
    x = tokens.reshape(b, tp, hp, wp, channels, pt, ph, pw)
    return x.permute(0, 4, 1, 5, 2, 6, 3, 7).reshape(b, channels, tp * pt, hp * ph, wp * pw)


def to_groups(tokens: torch.Tensor, group: tuple[int, int, int]) -> torch.Tensor:
    """(B, Tp, Hp, Wp, D) -> (B*G, gt*gh*gw, D), groups ordered (t, h, w), tokens inside likewise."""
    b, tp, hp, wp, d = tokens.shape
    gt, gh, gw = group
    x = tokens.reshape(b, tp // gt, gt, hp // gh, gh, wp // gw, gw, d)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, gt * gh * gw, d)


def from_groups(groups: torch.Tensor, grid: tuple[int, int, int], group: tuple[int, int, int]) -> torch.Tensor:
    """Inverse of ``to_groups``: (B*G, n, D) -> (B, Tp, Hp, Wp, D)."""
    tp, hp, wp = grid
    gt, gh, gw = group
    d = groups.shape[-1]
    x = groups.reshape(-1, tp // gt, hp // gh, wp // gw, gt, gh, gw, d)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(-1, tp, hp, wp, d)


# -- layers -------------------------------------------------------------------------------------

class PatchEmbedding(nn.Module):
    """(B, C, T, H, W) -> (B, Tp, Hp, Wp, width) patch tokens.

    Without ``kernel`` (the paper's FIT) each token is a linear map of its own 1x4x4 patch. With a larger
    ``kernel`` it is a strided convolution centred on the patch (zero padding at the clip's edges), so a
    token also reads its neighbours: at high noise one patch holds too little signal to say whether it is
    part of a shape, and a token that pools a neighbourhood in space and time does (docs/training.md).
    Parameters are ``weight`` and ``bias`` as in ``nn.Linear``, so checkpoints keep their names.
    """

    def __init__(self, channels: int, width: int, patch: list[int], kernel: list[int] | None = None):
        super().__init__()
        self.patch = tuple(int(p) for p in patch)
        self.kernel = tuple(int(k) for k in kernel) if kernel is not None else None
        self.patch_fan_in = channels * self.patch[0] * self.patch[1] * self.patch[2]
        if self.kernel is None:
            default = nn.Linear(self.patch_fan_in, width)
        else:
            default = nn.Conv3d(channels, width, self.kernel)
            self.padding = tuple((k - p) // 2 for k, p in zip(self.kernel, self.patch))  # patch at the centre
        self.weight, self.bias = default.weight, default.bias

    def reset_parameters(self) -> None:
        """Weights ~ N(0, 0.02^2) for a patch; a larger kernel scaled down so tokens start at the same size."""
        fan_in = self.weight[0].numel()
        nn.init.trunc_normal_(self.weight, std=0.02 * (self.patch_fan_in / fan_in) ** 0.5)
        nn.init.zeros_(self.bias)

    def centred(self, linear_weight: torch.Tensor) -> torch.Tensor:
        """This embedding's weight that computes exactly what a linear patch embedding's weight computes.

        The patch's weights sit at the centre of the kernel, the neighbours' weights are zero: a network
        trained with the paper's embedding continues training with a wider one from the same function.
        """
        channels = self.weight.shape[1]
        out = torch.zeros_like(self.weight)
        window = tuple(slice(s, s + p) for s, p in zip(self.padding, self.patch))
        out[(slice(None), slice(None), *window)] = linear_weight.reshape(out.shape[0], channels, *self.patch)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel is None:
            return F.linear(patchify(x, self.patch), self.weight, self.bias)
        return F.conv3d(x, self.weight, self.bias, stride=self.patch, padding=self.padding).permute(0, 2, 3, 4, 1)


class Attention(nn.Module):
    """Pre-LN multi-head attention; with ``context_dim`` it is cross-attention (keys/values normalised too)."""

    def __init__(self, dim: int, head_dim: int, context_dim: int | None = None):
        super().__init__()
        self.heads = dim // head_dim
        self.norm = nn.LayerNorm(dim)
        self.cross = context_dim is not None
        self.norm_context = nn.LayerNorm(context_dim) if self.cross else None
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim if self.cross else dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (N, n, dim); context (N, m, context_dim); mask (N, m) bool, True = attend. Returns the update."""
        h = self.norm(x)
        ctx = self.norm_context(context) if self.cross else h
        n, q_len, dim = h.shape
        q = self.q(h).reshape(n, q_len, self.heads, -1).transpose(1, 2)
        k, v = self.kv(ctx).reshape(n, ctx.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn_mask = mask[:, None, None, :] if mask is not None else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out(out.transpose(1, 2).reshape(n, q_len, dim))


class FeedForward(nn.Module):
    def __init__(self, dim: int, ratio: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, ratio * dim), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LocalMixing(nn.Module):
    """Residual depthwise convolution over the patch grid: LN -> depthwise Conv3d -> GELU -> Linear.

    Not in the paper's FIT, where a patch token meets other tokens only through its group's latents, so
    each token decides alone what its own 4x4 pixels hold. This layer lets neighbouring tokens in space
    and time agree (a shape's edge, the same shape one frame later), and its zero padding tells a token
    where the clip's borders are (the conditional positional encoding of CPVT). A per-channel gain on the
    output starts at zero, so a network trained without the layer continues from the same function. The
    gain is a vector on purpose: LAMB scales each matrix's step to the matrix's own norm, so a
    zero-initialised output matrix would stay near zero for the whole run, where a vector (no weight
    decay, hence no trust ratio) takes plain Adam steps.
    """

    def __init__(self, width: int, kernel: list[int], grid: tuple[int, int, int], group: tuple[int, int, int]):
        super().__init__()
        self.grid, self.group = tuple(grid), tuple(int(g) for g in group)
        self.norm = nn.LayerNorm(width)
        self.conv = nn.Conv3d(width, width, tuple(int(k) for k in kernel), padding=tuple(int(k) // 2 for k in kernel),
                              groups=width)
        self.proj = nn.Linear(width, width)
        self.gain = nn.Parameter(torch.zeros(width))

    def reset_parameters(self) -> None:
        """The convolution and the gain; ``FIT.reset_parameters`` sets the norm and projection like its others."""
        self.conv.reset_parameters()   # PyTorch's default: the mixed tokens start at about the input's scale
        nn.init.zeros_(self.gain)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """patches (B*G, n, d) in group layout -> the update, same layout."""
        grid = from_groups(self.norm(patches), self.grid, self.group)          # (B, Tp, Hp, Wp, d)
        mixed = self.conv(grid.permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1)
        return to_groups(self.proj(F.gelu(mixed)) * self.gain, self.group)


class FITBlock(nn.Module):
    """Conditioning read, group-wise read, K global layers, group-wise write; FF after each attention."""

    def __init__(self, cfg: FITConfig):
        super().__init__()
        dl, dp = cfg.latent_width, cfg.patch_width
        self.cond_read = Attention(dl, cfg.latent_head_dim, cfg.cond_width)
        self.cond_ff = FeedForward(dl, cfg.ff_ratio)
        self.read = Attention(dl, cfg.latent_head_dim, dp)
        self.read_ff = FeedForward(dl, cfg.ff_ratio)
        self.layers = nn.ModuleList(
            nn.ModuleList([Attention(dl, cfg.latent_head_dim), FeedForward(dl, cfg.ff_ratio, cfg.dropout)])
            for _ in range(cfg.global_layers)
        )
        self.write = Attention(dp, cfg.patch_head_dim, dl)
        self.write_ff = FeedForward(dp, cfg.ff_ratio)
        self.mixing = (LocalMixing(dp, cfg.local_mixing, cfg.patch_grid, cfg.group_size)
                       if cfg.local_mixing is not None else None)

    def forward(self, patches: torch.Tensor, latents: torch.Tensor, context: torch.Tensor,
                context_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """patches (B*G, n, d_p); latents (B, L, d_l); context (B, m, d_c); context_mask (B, m)."""
        b, num_latents, dl = latents.shape
        groups = patches.shape[0] // b
        latents = latents + self.cond_read(latents, context, context_mask)
        latents = latents + self.cond_ff(latents)
        lat_g = latents.reshape(b * groups, num_latents // groups, dl)
        lat_g = lat_g + self.read(lat_g, patches)
        lat_g = lat_g + self.read_ff(lat_g)
        latents = lat_g.reshape(b, num_latents, dl)
        for attn, ff in self.layers:
            latents = latents + attn(latents)
            latents = latents + ff(latents)
        lat_g = latents.reshape(b * groups, num_latents // groups, dl)
        patches = patches + self.write(patches, lat_g)
        patches = patches + self.write_ff(patches)
        if self.mixing is not None:
            patches = patches + self.mixing(patches)
        return patches, latents


class FIT(nn.Module):
    """The Snap Video denoiser network: ``forward(x_in, c_noise, cond) -> (F, latents)``."""

    def __init__(self, config: FITConfig | None = None):
        super().__init__()
        cfg = self.config = config or FITConfig()
        tp, hp, wp = cfg.patch_grid
        dp, dl = cfg.patch_width, cfg.latent_width
        self.patch_embed = PatchEmbedding(cfg.in_channels + cfg.lowres_channels, dp, cfg.patch_size, cfg.embed_kernel)
        self.pos_t = nn.Parameter(torch.zeros(tp, dp))
        self.pos_h = nn.Parameter(torch.zeros(hp, dp))
        self.pos_w = nn.Parameter(torch.zeros(wp, dp))
        self.latent_embed = nn.Parameter(torch.zeros(cfg.num_latents, dl))
        self.self_cond = nn.Sequential(nn.LayerNorm(dl), nn.Linear(dl, dl), nn.GELU(), nn.Linear(dl, dl))
        self.self_cond_norm = nn.LayerNorm(dl)  # LN0: zero scale and bias, path inactive at init
        self.text_proj = nn.Linear(cfg.text_dim, cfg.cond_width)
        self.scalar_tokens = ConditioningTokens(cfg.cond_width, aug_level=cfg.aug_level_token)
        self.blocks = nn.ModuleList(FITBlock(cfg) for _ in range(cfg.num_blocks))
        self.out_norm = nn.LayerNorm(dp)
        out_dim = cfg.out_channels * cfg.patch_size[0] * cfg.patch_size[1] * cfg.patch_size[2]
        self.out_proj = nn.Linear(dp, out_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, (PatchEmbedding, LocalMixing)):
                m.reset_parameters()
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        init_positional(self.config, self.pos_t, self.pos_h, self.pos_w)
        nn.init.trunc_normal_(self.latent_embed, std=0.02)
        nn.init.zeros_(self.self_cond_norm.weight)
        nn.init.zeros_(self.self_cond_norm.bias)

    def no_weight_decay(self) -> set[str]:
        """Embeddings that ``optimizer.no_decay_embeddings`` keeps out of weight decay and the trust ratio."""
        return {"pos_t", "pos_h", "pos_w", "latent_embed"}

    def check_input(self, x: torch.Tensor, cond: Conditioning) -> None:
        cfg = self.config
        expected = (cfg.in_channels, cfg.frames, cfg.height, cfg.width)
        if x.ndim != 5:
            raise InputError(f"FIT input: expected (B, C, T, H, W), got shape {tuple(x.shape)}")
        if tuple(x.shape[1:]) != expected:
            check_layout(tuple(x.shape[2:]), cfg.patch_size, cfg.group_size, cfg.num_latents, where="FIT input")
            raise InputError(
                f"FIT input: expected (B, {', '.join(map(str, expected))}) as configured (channels, frames, height, "
                f"width), got {tuple(x.shape)}; positional embeddings are sized for the configured clip"
            )
        if cond.batch_size != x.shape[0]:
            raise InputError(f"FIT: conditioning has batch {cond.batch_size}, input has {x.shape[0]}")
        if cond.text.shape[-1] != cfg.text_dim:
            raise InputError(f"FIT: text tokens have width {cond.text.shape[-1]}, the model expects text_dim={cfg.text_dim}")
        if cfg.lowres_channels:
            want = (x.shape[0], cfg.lowres_channels, *x.shape[2:])
            if cond.lowres is None or tuple(cond.lowres.shape) != want:
                got = None if cond.lowres is None else tuple(cond.lowres.shape)
                raise InputError(f"FIT upsampler: Conditioning.lowres must have shape {want}, got {got}")
        if cond.carry is not None and tuple(cond.carry.shape) != (x.shape[0], cfg.num_latents, cfg.latent_width):
            raise InputError(
                f"FIT: carried latents must have shape {(x.shape[0], cfg.num_latents, cfg.latent_width)}, "
                f"got {tuple(cond.carry.shape)}"
            )

    def initial_latents(self, carry: torch.Tensor | None, batch: int) -> torch.Tensor:
        cfg = self.config
        if carry is None:
            carry = self.latent_embed.new_zeros(batch, cfg.num_latents, cfg.latent_width)
        return self.latent_embed[None] + self.self_cond_norm(self.self_cond(carry.to(self.latent_embed.dtype)))

    def forward(self, x_in: torch.Tensor, c_noise: torch.Tensor,
                cond: Conditioning) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        self.check_input(x_in, cond)
        b = x_in.shape[0]
        if cfg.lowres_channels:
            x_in = torch.cat([x_in, cond.lowres.to(x_in.dtype)], dim=1)
        tokens = self.patch_embed(x_in)
        tokens = tokens + self.pos_t[:, None, None] + self.pos_h[None, :, None] + self.pos_w[None, None, :]
        patches = to_groups(tokens, cfg.group_size)
        latents = self.initial_latents(cond.carry, b)
        c_noise = torch.as_tensor(c_noise, dtype=x_in.dtype, device=x_in.device).reshape(-1).expand(b)
        context = torch.cat([self.text_proj(cond.text.to(x_in.dtype)), self.scalar_tokens(c_noise, cond)], dim=1)
        scalar_mask = cond.text_mask.new_ones(b, self.scalar_tokens.count)
        context_mask = torch.cat([cond.text_mask.bool(), scalar_mask], dim=1)
        for block in self.blocks:
            patches, latents = block(patches, latents, context, context_mask)
        out = self.out_proj(self.out_norm(patches))
        out = from_groups(out, cfg.patch_grid, cfg.group_size)
        return unpatchify(out, cfg.patch_size, cfg.out_channels), latents


def sincos_table(positions: int, channels: int) -> torch.Tensor:
    """(positions, channels) table [sin(p * w_k), cos(p * w_k)], w_k = 10000^(-k / (channels/2)) (MAE, DiT)."""
    half = channels // 2
    omega = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64) / max(half, 1))
    angles = torch.arange(positions, dtype=torch.float64)[:, None] * omega[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


@torch.no_grad()
def init_positional(cfg: FITConfig, pos_t: torch.Tensor, pos_h: torch.Tensor, pos_w: torch.Tensor) -> None:
    """Initialise the learnable factorised positional embeddings in place.

    "normal": each table ~ truncated N(0, pos_init_std^2), as ViT/RIN; the tables carry no structure.
    "sincos": fixed-frequency sin/cos tables on disjoint thirds of the channels (time, height, width), so
    their sum is the 3D sin/cos embedding of MAE/DiT: nearby positions start similar and a dot product
    between two tokens depends on their offset, which attention can use from the first step.
    """
    tables = (pos_t, pos_h, pos_w)
    if cfg.pos_init == "normal":
        for table in tables:
            nn.init.trunc_normal_(table, std=cfg.pos_init_std)
        return
    block = pos_t.shape[1] // 3 // 2 * 2
    for axis, table in enumerate(tables):
        table.zero_()
        values = sincos_table(table.shape[0], block) * cfg.pos_sincos_amplitude
        table[:, axis * block:(axis + 1) * block] = values.to(table)


def widen_patch_embeddings(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with linear patch-embedding weights rewritten for ``model``'s wider kernels (``centred``)."""
    state = dict(state)
    for name, module in model.named_modules():
        key = f"{name}.weight" if name else "weight"
        if isinstance(module, PatchEmbedding) and module.kernel is not None and key in state and state[key].ndim == 2:
            state[key] = module.centred(state[key].to(module.weight))
    return state


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def replace_config(config: FITConfig, **changes) -> FITConfig:
    """A copy of ``config`` with fields changed (validated again)."""
    return dataclasses.replace(config, **changes)
