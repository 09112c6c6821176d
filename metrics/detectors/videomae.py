"""VideoMAE-v2 ViT-g/14 features as content-debiased FVD (cd-fvd, Ge et al. CVPR 2024) computes them.

cd-fvd 0.1.1 (``cdfvd/third_party/VideoMAEv2``) builds ``vit_giant_patch14_224``: embed 1408, depth 40,
16 heads, MLP ratio 48/11, qkv with separate q/v biases (k bias zero), LayerNorm eps 1e-6, tubelet 2,
16 frames, fixed sinusoidal position table (not in the checkpoint), mean pooling + ``fc_norm``; the
174-class SSv2 head is loaded but unused. Features are ``forward_features``: 1408-d.
Preprocessing (``preprocess_videomae``): x / 255, bilinear 224x224 squash (``align_corners=False``),
**no** mean/std normalisation.

This module keeps the reference's parameter names (so the checkpoint loads strictly) and its
arithmetic (explicit softmax attention, position table built in float64 then cast), and exposes the
architecture sizes so tests can check a small configuration against the package's own class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evalkit.errors import WeightsError
from evalkit.metrics.detectors.video_base import RANDOM_WEIGHTS_SEED, VideoDetector
from evalkit.registry import DETECTORS


@dataclass(frozen=True)
class VideoMAEConfig:
    img_size: int = 224
    patch_size: int = 14
    embed_dim: int = 1408
    depth: int = 40
    num_heads: int = 16
    mlp_ratio: float = 48 / 11
    num_frames: int = 16
    tubelet_size: int = 2
    num_classes: int = 174
    norm_eps: float = 1e-6


VIT_G = VideoMAEConfig()


def sinusoid_table(n_position: int, dim: int) -> torch.Tensor:
    """(1, n, dim) sin/cos table, computed in float64 like the reference then cast to float32."""
    pos = np.arange(n_position, dtype=np.float64)[:, None]
    hid = np.arange(dim)
    table = pos / np.power(10000, 2 * (hid // 2) / dim)
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return torch.tensor(table, dtype=torch.float).unsqueeze(0)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, head_dim * num_heads * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(head_dim * num_heads))
        self.v_bias = nn.Parameter(torch.zeros(head_dim * num_heads))
        self.proj = nn.Linear(head_dim * num_heads, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, -1))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: VideoMAEConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.attn = Attention(cfg.embed_dim, cfg.num_heads)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.mlp = Mlp(cfg.embed_dim, int(cfg.embed_dim * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, cfg: VideoMAEConfig):
        super().__init__()
        self.img_size = cfg.img_size
        k = (cfg.tubelet_size, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(3, cfg.embed_dim, kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"VideoMAE input must be {self.img_size}x{self.img_size}, got {tuple(x.shape[-2:])}")
        return self.proj(x).flatten(2).transpose(1, 2)


class VideoMAEv2(nn.Module):
    """ViT with VideoMAE-v2 parameter names; ``forward_features`` gives the mean-pooled, normed tokens."""

    def __init__(self, cfg: VideoMAEConfig = VIT_G):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        self.grid_t = cfg.num_frames // cfg.tubelet_size
        self.grid_hw = cfg.img_size // cfg.patch_size
        self.register_buffer(
            "pos_embed", sinusoid_table(self.grid_t * self.grid_hw**2, cfg.embed_dim), persistent=False
        )
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.fc_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)

    def _pos_embed(self, frames: int) -> torch.Tensor:
        t0 = frames // self.cfg.tubelet_size
        if t0 == self.grid_t:
            return self.pos_embed
        # Reference: trilinear resize of the (dim, T, H, W) table along time with scale (t0 + 0.1) / T.
        dim = self.pos_embed.shape[-1]
        table = self.pos_embed.permute(0, 2, 1).reshape(1, dim, self.grid_t, self.grid_hw, self.grid_hw)
        table = F.interpolate(table, scale_factor=((t0 + 0.1) / self.grid_t, 1, 1), mode="trilinear")
        return table.reshape(1, dim, -1).permute(0, 2, 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        b, frames = x.shape[0], x.shape[2]
        x = self.patch_embed(x)
        x = x + self._pos_embed(frames).expand(b, -1, -1).type_as(x)
        for blk in self.blocks:
            x = blk(x)
        return self.fc_norm(x.mean(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def preprocess_videomae(videos: torch.Tensor, size: int = 224) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float32 (B, 3, T, size, size) in [0, 1] (cd-fvd: no normalisation)."""
    b, t, h, w, c = videos.shape
    x = videos.permute(0, 4, 1, 2, 3).to(torch.float32) / 255
    x = F.interpolate(x.reshape(b * c, t, h, w), size=(size, size), mode="bilinear", align_corners=False)
    return x.reshape(b, c, t, size, size)


def load_videomae_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Tensors of a VideoMAE-v2 checkpoint (.pth without pickled objects, or .safetensors)."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError and friends: the file holds non-tensor objects
        raise WeightsError(
            f"{path}: cannot be read with weights_only=True ({type(exc).__name__}). If you trust the file, "
            "convert it once to safetensors: python -c \"import torch,safetensors.torch as s; "
            f"c=torch.load('{path}', map_location='cpu', weights_only=False); c=c.get('model', c.get('module', c)); "
            f"s.save_file({{k: v.contiguous() for k, v in c.items()}}, '{path}.safetensors')\" "
            "and register the .safetensors file instead"
        ) from None
    for key in ("model", "module"):
        if isinstance(ckpt, dict) and key in ckpt:
            ckpt = ckpt[key]
            break
    if not isinstance(ckpt, dict):
        raise WeightsError(f"{path}: expected a state dict, got {type(ckpt).__name__}")
    return ckpt


def build_videomae(
    state_dict: dict[str, torch.Tensor] | None = None, cfg: VideoMAEConfig = VIT_G, *, seed: int = RANDOM_WEIGHTS_SEED
) -> VideoMAEv2:
    """Eval-mode VideoMAE-v2 from a state dict (strict), or with seeded truncated-normal weights."""
    if state_dict is not None:
        model = VideoMAEv2(cfg)
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"VideoMAE-v2 checkpoint does not fit ViT-g/14 ({str(exc)[:400]})") from None
        return model.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VideoMAEv2(cfg)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.Linear):
                    nn.init.trunc_normal_(module.weight, std=0.02)
                    if module.bias is not None:
                        module.bias.zero_()
                elif isinstance(module, Attention):
                    module.q_bias.normal_(0.0, 0.02)
                    module.v_bias.normal_(0.0, 0.02)
    return model.eval()


@DETECTORS.register("videomae-v2-cd-fvd")
class VideoMAEv2CdFvd(VideoDetector):
    """cd-fvd's VideoMAE path (``cdfvd(model='videomae')``): 1408-d ViT-g/14 SSv2 features."""

    name: ClassVar[str] = "videomae-v2-cd-fvd"
    weights: ClassVar[str | None] = "videomae-v2-g-ssv2"
    feature_dim: ClassVar[int] = VIT_G.embed_dim
    min_frames: ClassVar[int] = VIT_G.tubelet_size
    batch_size: ClassVar[int] = 16
    frames_reason: ClassVar[str] = "the tubelet embedding covers 2 frames"
    config: ClassVar[VideoMAEConfig] = VIT_G

    def _load(self, path: str | None) -> VideoMAEv2:
        state = None if path is None else load_videomae_state_dict(path)
        return build_videomae(state, self.config)

    def _forward(self, videos: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(preprocess_videomae(videos))

