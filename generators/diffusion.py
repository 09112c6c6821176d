"""EDM diffusion with input scaling sigma_in (Snap Video section 3.2, Table 1 right column).

Forward process: x_sigma = x / sigma_in + sigma * eps. With sd = sigma_data and si = sigma_in:

    c_in   = 1 / sqrt(sd^2 / si^2 + sigma^2)                   network input has unit variance
    c_skip = si * sd^2 / (si * sigma^2 + sd^2)
    c_out  = -si * sigma * sd * sqrt(sigma^2 + sd^2) / (sd^2 + si * sigma^2)
    c_nrm  = 1 / (sd * sqrt(sigma^2 + sd^2))                   c_nrm * v has unit variance
    c_noise = ln(sigma) / 4
    target v = sd^2 * eps - sigma * x                           (EDM's target up to sign, no si term)
    lambda = 1 / sd^2 + 1 / sigma^2                            weight of ||D - x||^2
    w      = lambda * c_out^2 = (sigma^2 + sd^2)^2 / (sigma^2 + sd^2 / si)^2   weight of ||F - c_nrm v||^2

D = c_skip * x_sigma + c_out * F estimates the clean x at pixel scale. With si = 1 every coefficient is
EDM's, except that F and c_out change sign. The two loss forms are the same number (tested).

Networks follow ``net(x_in, c_noise, cond) -> F | (F, carry)`` (see ``conditioning``), so the U-Net
baselines share this module unchanged. ``training_loss`` is the loss of one batch with label dropout and
(optional) two-pass self-conditioning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch

from evalkit.errors import InputError
from evalkit.generators.conditioning import Conditioning


@dataclass
class DiffusionConfig:
    """Noise process and training-sigma settings of one stage."""

    sigma_data: float = 1.0            # Snap Video uses 1.0 (EDM: 0.5)
    sigma_in: float | None = None      # fixed input scaling; None = spatial_scale * sqrt(frames)
    spatial_scale: float | None = None  # s in s * sqrt(T); None = width / reference_width
    reference_width: int = 64          # EDM's hyper-parameters were tuned at 64 px
    image_sigma_in: float | None = None  # training only: sigma_in of images (fps inf); None = the videos' (SV 3.3)
    P_mean: float = -1.2               # ln(sigma) ~ N(P_mean, P_std^2) during training
    P_std: float = 1.2
    loss_form: Literal["target", "denoiser"] = "target"  # w*||F - c_nrm v||^2 or lambda*||D - x||^2

    def __post_init__(self) -> None:
        if not self.sigma_data > 0:
            raise ValueError(f"sigma_data must be positive, got {self.sigma_data}")
        if self.sigma_in is not None and not self.sigma_in > 0:
            raise ValueError(f"sigma_in must be positive or null, got {self.sigma_in}")
        if self.image_sigma_in is not None and not self.image_sigma_in > 0:
            raise ValueError(f"image_sigma_in must be positive or null, got {self.image_sigma_in}")
        if self.spatial_scale is not None and not self.spatial_scale > 0:
            raise ValueError(f"spatial_scale must be positive or null, got {self.spatial_scale}")
        if not self.P_std > 0:
            raise ValueError(f"P_std must be positive, got {self.P_std}")


def _col(value: torch.Tensor | float, ndim: int) -> torch.Tensor | float:
    """Reshape a per-sample (B,) tensor so it broadcasts against a (B, ...) tensor of ``ndim`` dims."""
    if isinstance(value, torch.Tensor) and value.ndim == 1:
        return value.reshape(-1, *([1] * (ndim - 1)))
    return value


def split_output(out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A network returns F or (F, carry); give both (carry None when there is none)."""
    if isinstance(out, tuple):
        return out[0], out[1]
    return out, None


class SigmaInEDM:
    """Table 1 (right column) preconditioning, loss and training-sigma distribution."""

    def __init__(self, config: DiffusionConfig | None = None):
        self.config = config or DiffusionConfig()
        self.sigma_data = self.config.sigma_data

    # -- input scaling --------------------------------------------------------------------------
    def sigma_in_for(self, frames: int, width: int) -> float:
        """sigma_in = s * sqrt(T) with s = width / 64 unless fixed by the config."""
        cfg = self.config
        if cfg.sigma_in is not None:
            return float(cfg.sigma_in)
        s = cfg.spatial_scale if cfg.spatial_scale is not None else width / cfg.reference_width
        return float(s * math.sqrt(frames))

    def sigma_in_of(self, x: torch.Tensor) -> float:
        """sigma_in of a clip batch (B, C, T, H, W); images travel as T-frame clips and share it."""
        if x.ndim != 5:
            raise InputError(f"expected a clip batch (B, C, T, H, W), got shape {tuple(x.shape)}")
        return self.sigma_in_for(x.shape[2], x.shape[4])

    def training_sigma_in(self, x: torch.Tensor, cond: Conditioning) -> float | torch.Tensor:
        """sigma_in of each training sample: one value for the batch, or a (B, 1, 1, 1, 1) column.

        Images (``cond.is_image``: fps inf) share the videos' sigma_in, the paper's modality matching,
        unless ``image_sigma_in`` gives them their own (Table 3's "images not treated as videos" row: 1 for
        images, s * sqrt(T) for videos). Every coefficient broadcasts against the column.
        """
        si = self.sigma_in_of(x)
        if self.config.image_sigma_in is None:
            return si
        column = torch.where(cond.is_image.to(x.device), self.config.image_sigma_in, si).to(x.dtype)
        return _col(column, x.ndim)

    # -- coefficients ---------------------------------------------------------------------------
    def c_in(self, sigma, si):
        return 1 / (self.sigma_data ** 2 / si ** 2 + sigma ** 2) ** 0.5

    def c_skip(self, sigma, si):
        sd2 = self.sigma_data ** 2
        return si * sd2 / (si * sigma ** 2 + sd2)

    def c_out(self, sigma, si):
        sd = self.sigma_data
        return -si * sigma * sd * (sigma ** 2 + sd ** 2) ** 0.5 / (sd ** 2 + si * sigma ** 2)

    def c_nrm(self, sigma):
        sd = self.sigma_data
        return 1 / (sd * (sigma ** 2 + sd ** 2) ** 0.5)

    def c_noise(self, sigma):
        return torch.log(torch.as_tensor(sigma)) / 4

    def loss_weight(self, sigma):
        """lambda(sigma), the weight of ||D - x||^2 (unchanged from EDM)."""
        return 1 / self.sigma_data ** 2 + 1 / sigma ** 2

    def target_weight(self, sigma, si):
        """w(sigma) = lambda * c_out^2, the weight of ||F - c_nrm * v||^2."""
        sd2 = self.sigma_data ** 2
        return (sigma ** 2 + sd2) ** 2 / (sigma ** 2 + sd2 / si) ** 2

    # -- process --------------------------------------------------------------------------------
    def add_noise(self, x: torch.Tensor, sigma: torch.Tensor, eps: torch.Tensor, si: float | torch.Tensor) -> torch.Tensor:
        return x / si + _col(sigma, x.ndim) * eps

    def target(self, x: torch.Tensor, sigma: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """v = sd^2 * eps - sigma * x (the raw F-space target before c_nrm)."""
        return self.sigma_data ** 2 * eps - _col(sigma, x.ndim) * x

    def sample_sigma(self, batch: int, generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> torch.Tensor:
        """ln(sigma) ~ N(P_mean, P_std^2)."""
        normal = torch.randn(batch, generator=generator, device=device)
        return (normal * self.config.P_std + self.config.P_mean).exp()

    # -- network call ---------------------------------------------------------------------------
    def network_output(self, net, x_sigma: torch.Tensor, sigma: torch.Tensor, cond: Conditioning,
                       si: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw F (and carry) for the noisy clip ``x_sigma`` at per-sample levels ``sigma`` (B,)."""
        sigma = torch.as_tensor(sigma, dtype=x_sigma.dtype, device=x_sigma.device).reshape(-1)
        sigma = sigma.expand(x_sigma.shape[0])
        c_in = self.c_in(_col(sigma, x_sigma.ndim), si)
        return split_output(net(c_in * x_sigma, self.c_noise(sigma), cond))

    def denoise(self, net, x_sigma: torch.Tensor, sigma: torch.Tensor, cond: Conditioning,
                si: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D(x_sigma) = c_skip * x_sigma + c_out * F: the clean clip at pixel scale (and carry)."""
        sigma = torch.as_tensor(sigma, dtype=x_sigma.dtype, device=x_sigma.device).reshape(-1)
        sigma = sigma.expand(x_sigma.shape[0])
        f, carry = self.network_output(net, x_sigma, sigma, cond, si)
        s = _col(sigma, x_sigma.ndim)
        return self.c_skip(s, si) * x_sigma + self.c_out(s, si) * f.to(x_sigma.dtype), carry

    # -- loss -----------------------------------------------------------------------------------
    def loss_from_output(self, f: torch.Tensor, x: torch.Tensor, x_sigma: torch.Tensor, sigma: torch.Tensor,
                         eps: torch.Tensor, si: float | torch.Tensor, form: str | None = None) -> torch.Tensor:
        """Per-sample loss (B,) of network output ``f``, in either equivalent form."""
        form = form or self.config.loss_form
        s = _col(sigma, x.ndim)
        if form == "target":
            err = f - self.c_nrm(s) * self.target(x, sigma, eps)
            per_elem = self.target_weight(s, si) * err ** 2
        elif form == "denoiser":
            d = self.c_skip(s, si) * x_sigma + self.c_out(s, si) * f
            per_elem = self.loss_weight(s) * (d - x) ** 2
        else:
            raise InputError(f"loss_form: expected 'target' or 'denoiser', got {form!r}")
        return per_elem.flatten(1).mean(1)


def training_loss(
    diffusion: SigmaInEDM,
    net,
    x: torch.Tensor,
    cond: Conditioning,
    *,
    generator: torch.Generator | None = None,
    text_dropout: float = 0.1,
    self_cond_rate: float = 0.0,
) -> torch.Tensor:
    """Mean loss of one batch of clean clips ``x`` (B, C, T, H, W) at pixel scale (sd = 1: about [-1, 1]).

    Label dropout: each sample's text is masked out with probability ``text_dropout`` (for guidance).
    Self-conditioning (RIN/FIT): with ``self_cond_rate`` > 0 a first pass without carry gives the
    carry (stop-gradient), kept for that fraction of samples and zeroed for the rest; the loss is taken
    on the second pass only. All randomness except network dropout comes from ``generator``.
    """
    b, device = x.shape[0], x.device
    si = diffusion.training_sigma_in(x, cond)
    sigma = diffusion.sample_sigma(b, generator, device=device).to(x.dtype)
    eps = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
    x_sigma = diffusion.add_noise(x, sigma, eps, si)
    drop = torch.rand(b, generator=generator, device=device) < text_dropout
    cond = cond.without_text(drop) if text_dropout > 0 else cond
    keep_carry = torch.rand(b, generator=generator, device=device) < self_cond_rate
    cond = cond.replace(carry=None)
    if self_cond_rate > 0:
        with torch.no_grad():
            _, carry = diffusion.network_output(net, x_sigma, sigma, cond, si)
        if carry is not None:
            cond = cond.replace(carry=carry.detach() * _col(keep_carry, carry.ndim).to(carry.dtype))
    f, _ = diffusion.network_output(net, x_sigma, sigma, cond, si)
    return diffusion.loss_from_output(f.to(x.dtype), x, x_sigma, sigma, eps, si).mean()
