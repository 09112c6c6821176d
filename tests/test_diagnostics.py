"""Denoiser error table: checked against a hand computation with a network that outputs zeros."""

import torch

from evalkit.generators.conditioning import make_conditioning
from evalkit.generators.diagnostics import denoiser_error
from evalkit.generators.diffusion import DiffusionConfig, SigmaInEDM


def _zero_net(x_in, c_noise, cond):
    return torch.zeros_like(x_in)


def test_error_with_zero_output_is_the_skip_path_alone():
    clips = torch.rand(3, 3, 4, 8, 8) * 2 - 1
    cond = make_conditioning(torch.zeros(3, 2, 8), torch.ones(3, 2, dtype=torch.bool), fps=24.0, resolution=(8, 8))
    diffusion = SigmaInEDM(DiffusionConfig())
    sigmas, si = (0.1, 2.0), 2.0
    got = denoiser_error(diffusion, _zero_net, clips, cond, sigmas, sigma_in=si, seed=7)
    g = torch.Generator().manual_seed(7)
    for s in sigmas:
        eps = torch.randn(clips.shape, generator=g)
        c_skip = si / (si * s ** 2 + 1)  # sigma_data = 1
        want = float(((c_skip * (clips / si + s * eps) - clips) ** 2).mean())
        assert abs(got[s] - want) < 1e-6 * max(1.0, want), (s, got[s], want)


def test_crop_scores_the_centre_only():
    clips = torch.zeros(2, 3, 2, 8, 8)
    cond = make_conditioning(torch.zeros(2, 2, 8), torch.ones(2, 2, dtype=torch.bool), fps=24.0, resolution=(4, 4))

    def net_wrong_border(x_in, c_noise, cond):
        out = torch.zeros_like(x_in)
        out[..., :2, :] = 5.0  # only padding rows are wrong
        return out

    diffusion = SigmaInEDM(DiffusionConfig(sigma_in=1.0))
    def run(net, crop):
        return denoiser_error(diffusion, net, clips, cond, (1.0,), sigma_in=1.0, crop=crop, seed=3)[1.0]

    assert run(net_wrong_border, None) > run(_zero_net, None) + 1.0
    assert run(net_wrong_border, (4, 4)) == run(_zero_net, (4, 4))
