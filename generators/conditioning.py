"""What a denoiser is conditioned on, and the small embeddings that turn scalars into tokens.

``Conditioning`` travels through the diffusion code unchanged: the sampler concatenates it for
batched classifier-free guidance, the loss drops its text for label dropout, and any network
(FIT or U-Net) reads the fields it needs. The call convention shared by all denoiser networks is

    net(x_in, c_noise, cond) -> F            or            -> (F, carry)

where ``x_in`` is c_in * x_sigma (B, C, T, H, W), ``c_noise`` (B,) is ln(sigma) / 4 and ``carry`` is an
optional tensor (FIT: its latents) that the sampler hands back through ``cond.carry`` at the next call.

Frame rate: images are T-frame clips at infinite frame rate (Snap Video section 3.3). ``fps`` holds
``inf`` for them and embeddings read the frame interval 1/fps, which is 0 for images.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from evalkit.errors import InputError


@dataclass
class Conditioning:
    """Per-sample conditioning of a batch; every tensor has the batch as its first dimension.

    text: float (B, L, D) token embeddings; text_mask: bool (B, L), True for real tokens (an all-False
    row is the unconditional branch); fps: float (B,), ``inf`` for images; resolution: float (B, 2)
    original (height, width) of the training clip; aug_level: float (B,) noise-augmentation std of
    ``lowres`` (upsampler only); lowres: float (B, 3, T, H, W) the low-resolution video already brought
    to the network's size and noise-augmented (upsampler only); carry: network state carried across
    calls (FIT latents for self-conditioning), None for "no previous call".
    """

    text: torch.Tensor
    text_mask: torch.Tensor
    fps: torch.Tensor
    resolution: torch.Tensor
    aug_level: torch.Tensor | None = None
    lowres: torch.Tensor | None = None
    carry: torch.Tensor | None = None

    def __post_init__(self) -> None:
        b = self.text.shape[0]
        if self.text.ndim != 3:
            raise InputError(f"Conditioning.text: expected (B, L, D), got {tuple(self.text.shape)}")
        if tuple(self.text_mask.shape) != tuple(self.text.shape[:2]):
            raise InputError(
                f"Conditioning.text_mask: expected shape {tuple(self.text.shape[:2])}, got {tuple(self.text_mask.shape)}"
            )
        for name in ("fps", "resolution", "aug_level", "lowres", "carry"):
            value = getattr(self, name)
            if value is not None and value.shape[0] != b:
                raise InputError(f"Conditioning.{name}: expected batch size {b}, got {tuple(value.shape)}")
        if tuple(self.resolution.shape) != (b, 2):
            raise InputError(f"Conditioning.resolution: expected ({b}, 2), got {tuple(self.resolution.shape)}")

    @property
    def batch_size(self) -> int:
        return self.text.shape[0]

    @property
    def is_image(self) -> torch.Tensor:
        return torch.isinf(self.fps)

    def replace(self, **changes) -> Conditioning:
        return dataclasses.replace(self, **changes)

    def without_text(self, drop: torch.Tensor | None = None) -> Conditioning:
        """The unconditional version (text masked out and zeroed) for all samples or where ``drop``."""
        if drop is None:
            drop = torch.ones(self.batch_size, dtype=torch.bool, device=self.text.device)
        keep = ~drop.to(self.text.device).bool()
        return self.replace(text=self.text * keep[:, None, None].to(self.text.dtype),
                            text_mask=self.text_mask & keep[:, None])

    def to(self, device: torch.device | str) -> Conditioning:
        return dataclasses.replace(self, **{
            f.name: (v.to(device) if isinstance(v := getattr(self, f.name), torch.Tensor) else v)
            for f in dataclasses.fields(self)
        })

    @staticmethod
    def cat(items: list[Conditioning]) -> Conditioning:
        """Concatenate along the batch (text padded to the longest sequence, padding masked out)."""
        length = max(c.text.shape[1] for c in items)
        texts, masks = [], []
        for c in items:
            pad = length - c.text.shape[1]
            texts.append(nn.functional.pad(c.text, (0, 0, 0, pad)))
            masks.append(nn.functional.pad(c.text_mask, (0, pad), value=False))
        fields = {"text": torch.cat(texts), "text_mask": torch.cat(masks)}
        for name in ("fps", "resolution", "aug_level", "lowres", "carry"):
            values = [getattr(c, name) for c in items]
            if all(v is None for v in values):
                fields[name] = None
            elif any(v is None for v in values):
                raise InputError(f"Conditioning.cat: field '{name}' is set for some batches and not for others")
            else:
                fields[name] = torch.cat(values)
        return Conditioning(**fields)


def make_conditioning(
    text: torch.Tensor,
    text_mask: torch.Tensor,
    *,
    fps: float | torch.Tensor,
    resolution: tuple[int, int] | torch.Tensor,
    is_image: torch.Tensor | None = None,
) -> Conditioning:
    """Build a ``Conditioning`` from scalars or per-sample tensors; ``is_image`` sets fps to inf."""
    b = text.shape[0]
    fps_t = torch.as_tensor(fps, dtype=torch.float32, device=text.device).reshape(-1).expand(b).clone()
    if is_image is not None:
        fps_t = torch.where(is_image.to(text.device).bool(), torch.full_like(fps_t, math.inf), fps_t)
    if not bool(((fps_t > 0) | torch.isinf(fps_t)).all()):
        raise InputError(f"fps: expected positive frame rates (inf for images), got {fps_t.tolist()}")
    res = torch.as_tensor(resolution, dtype=torch.float32, device=text.device)
    res = res.reshape(-1, 2).expand(b, 2).clone()
    return Conditioning(text=text, text_mask=text_mask.bool(), fps=fps_t, resolution=res)


def frame_interval(fps: torch.Tensor) -> torch.Tensor:
    """Seconds between frames: 1/fps, and 0 for images (fps = inf)."""
    return torch.where(torch.isinf(fps), torch.zeros_like(fps), 1.0 / fps)


def strided_clip(video: torch.Tensor, source_fps: float, frames: int, stride: int, start: int = 0):
    """Take ``frames`` frames every ``stride`` from a (T, ...) video: variable frame-rate training clips.

    Returns the clip and its frame rate source_fps / stride, the value to condition on.
    """
    if stride < 1:
        raise InputError(f"strided_clip: stride must be >= 1, got {stride}")
    last = start + (frames - 1) * stride
    if start < 0 or last >= video.shape[0]:
        raise InputError(
            f"strided_clip: {frames} frames with stride {stride} from frame {start} need {last + 1} frames, "
            f"the video has {video.shape[0]}"
        )
    return video[start:last + 1:stride], source_fps / stride


def sinusoidal_features(value: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[cos(value * f_k), sin(value * f_k)] with frequencies log-spaced from 1 down to 1/max_period."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=value.device) / half)
    angles = value.float()[..., None] * freqs
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class ScalarEmbedding(nn.Module):
    """One token from one or more scalars: sinusoidal features of (value * scale), then a SiLU MLP.

    ``scale`` maps the scalar's typical range to useful frequencies (as FIT does with t * 1000).
    """

    def __init__(self, width: int, *, scale: float, num_values: int = 1, features: int = 256):
        super().__init__()
        self.scale, self.num_values, self.features = scale, num_values, features
        self.mlp = nn.Sequential(nn.Linear(num_values * features, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        value = value.reshape(value.shape[0], self.num_values)
        feats = sinusoidal_features(value * self.scale, self.features).flatten(1)
        return self.mlp(feats.to(self.mlp[0].weight.dtype))


class ConditioningTokens(nn.Module):
    """Scalar conditioning tokens of Snap Video: noise level, frame rate, original resolution,
    and (upsampler) noise-augmentation level, each one token of width ``width``."""

    def __init__(self, width: int, *, aug_level: bool = False, features: int = 256):
        super().__init__()
        self.sigma = ScalarEmbedding(width, scale=1000.0, features=features)      # c_noise = ln(sigma)/4
        self.frame_interval = ScalarEmbedding(width, scale=1000.0, features=features)  # seconds, 0 = image
        self.resolution = ScalarEmbedding(width, scale=1.0, num_values=2, features=features)  # pixels (h, w)
        self.aug_level = ScalarEmbedding(width, scale=1000.0, features=features) if aug_level else None

    @property
    def count(self) -> int:
        return 4 if self.aug_level is not None else 3

    def forward(self, c_noise: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """(B, count, width) tokens."""
        tokens = [self.sigma(c_noise), self.frame_interval(frame_interval(cond.fps)), self.resolution(cond.resolution)]
        if self.aug_level is not None:
            if cond.aug_level is None:
                raise InputError("this network is an upsampler: Conditioning.aug_level is required")
            tokens.append(self.aug_level(cond.aug_level))
        return torch.stack(tokens, dim=1)
