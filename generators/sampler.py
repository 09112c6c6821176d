"""Deterministic Heun sampler of EDM on the sigma_in-scaled process, with classifier-free guidance.

Changes for sigma_in (Snap Video section 3.2): the ODE state carries x / sigma_in, so every denoised
estimate D (pixel scale) is divided by sigma_in inside d = (x - D / si) / sigma, and the final sample
is multiplied by sigma_in. N steps cost 2N - 1 network evaluations (the last step is plain Euler).

Guidance: D = D_uncond + w * (D_cond - D_uncond), so w = 1 is plain conditional sampling and w = 0
unconditional. Both branches run in one batched forward (``guidance_mode="batched"``) or as two
forwards (``"separate"``). Oscillating guidance (Imagen Video) uses ``oscillation[0]`` for the first
``oscillation_start`` steps, then alternates ``oscillation[0]``, ``oscillation[1]`` every step.
Dynamic thresholding (Imagen) clips the pixel-scale D per sample to the p-th percentile of |D|
(at least 1) and rescales to [-1, 1]. Self-conditioning: the carry of the latest network call (the
conditional branch's under guidance) is passed to the next call of both branches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from evalkit.errors import EvalkitError
from evalkit.generators.conditioning import Conditioning
from evalkit.generators.diffusion import SigmaInEDM


class SamplingError(EvalkitError):
    """The sampler produced a non-finite value."""


@dataclass
class SamplerConfig:
    steps: int = 64                    # Heun steps N (2N - 1 evaluations); paper: 256 base, 40 upsampler
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    guidance: float | None = None      # None: conditional only; else w in D_u + w (D_c - D_u)
    guidance_mode: Literal["batched", "separate"] = "batched"
    oscillation: list[float] | None = None  # [high, low] weights of oscillating guidance
    oscillation_start: int = 0         # steps at the high weight before alternating
    dynamic_threshold: float | None = None  # percentile p in (0, 1], e.g. 0.995; None = off
    check_finite: bool = True          # stop with the step and sigma at the first NaN/inf

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        if self.rho <= 0:
            raise ValueError(f"rho must be positive, got {self.rho}")
        if self.oscillation is not None and len(self.oscillation) != 2:
            raise ValueError(f"oscillation must be [high, low], got {self.oscillation}")
        if self.dynamic_threshold is not None and not 0 < self.dynamic_threshold <= 1:
            raise ValueError(f"dynamic_threshold must be a percentile in (0, 1], got {self.dynamic_threshold}")

    @property
    def uses_guidance(self) -> bool:
        return self.guidance is not None or self.oscillation is not None

    def guidance_at(self, step: int) -> float | None:
        if self.oscillation is not None:
            if step < self.oscillation_start:
                return self.oscillation[0]
            return self.oscillation[(step - self.oscillation_start) % 2]
        return self.guidance

    @property
    def evaluations(self) -> int:
        """Network evaluations per sample (both guidance branches counted)."""
        return (2 * self.steps - 1) * (2 if self.uses_guidance else 1)


def edm_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """EDM time grid of ``steps`` levels from sigma_max down to sigma_min, plus a final 0 (float64)."""
    i = torch.arange(steps, dtype=torch.float64, device=device)
    denom = max(steps - 1, 1)
    t = (sigma_max ** (1 / rho) + i / denom * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([t, torch.zeros(1, dtype=torch.float64, device=device)])


def dynamic_threshold(d: torch.Tensor, percentile: float) -> torch.Tensor:
    """Per-sample Imagen thresholding of a pixel-scale estimate (values nominally in [-1, 1])."""
    s = torch.quantile(d.abs().flatten(1).float(), percentile, dim=1).clamp(min=1.0).to(d.dtype)
    s = s.reshape(-1, *([1] * (d.ndim - 1)))
    return torch.maximum(torch.minimum(d, s), -s) / s


@dataclass
class SampleStats:
    """What one ``sample`` call did: network calls and per-sample evaluations."""

    net_calls: int = 0
    evaluations: int = 0
    sigmas: list[float] = field(default_factory=list)


class GuidedDenoiser:
    """D(x; sigma) with guidance, thresholding, carried self-conditioning state and NaN checks."""

    def __init__(self, diffusion: SigmaInEDM, net, cond: Conditioning, config: SamplerConfig, si: float,
                 offset: torch.Tensor | None = None):
        self.diffusion, self.net, self.config, self.si = diffusion, net, config, si
        self.offset = offset
        self.cond = cond
        self.uncond = cond.without_text() if config.uses_guidance else None
        self.carry: torch.Tensor | None = cond.carry
        self.stats = SampleStats()

    def _call(self, x: torch.Tensor, sigma: torch.Tensor, cond: Conditioning, repeat: int = 1):
        self.stats.net_calls += 1
        self.stats.evaluations += x.shape[0]
        carry = self.carry
        if carry is not None and repeat > 1:
            carry = torch.cat([carry] * repeat)
        return self.diffusion.denoise(self.net, x, sigma, cond.replace(carry=carry), self.si)

    def __call__(self, x: torch.Tensor, sigma: float, step: int) -> torch.Tensor:
        """Pixel-scale denoised estimate at noise level ``sigma`` for Heun step ``step``."""
        b = x.shape[0]
        sig = torch.full((b,), sigma, dtype=x.dtype, device=x.device)
        w = self.config.guidance_at(step)
        if w is None:
            d, carry = self._call(x, sig, self.cond)
        elif self.config.guidance_mode == "batched":
            both, carry = self._call(torch.cat([x, x]), torch.cat([sig, sig]),
                                     Conditioning.cat([self.cond.replace(carry=None), self.uncond.replace(carry=None)]),
                                     repeat=2)
            carry = carry[:b] if carry is not None else None
            d_c, d_u = both[:b], both[b:]
            d = d_u + w * (d_c - d_u)
        else:
            d_c, carry = self._call(x, sig, self.cond)
            d_u, _ = self._call(x, sig, self.uncond)
            d = d_u + w * (d_c - d_u)
        self.carry = carry
        if self.config.check_finite and not bool(torch.isfinite(d).all()):
            raise SamplingError(
                f"non-finite denoised estimate at step {step + 1} of {self.config.steps} (sigma = {sigma:.6g});"
                " check the checkpoint, the conditioning and the precision"
            )
        if self.config.dynamic_threshold is not None:
            if self.offset is None:
                d = dynamic_threshold(d, self.config.dynamic_threshold)
            else:  # threshold the video the estimate stands for, not the residual
                d = dynamic_threshold(d + self.offset, self.config.dynamic_threshold) - self.offset
        return d


def sample(
    diffusion: SigmaInEDM,
    net,
    noise: torch.Tensor,
    cond: Conditioning,
    config: SamplerConfig | None = None,
    *,
    sigma_in: float | None = None,
    offset: torch.Tensor | None = None,
) -> tuple[torch.Tensor, SampleStats]:
    """Deterministic Heun sampling from ``noise`` ~ N(0, I) (B, C, T, H, W) to pixel-scale clips.

    ``offset`` (same shape as the noise) is for models that diffuse a residual: the video is offset + sample,
    and dynamic thresholding acts on that video. It is not added to the result.
    Returns the clips (B, C, T, H, W) at pixel scale and the call statistics.
    """
    config = config or SamplerConfig()
    si = diffusion.sigma_in_of(noise) if sigma_in is None else float(sigma_in)
    sigmas = edm_sigmas(config.steps, config.sigma_min, config.sigma_max, config.rho).tolist()
    denoiser = GuidedDenoiser(diffusion, net, cond, config, si, offset)
    x = noise.to(torch.float32) * sigmas[0]
    for i, (t_cur, t_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        d_cur = (x - denoiser(x, t_cur, i) / si) / t_cur
        x_next = x + (t_next - t_cur) * d_cur
        if i < config.steps - 1:
            d_next = (x_next - denoiser(x_next, t_next, i) / si) / t_next
            x_next = x + (t_next - t_cur) * (0.5 * d_cur + 0.5 * d_next)
        x = x_next
        if config.check_finite and not bool(torch.isfinite(x).all()):
            raise SamplingError(f"non-finite sample after step {i + 1} of {config.steps} (sigma = {t_next:.6g})")
    denoiser.stats.sigmas = sigmas
    return x * si, denoiser.stats

