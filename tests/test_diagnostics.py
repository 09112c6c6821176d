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


def test_caption_posterior_matches_a_direct_softmax_and_ignores_chunking():
    import numpy as np
    from scipy.special import softmax

    from evalkit.datasets.shapes.dataset import ShapesTrainingData
    from evalkit.datasets.shapes.render import render_batch
    from evalkit.generators.diagnostics import caption_posterior_errors
    from evalkit.seeding import numpy_rng, sample_seed
    from evalkit.video import VideoSpec

    spec = VideoSpec(frames=3, height=12, width=16, fps=8.0)
    data = ShapesTrainingData(spec, image_ratio=0.0, seed=5, length=100)
    sigmas, si, pool = (0.3, 2.0, 1e4), 2.0, 11
    got = caption_posterior_errors(data, [0, 1], sigmas, sigma_in=si, pool=pool, seed=9, chunk=4)
    one_chunk = caption_posterior_errors(data, [0, 1], sigmas, sigma_in=si, pool=pool, seed=9, chunk=pool)
    assert got.keys() == one_chunk.keys() and all(abs(got[s] - one_chunk[s]) < 1e-12 for s in sigmas)

    noise = torch.Generator().manual_seed(9)
    want = {s: [] for s in sigmas}
    for index in (0, 1):
        attrs, render_seed, _, _ = data.draw(index)
        x = render_batch([attrs], [render_seed], spec)[0].double().numpy().reshape(-1) / 127.5 - 1
        seeds = numpy_rng(sample_seed(9, index, "diagnostics/posterior-pool")).integers(0, 2**62, pool)
        p = render_batch([attrs] * pool, [int(v) for v in seeds], spec).double().numpy().reshape(pool, -1) / 127.5 - 1
        for s in sigmas:
            y = x / si + s * torch.randn(x.shape, generator=noise, dtype=torch.float64).numpy()
            w = softmax(-((y[None] - p / si) ** 2).sum(1) / (2 * s * s))
            want[s].append(((w @ p - x) ** 2).mean())
        # at an enormous sigma the posterior is the pool's plain mean
        assert np.allclose(softmax(-((y[None] - p / si) ** 2).sum(1) / (2 * 1e4 ** 2)), 1 / pool, rtol=1e-2)
    for s in sigmas:
        assert abs(got[s] - float(np.mean(want[s]))) < 1e-9 * max(1.0, got[s]), (s, got[s], want[s])


def test_input_dependence_is_the_variance_over_draws_of_the_skip_path():
    from evalkit.generators.diagnostics import input_dependence

    clips = torch.rand(2, 3, 2, 4, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1
    cond = make_conditioning(torch.zeros(2, 2, 8), torch.ones(2, 2, dtype=torch.bool), fps=24.0, resolution=(4, 4))
    diffusion = SigmaInEDM(DiffusionConfig())
    sigmas, si = (0.5, 3.0), 2.0
    got = input_dependence(diffusion, _zero_net, clips, cond, sigmas, sigma_in=si, draws=3, seed=4)
    g = torch.Generator().manual_seed(4)
    for s in sigmas:
        c_skip = si / (si * s ** 2 + 1)
        eps = torch.stack([torch.randn(clips.shape, generator=g) for _ in range(3)])
        want = float((c_skip * s * eps).var(dim=0, unbiased=True).mean())   # x/si cancels out of the variance
        assert abs(got[s] - want) < 1e-6 * max(1.0, want), (s, got[s], want)

    def caption_only(x_in, c_noise, cond):   # ignores its input: only the skip path varies
        return torch.ones_like(x_in) * 0.3

    assert input_dependence(diffusion, caption_only, clips, cond, (1e4,), sigma_in=si, draws=2)[1e4] < 1e-7


def _tiny_upsampler_file(tmp_path, residual: bool = False):
    from evalkit.generators.checkpoints import save_weights
    from evalkit.generators.snapvideo import _test_model, build_model

    spec = _test_model("fit-upsampler-tiny", 16, 32, group_size=[4, 2, 4])
    spec["upsampler"] = {"lowres_height": 8, "lowres_width": 16, "residual": residual}
    torch.manual_seed(0)
    model = build_model(spec, text_dim=16)
    meta = {"model": {"name": "snapvideo-fit", "params": {"model": spec}},
            "text_encoder": {"name": "hashed", "params": {"dim": 16}}}
    return save_weights(tmp_path / "up.safetensors", model.state_dict(), meta), model


def _area_then_bilinear(clips, low_hw, high_hw):
    """(B, C, T, H, W) -> per frame: area down to ``low_hw``, bilinear back up to ``high_hw``."""
    import torch.nn.functional as F

    b, c, t, h, w = clips.shape
    frames = clips.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    low = F.interpolate(frames, size=low_hw, mode="area")
    up = F.interpolate(low, size=high_hw, mode="bilinear", align_corners=False)
    return up.reshape(b, t, c, *high_hw).permute(0, 2, 1, 3, 4)


def test_upsampler_conditioning_is_the_resized_target_and_the_bar_is_its_error(tmp_path, capsys):
    import pytest

    from evalkit.datasets.shapes.dataset import ShapesTrainingData
    from evalkit.generators.diagnostics import main, upsampler_conditioning
    from evalkit.generators.snapvideo import videos_to_clips
    from evalkit.video import VideoSpec

    path, model = _tiny_upsampler_file(tmp_path)
    data = ShapesTrainingData(VideoSpec(frames=4, height=16, width=32, fps=24.0), image_ratio=0.0, seed=3,
                              length=10**6)
    videos, _, _, _ = data.batch([0, 1])
    clips = videos_to_clips(videos)
    cond = make_conditioning(torch.zeros(2, 2, 16), torch.ones(2, 2, dtype=torch.bool), fps=24.0,
                             resolution=(16, 32))
    cond, low = upsampler_conditioning(model, clips, cond, aug_level=0.0)
    # sigma_data = 1 and no augmentation: the extra channels are the resized low-resolution clip itself
    torch.testing.assert_close(cond.lowres, _area_then_bilinear(clips, (8, 16), (16, 32)), atol=1e-6, rtol=0)
    assert low.shape == (2, 3, 4, 8, 16)
    noisy, _ = upsampler_conditioning(model, clips, cond, aug_level=0.3)
    assert float((noisy.lowres - cond.lowres).abs().max()) > 0.1

    assert main([str(path), "--clips", "2", "--seed", "3", "--sigmas", "0.5", "2"]) == 0
    out = capsys.readouterr().out
    bar = float(out.split("low-res input, resized up")[1].split()[0])
    want = float(((_area_then_bilinear(clips, (8, 16), (16, 32)) - clips) ** 2).mean())
    assert abs(bar - want) < 5e-5, (bar, want)
    with pytest.raises(SystemExit):
        main([str(path), "--clips", "2", "--posterior-pool", "4"])


def test_residual_upsampler_is_scored_on_the_clip_it_returns(tmp_path, capsys, monkeypatch):
    """A residual stage whose denoiser returns 0 returns the resized input: its error is the resize bar."""
    import math

    from evalkit.datasets.shapes.dataset import ShapesTrainingData
    from evalkit.generators.diagnostics import main
    from evalkit.generators.snapvideo import videos_to_clips
    from evalkit.video import VideoSpec

    path, model = _tiny_upsampler_file(tmp_path, residual=True)
    assert model.is_residual
    monkeypatch.setattr(SigmaInEDM, "denoise", lambda self, net, x, sigma, cond, si: (torch.zeros_like(x), None))
    assert main([str(path), "--clips", "2", "--seed", "3", "--sigmas", "0.5", "--sample", "2",
                 "--sigma-max", "0.2"]) == 0
    out = capsys.readouterr().out
    mse = float(out.split("\n")[1].split()[1])
    bar = float(out.split("low-res input, resized up")[1].split()[0])
    assert mse > 0 and abs(mse - bar) < 1e-4, (mse, bar)
    # and its samples are the resized input, whose PSNR is computed here independently
    data = ShapesTrainingData(VideoSpec(frames=4, height=16, width=32, fps=24.0), image_ratio=0.0, seed=3,
                              length=10**6)
    clips = videos_to_clips(data.batch([0, 1])[0])
    want = 10 * math.log10(4 / float(((_area_then_bilinear(clips, (8, 16), (16, 32)) - clips) ** 2).mean()))
    resized = float(out.split("(resized up: ")[1].split()[0])
    sampled = float(out.split("2 steps from sigma 0.2: ")[1].split()[0])
    assert abs(resized - want) < 0.01 and abs(sampled - want) < 0.01, (resized, sampled, want)
