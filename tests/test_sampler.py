"""Heun sampler on the sigma_in process: schedule, exactness on analytic denoisers, guidance, errors."""

import math

import numpy as np
import pytest
import torch

from evalkit.generators.conditioning import make_conditioning
from evalkit.generators.diffusion import DiffusionConfig, SigmaInEDM
from evalkit.generators.sampler import (
    SamplerConfig,
    SamplingError,
    dynamic_threshold,
    edm_sigmas,
    sample,
)


def _cond(b, dim=4, length=3):
    gen = torch.Generator().manual_seed(b)
    return make_conditioning(torch.randn(b, length, dim, generator=gen), torch.ones(b, length, dtype=torch.bool),
                             fps=24.0, resolution=(8, 8))


class Analytic(torch.nn.Module):
    """A network whose denoiser output is a chosen function of (x_sigma, sigma, cond): recovers x_sigma
    and sigma from (c_in * x_sigma, ln(sigma) / 4) and inverts D = c_skip x + c_out F."""

    def __init__(self, edm, si, denoised):
        super().__init__()
        self.edm, self.si, self.denoised, self.calls = edm, si, denoised, 0

    def forward(self, x_in, c_noise, cond):
        self.calls += 1
        sigma = torch.exp(4 * c_noise.double())[:, None, None, None, None]
        x = x_in.double() / self.edm.c_in(sigma, self.si)
        d = self.denoised(x, sigma, cond)
        return ((d - self.edm.c_skip(sigma, self.si) * x) / self.edm.c_out(sigma, self.si)).float()


def test_schedule_matches_edm():
    n, smin, smax, rho = 18, 0.002, 80.0, 7.0
    got = edm_sigmas(n, smin, smax, rho).numpy()
    i = np.arange(n)
    want = (smax ** (1 / rho) + i / (n - 1) * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    np.testing.assert_allclose(got[:-1], want, rtol=1e-12)
    assert got[-1] == 0 and got[0] == pytest.approx(smax) and got[-2] == pytest.approx(smin)


@pytest.mark.parametrize("si", [1.0, 4.0])
def test_point_mass_data_is_reached_exactly(si):
    """For data concentrated at x0 the ideal denoiser is x0; the ODE must land on x0 at pixel scale,
    which checks D / sigma_in inside the step and the final multiplication by sigma_in."""
    edm = SigmaInEDM(DiffusionConfig(sigma_in=si))
    x0 = torch.linspace(-1, 1, 3 * 2 * 4 * 4).reshape(1, 3, 2, 4, 4).double()
    net = Analytic(edm, si, lambda x, s, c: x0.expand_as(x))
    noise = torch.randn(2, 3, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    out, stats = sample(edm, net, noise, _cond(2), SamplerConfig(steps=6))
    torch.testing.assert_close(out, x0.float().expand_as(out), atol=1e-4, rtol=0)


def test_gaussian_data_follows_the_exact_ode():
    """Data N(0, sd^2): the ideal denoiser of the scaled process is E[x | x_sigma] =
    (sd^2 / si) x_sigma / (sd^2 / si^2 + sigma^2), and the exact probability-flow ODE maps the initial
    noise n (x = sigma_max n) to sd * sigma_max / sqrt(sd^2 / si^2 + sigma_max^2) * n at pixel scale."""
    si, sd, smax = 4.0, 1.0, 80.0
    edm = SigmaInEDM(DiffusionConfig(sigma_in=si, sigma_data=sd))
    net = Analytic(edm, si, lambda x, s, c: (sd ** 2 / si) * x / (sd ** 2 / si ** 2 + s ** 2))
    noise = torch.randn(1, 3, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    exact = sd * smax / math.sqrt(sd ** 2 / si ** 2 + smax ** 2)
    errors = []
    for steps in (16, 64, 256):
        out, _ = sample(edm, net, noise, _cond(1), SamplerConfig(steps=steps, sigma_max=smax))
        errors.append((out / noise - exact).abs().max().item())
    assert errors[2] < 1e-3
    assert errors[0] > errors[1] > errors[2]  # converges with the step count


def test_deterministic_and_2n_minus_1_evaluations():
    edm = SigmaInEDM()
    net = Analytic(edm, 2.0, lambda x, s, c: torch.tanh(x) * 0.5)
    noise = torch.randn(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    for steps in (1, 2, 5):
        net.calls = 0
        a, stats = sample(edm, net, noise, _cond(2), SamplerConfig(steps=steps))
        assert net.calls == 2 * steps - 1 == stats.net_calls
        assert stats.evaluations == 2 * (2 * steps - 1)
        b, _ = sample(edm, net, noise, _cond(2), SamplerConfig(steps=steps))
        assert torch.equal(a, b)
    net.calls = 0
    _, stats = sample(edm, net, noise, _cond(2), SamplerConfig(steps=5, guidance=3.0))
    assert net.calls == 9 and stats.evaluations == 2 * 2 * 9  # batched: one call for both branches
    net.calls = 0
    _, stats = sample(edm, net, noise, _cond(2), SamplerConfig(steps=5, guidance=3.0, guidance_mode="separate"))
    assert net.calls == 18 and stats.evaluations == 2 * 2 * 9
    assert SamplerConfig(steps=5, guidance=3.0).evaluations == 18


def _text_dependent(x, s, c):
    # depends on the text (and on whether it is masked out), so guidance has an effect
    t = (c.text * c.text_mask[..., None]).sum((1, 2)).double()
    return torch.tanh(x) * 0.5 + 0.1 * t[:, None, None, None, None]


def test_guidance_weight_one_equals_conditional_and_zero_equals_unconditional():
    edm = SigmaInEDM()
    net = Analytic(edm, 4.0, _text_dependent)
    noise = torch.randn(3, 3, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    cond = _cond(3)
    plain, _ = sample(edm, net, noise, cond, SamplerConfig(steps=4))
    uncond, _ = sample(edm, net, noise, cond.without_text(), SamplerConfig(steps=4))
    assert not torch.allclose(plain, uncond, atol=1e-3)
    for mode in ("batched", "separate"):
        one, _ = sample(edm, net, noise, cond, SamplerConfig(steps=4, guidance=1.0, guidance_mode=mode))
        torch.testing.assert_close(one, plain, atol=1e-5, rtol=1e-5)
        zero, _ = sample(edm, net, noise, cond, SamplerConfig(steps=4, guidance=0.0, guidance_mode=mode))
        torch.testing.assert_close(zero, uncond, atol=1e-5, rtol=1e-5)
    strong_b, _ = sample(edm, net, noise, cond, SamplerConfig(steps=4, guidance=5.0))
    strong_s, _ = sample(edm, net, noise, cond, SamplerConfig(steps=4, guidance=5.0, guidance_mode="separate"))
    torch.testing.assert_close(strong_b, strong_s, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(strong_b, plain, atol=1e-3)


def test_oscillating_guidance_schedule():
    cfg = SamplerConfig(steps=8, oscillation=[15.0, 1.0], oscillation_start=3)
    assert [cfg.guidance_at(i) for i in range(8)] == [15, 15, 15, 15, 1, 15, 1, 15]
    assert cfg.uses_guidance
    assert SamplerConfig(guidance=None).guidance_at(3) is None


def test_oscillating_guidance_uses_per_step_weights():
    edm = SigmaInEDM()
    net = Analytic(edm, 4.0, _text_dependent)
    noise = torch.randn(2, 3, 2, 4, 4, generator=torch.Generator().manual_seed(4))
    cond = _cond(2)

    def run(**kw):
        return sample(edm, net, noise, cond, SamplerConfig(steps=4, **kw))[0]

    torch.testing.assert_close(run(oscillation=[3.0, 3.0]), run(guidance=3.0))
    torch.testing.assert_close(run(oscillation=[7.0, 1.0], oscillation_start=10), run(guidance=7.0))
    mixed = run(oscillation=[7.0, 1.0], oscillation_start=1)
    assert not torch.allclose(mixed, run(guidance=7.0), atol=1e-4)
    assert not torch.allclose(mixed, run(guidance=1.0), atol=1e-4)


def test_dynamic_threshold():
    d = torch.tensor([[0.5, -0.2, 0.9, 0.1], [3.0, -4.0, 0.5, 1.0]]).reshape(2, 1, 1, 1, 4)
    out = dynamic_threshold(d, 1.0)
    torch.testing.assert_close(out[0], d[0])  # max |d| <= 1: untouched
    torch.testing.assert_close(out[1].flatten(), torch.tensor([0.75, -1.0, 0.125, 0.25]))
    q = dynamic_threshold(torch.randn(3, 3, 2, 8, 8) * 5, 0.9)
    assert q.abs().max().item() <= 1.0 + 1e-6


def test_nan_names_the_step_and_sigma():
    edm = SigmaInEDM()
    calls = {"n": 0}

    def bad(x, s, c):
        calls["n"] += 1
        return x * (float("nan") if calls["n"] >= 4 else 0.0)

    net = Analytic(edm, 1.0, bad)
    noise = torch.randn(1, 3, 1, 4, 4)
    cfg = SamplerConfig(steps=5)
    sigmas = edm_sigmas(5).tolist()
    with pytest.raises(SamplingError, match=rf"step 2 of 5 \(sigma = {sigmas[2]:.6g}\)"):
        sample(edm, net, noise, _cond(1), cfg)


class CarryNet(torch.nn.Module):
    """Returns F = 0 and, as carry, the index of the call; records the carry it received."""

    def __init__(self):
        super().__init__()
        self.received = []
        self.count = 0

    def forward(self, x_in, c_noise, cond):
        self.received.append(None if cond.carry is None else cond.carry.clone())
        self.count += 1
        carry = torch.full((x_in.shape[0], 2), float(self.count))
        if x_in.shape[0] % 2 == 0 and x_in.shape[0] > 1:  # batched guidance: mark the halves
            carry[x_in.shape[0] // 2:] = -1.0
        return torch.zeros_like(x_in), carry


def test_self_conditioning_latents_are_carried_across_calls():
    edm = SigmaInEDM()
    net = CarryNet()
    noise = torch.randn(1, 3, 1, 4, 4)
    sample(edm, net, noise, _cond(1), SamplerConfig(steps=3))
    assert net.received[0] is None
    for i, carry in enumerate(net.received[1:], start=1):
        assert torch.equal(carry, torch.full((1, 2), float(i)))
    # guidance: the conditional branch's latents are fed to both branches at the next call
    net = CarryNet()
    sample(edm, net, noise, _cond(1), SamplerConfig(steps=2, guidance=2.0))
    assert net.received[0] is None
    assert torch.equal(net.received[1], torch.full((2, 2), 1.0))


def test_config_validation():
    with pytest.raises(ValueError, match="steps"):
        SamplerConfig(steps=0)
    with pytest.raises(ValueError, match="oscillation"):
        SamplerConfig(oscillation=[1.0])
    with pytest.raises(ValueError, match="percentile"):
        SamplerConfig(dynamic_threshold=99.5)
    assert math.isclose(SamplerConfig(steps=1).evaluations, 1)
