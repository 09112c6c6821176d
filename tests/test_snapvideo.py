"""Snap Video model and generators: training loss, images as static clips, seeds, weights, cascade, errors."""

import warnings

import pytest
import torch

import evalkit.generators.snapvideo  # noqa: F401  (registers snapvideo-fit / snapvideo-cascade)
from evalkit.config import from_dict
from evalkit.errors import ConfigError, InputError, WeightsError
from evalkit.generators.base import build_generator
from evalkit.generators.checkpoints import save_weights
from evalkit.generators.conditioning import make_conditioning, strided_clip
from evalkit.generators.model_configs import resolve_model_config
from evalkit.generators.snapvideo import (
    SnapVideoConfig,
    build_model,
    clips_to_videos,
    crop_clips,
    pad_clips,
    static_clips,
    videos_to_clips,
)
from evalkit.generators.trainer import TRAINABLE_MODELS
from evalkit.video import VideoSpec

_NET = dict(frames=4, height=8, width=16, patch_width=16, num_latents=8, latent_width=32, num_blocks=1,
            global_layers=1, patch_head_dim=8, latent_head_dim=16, cond_width=32)
BASE = {"base": "fit-tiny", "fit": dict(_NET, group_size=[4, 1, 2]), "video_height": 4, "video_width": 16}
CASCADE_BASE = {"base": "fit-tiny", "fit": dict(_NET, group_size=[4, 1, 2]), "video_height": 8, "video_width": 16}
UPSAMPLER = {"base": "fit-upsampler-tiny", "fit": dict(_NET, height=16, width=32, group_size=[4, 2, 4]),
             "upsampler": {"lowres_height": 8, "lowres_width": 16}}
HASHED = {"text_encoder": "hashed", "text_encoder_params": {"dim": 16}}
SPEC = VideoSpec(frames=4, height=4, width=16, fps=8.0)


def fit_generator(**kw):
    params = {"model": BASE, "init_seed": 0, "steps": 2, "guidance": 2.0, **HASHED, **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_generator("snapvideo-fit", params)


def generate(gen, prompts, seeds, spec=SPEC):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gen.generate(prompts, seeds, spec)


def batch(b=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    videos = torch.randint(0, 256, (b, 4, 4, 16, 3), generator=gen, dtype=torch.uint8)
    tokens = torch.randn(b, 5, 16, generator=gen)
    mask = torch.ones(b, 5, dtype=torch.bool)
    fps = torch.full((b,), 8.0)
    return videos, tokens, mask, fps


def test_clip_layout_round_trips():
    v = torch.randint(0, 256, (2, 3, 5, 7, 3), dtype=torch.uint8)
    assert torch.equal(clips_to_videos(videos_to_clips(v)), v)
    x = videos_to_clips(v)
    padded = pad_clips(x, 9, 11)
    assert padded.shape == (2, 3, 3, 9, 11)
    assert torch.equal(crop_clips(padded, 5, 7), x)
    assert torch.equal(padded[..., 0, 2:9], x[..., 0, :])  # replicate padding
    images = torch.randint(0, 256, (2, 6, 8, 3), dtype=torch.uint8)
    clips = static_clips(images, 4)
    assert clips.shape == (2, 4, 6, 8, 3) and all(torch.equal(clips[:, t], images) for t in range(4))
    clip, fps = strided_clip(torch.arange(20), 30.0, 4, 3, start=2)
    assert clip.tolist() == [2, 5, 8, 11] and fps == 10.0
    with pytest.raises(InputError, match="need 22 frames, the video has 20"):
        strided_clip(torch.arange(20), 30.0, 4, 6, start=3)


def test_images_condition_on_infinite_frame_rate():
    cond = make_conditioning(torch.zeros(3, 2, 4), torch.ones(3, 2, dtype=torch.bool), fps=24.0, resolution=(36, 64),
                             is_image=torch.tensor([True, False, True]))
    assert cond.is_image.tolist() == [True, False, True]
    from evalkit.generators.conditioning import frame_interval
    torch.testing.assert_close(frame_interval(cond.fps), torch.tensor([0.0, 1 / 24, 0.0]))


def test_training_loss_is_a_differentiable_scalar():
    model = build_model(BASE, text_dim=16)
    assert model.sigma_in == pytest.approx(16 / 64 * 4 ** 0.5)  # s * sqrt(T), s = width / 64
    videos, tokens, mask, fps = batch()
    loss = model.loss(videos, tokens, mask, fps, torch.tensor([True, False, False, True]),
                      torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) > 10 and any(g.abs().sum() > 0 for g in grads)


def test_image_samples_train_as_static_clips():
    model = build_model(BASE, text_dim=16).eval()
    videos, tokens, mask, fps = batch()
    is_image = torch.tensor([True, False, True, False])
    static = videos.clone()
    static[is_image] = static_clips(videos[is_image, 0], 4)
    a = model.loss(videos, tokens, mask, fps, is_image, torch.Generator().manual_seed(3))
    b = model.loss(static, tokens, mask, fps, is_image, torch.Generator().manual_seed(3))
    assert a.item() == b.item()
    c = model.loss(static, tokens, mask, fps, None, torch.Generator().manual_seed(3))
    assert c.item() != a.item()  # frame rate 24 vs infinite changes the conditioning


def test_upsampler_loss_derives_its_low_resolution_input():
    model = build_model(UPSAMPLER, text_dim=16)
    assert model.is_upsampler and model.clip_shape == (4, 16, 32)
    gen = torch.Generator().manual_seed(0)
    videos = torch.randint(0, 256, (2, 4, 16, 32, 3), generator=gen, dtype=torch.uint8)
    loss = model.loss(videos, torch.randn(2, 3, 16), torch.ones(2, 3, dtype=torch.bool), torch.full((2,), 8.0),
                      None, gen)
    assert torch.isfinite(loss)
    with pytest.raises(InputError, match="expected clips of 4 frames at 16x32"):
        model.loss(videos[:, :, :8], torch.randn(2, 3, 16), torch.ones(2, 3, dtype=torch.bool), 8.0, None, gen)


def _area_then_bilinear(clips, low_hw, high_hw):
    """(B, C, T, H, W) -> per frame: area down to ``low_hw`` then bilinear up to ``high_hw`` (plain torch)."""
    import torch.nn.functional as F

    b, c, t, h, w = clips.shape
    frames = clips.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    low = F.interpolate(frames, size=low_hw, mode="area")
    up = F.interpolate(low, size=high_hw, mode="bilinear", align_corners=False)
    return up.reshape(b, t, c, *high_hw).permute(0, 2, 1, 3, 4)


RESIDUAL_UPSAMPLER = dict(UPSAMPLER, upsampler={"lowres_height": 8, "lowres_width": 16, "residual": True})


def test_residual_upsampler_trains_on_the_difference_from_the_resized_input(monkeypatch):
    import evalkit.generators.snapvideo as sv

    seen = {}

    def capture(diffusion, net, x, cond, **kw):
        seen["x"], seen["lowres"] = x, cond.lowres
        return x.sum() * 0

    monkeypatch.setattr(sv, "training_loss", capture)
    gen = torch.Generator().manual_seed(0)
    videos = torch.randint(0, 256, (2, 4, 16, 32, 3), generator=gen, dtype=torch.uint8)
    args = (videos, torch.randn(2, 3, 16), torch.ones(2, 3, dtype=torch.bool), 8.0, None)
    build_model(RESIDUAL_UPSAMPLER, text_dim=16).loss(*args, torch.Generator().manual_seed(1))
    clips = videos_to_clips(videos)
    torch.testing.assert_close(seen["x"], clips - _area_then_bilinear(clips, (8, 16), (16, 32)), atol=1e-6, rtol=0)
    residual_cond = seen["lowres"]
    build_model(UPSAMPLER, text_dim=16).loss(*args, torch.Generator().manual_seed(1))
    torch.testing.assert_close(seen["x"], clips, atol=0, rtol=0)  # the paper's upsampler: the clip itself
    torch.testing.assert_close(residual_cond, seen["lowres"], atol=0, rtol=0)  # same conditioning either way


def test_residual_upsampler_samples_on_top_of_the_resized_input(monkeypatch):
    """With a denoiser that predicts no residual, the Heun sampler ends at 0 and the stage returns the
    bilinear-resized low-resolution clip; dynamic thresholding acts on that clip, not on the residual."""
    from evalkit.generators.diffusion import SigmaInEDM
    from evalkit.generators.sampler import SamplerConfig

    model = build_model(RESIDUAL_UPSAMPLER, text_dim=16)
    low = torch.rand(2, 3, 4, 8, 16, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    cond = make_conditioning(torch.randn(2, 3, 16), torch.ones(2, 3, dtype=torch.bool), fps=8.0,
                             resolution=(16, 32))
    aug = torch.zeros(2)
    cond = cond.replace(lowres=model.lowres_input(low, aug, torch.zeros(2, 3, 4, 16, 32)), aug_level=aug)
    noise = torch.randn(2, *model.noise_shape(), generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(SigmaInEDM, "denoise", lambda self, net, x, sigma, cond, si: (torch.zeros_like(x), None))
    out, _ = model.sample(noise, cond, SamplerConfig(steps=3, sigma_max=0.2, dynamic_threshold=0.995), lowres=low)
    torch.testing.assert_close(out, _area_then_bilinear(low, (8, 16), (16, 32)), atol=1e-5, rtol=0)
    # a residual that would push the video past [-1, 1] is thresholded with the video in view
    monkeypatch.setattr(SigmaInEDM, "denoise",
                        lambda self, net, x, sigma, cond, si: (torch.full_like(x, 3.0), None))
    out, _ = model.sample(noise, cond, SamplerConfig(steps=1, sigma_max=0.2, dynamic_threshold=1.0), lowres=low)
    assert float(out.abs().max()) <= 1 + 1e-5 and float(out.max()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(InputError, match="residual upsampler"):
        model.sample(noise, cond, SamplerConfig(steps=1))


def test_sampling_far_above_the_training_sigmas_warns():
    model = dict(BASE, diffusion={"P_mean": -4.4, "P_std": 1.4})  # ln sigma five deviations up: 13.5

    def build(**kw):
        return build_generator("snapvideo-fit", {"model": model, "init_seed": 0, **HASHED, **kw})

    with pytest.warns(UserWarning, match=r"sigma_max = 80 is far above .* N\(-4.4, 1.4\^2\)"):
        build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random weights
        warnings.filterwarnings("error", message=".*far above")
        build(sigma_max=0.2)
        build(model=BASE)  # the default training sigmas, N(-1.2, 1.2^2), reach 121


def test_same_seed_same_video_alone_or_in_a_batch():
    gen = fit_generator()
    assert gen.random_weights
    prompts = ["a red ball bouncing", "a blue cube sliding left", "a green star"]
    out = generate(gen, prompts, [11, 22, 33])
    assert out.shape == (3, 4, 4, 16, 3) and out.dtype == torch.uint8
    alone = generate(gen, [prompts[1]], [22])
    assert (out[1].int() - alone[0].int()).abs().max().item() <= 1
    assert (out[1] == alone[0]).float().mean().item() > 0.99
    other = generate(gen, [prompts[1]], [23])
    assert not torch.equal(other[0], alone[0])
    assert gen.last_nfe == 2 * (2 * 2 - 1)
    with pytest.warns(UserWarning, match="random weights"):
        gen.generate(["x"], [1], SPEC)


def test_random_init_is_seeded():
    a, b, c = fit_generator(init_seed=5), fit_generator(init_seed=5), fit_generator(init_seed=6)
    sa, sb, sc = (g.model.state_dict() for g in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_bad_requests_and_configs():
    gen = fit_generator()
    with pytest.raises(InputError, match="same length"):
        gen.generate(["a", "b"], [1], SPEC)
    with pytest.raises(InputError, match="makes 4 frames at 4x16"):
        gen.generate(["a"], [1], VideoSpec(frames=4, height=8, width=16, fps=8.0))
    with pytest.raises(ConfigError, match="init_seed"):
        build_generator("snapvideo-fit", {"model": BASE, **HASHED})
    with pytest.raises(WeightsError, match="missing.safetensors: checkpoint file not found"):
        build_generator("snapvideo-fit", {"checkpoint": "/nonexistent/missing.safetensors", **HASHED})
    with pytest.raises(ConfigError, match="guidance_mode"):
        from_dict(SnapVideoConfig, {"guidance_mode": "both"})
    with pytest.raises(ConfigError, match="unknown model config 'fit-huge'"):
        build_generator("snapvideo-fit", {"model": "fit-huge", "init_seed": 0, **HASHED})


def test_weights_file_round_trip(tmp_path):
    gen = fit_generator()
    path = tmp_path / "w.safetensors"
    meta = {"model": {"name": "snapvideo-fit", "params": {"model": BASE}},
            "text_encoder": {"name": "hashed", "params": {"dim": 16}}}
    save_weights(path, gen.model.state_dict(), meta)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # trained weights: no random-weights warning
        loaded = build_generator("snapvideo-fit", {"checkpoint": str(path), "steps": 2, "guidance": 2.0})
        assert not loaded.random_weights
        out = loaded.generate(["a red ball"], [4], SPEC)
    torch.testing.assert_close(out, generate(gen, ["a red ball"], [4]), atol=0, rtol=0)
    other = {"base": "fit-tiny", "fit": dict(_NET, group_size=[4, 1, 2], latent_width=48), "video_height": 4,
             "video_width": 16}
    with pytest.raises(WeightsError, match="w.safetensors: weights do not fit the model config"):
        build_generator("snapvideo-fit", {"checkpoint": str(path), "model": other})
    with pytest.raises(WeightsError, match="text_dim"):
        build_generator("snapvideo-fit", {"checkpoint": str(path), "text_encoder": "hashed",
                                          "text_encoder_params": {"dim": 8}})


def test_cascade_upsamples_the_base_video():
    params = {"base": {"model": CASCADE_BASE, "steps": 2}, "upsampler": {"model": UPSAMPLER, "steps": 2},
              "init_seed": 0, "aug_level": 0.1, **HASHED}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen = build_generator("snapvideo-cascade", params)
    spec = VideoSpec(frames=4, height=16, width=32, fps=8.0)
    out = generate(gen, ["a red ball", "a blue cube"], [1, 2], spec)
    assert out.shape == (2, 4, 16, 32, 3) and out.dtype == torch.uint8
    alone = generate(gen, ["a blue cube"], [2], spec)
    assert (out[1].int() - alone[0].int()).abs().max().item() <= 1
    assert gen.last_nfe == 2 * 3 + 2 * 3
    assert gen.upsampler.model.sigma_in == pytest.approx(32 / 64 * 2)
    residual = dict(params, upsampler={"model": RESIDUAL_UPSAMPLER, "steps": 2, "sigma_max": 0.2})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res_gen = build_generator("snapvideo-cascade", residual)
    assert generate(res_gen, ["a red ball"], [1], spec).shape == (1, 4, 16, 32, 3)
    bad = dict(params, base={"model": BASE, "steps": 2})  # 4x16 clips, the upsampler wants 8x16
    with pytest.raises(ConfigError, match="upsampler expects"):
        build_generator("snapvideo-cascade", bad)


def test_trainer_builder():
    builder = TRAINABLE_MODELS.get("snapvideo-fit")
    model = builder({"model": BASE}, text_dim=16, spec=SPEC)
    assert model.config.fit.text_dim == 16 and callable(model.loss)
    with pytest.raises(ConfigError, match="data is 4x8x16"):
        builder({"model": BASE}, text_dim=16, spec=VideoSpec(frames=4, height=8, width=16))
    with pytest.raises(ConfigError, match="unknown key"):
        builder({"model": BASE, "steps": 3}, text_dim=16, spec=SPEC)


def test_model_config_resolution():
    cfg = resolve_model_config({"base": "fit-tiny", "fit": {"num_blocks": 1}, "text_dropout": 0.2})
    assert cfg.fit.num_blocks == 1 and cfg.fit.patch_width == 96 and cfg.text_dropout == 0.2
    assert cfg.clip_size == (36, 64)
    with pytest.raises(ConfigError, match="did you mean 'num_blocks'"):
        resolve_model_config({"base": "fit-tiny", "fit": {"num_block": 1}})
    with pytest.raises(ConfigError, match="padding"):
        resolve_model_config({"base": "fit-tiny", "video_height": 35})
