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


def test_reference_errors_against_numpy():
    import numpy as np

    from evalkit.generators.diagnostics import reference_errors

    clips = torch.rand(4, 3, 5, 6, 7, generator=torch.Generator().manual_seed(0)) * 2 - 1
    clips[0, :, :, :4] = 0.25  # a clip whose background (most pixels) is one colour
    got = reference_errors(clips)
    a = clips.numpy().astype(np.float64)
    flat = a.reshape(4, 3, -1)
    # torch's median of an even count is the lower of the two middle values
    lower_median = np.sort(flat, axis=2)[:, :, (flat.shape[2] - 1) // 2]
    want = {
        "mean clip of the batch": ((a - a.mean(0, keepdims=True)) ** 2).mean(),
        "each clip's median colour": ((a - lower_median[:, :, None, None, None]) ** 2).mean(),
        "each clip's temporal mean": ((a - a.mean(2, keepdims=True)) ** 2).mean(),
    }
    assert got.keys() == want.keys()
    for name in want:
        assert abs(got[name] - want[name]) < 1e-6, (name, got[name], want[name])
    # a clip that is its background colour everywhere scores zero against its median colour
    flat_clip = torch.full((1, 3, 2, 4, 4), 0.5)
    assert reference_errors(flat_clip)["each clip's median colour"] == 0.0
