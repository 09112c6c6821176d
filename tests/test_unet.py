"""The video U-Net: Table 7 parameter counts, identity temporal branches, image handling, errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from evalkit.errors import ConfigError, InputError
from evalkit.generators.conditioning import Conditioning, make_conditioning
from evalkit.generators.unet import (
    TemporalAttention,
    TemporalConv,
    UNetConfig,
    VideoUNet,
    count_parameters,
    relative_position_bucket,
)
from evalkit.generators.unet_configs import PAPER_PARAMETERS, UNET_CONFIGS, unet_config

TEST_CFG = UNetConfig(base_channels=16, channel_mult=[1, 2], num_res_blocks=1, attention_resolutions=[64, 32],
                      attention_reference=64, head_channels=8, cond_channels=16, text_dim=12, dropout=0.0,
                      norm_groups=4, temporal_conv=True)


def _randomise(net: VideoUNet, *, temporal: bool) -> VideoUNet:
    """Give every zero-initialised weight random values (temporal branches only if asked), so the
    network output is not trivially zero."""
    gen = torch.Generator().manual_seed(0)
    temporal_params = {id(p) for m in net.temporal_modules() for p in m.parameters()}
    with torch.no_grad():
        for p in net.parameters():
            if (id(p) in temporal_params) != temporal:
                continue
            if torch.count_nonzero(p) == 0:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return net


def _cond(text, mask, fps=(8.0, 8.0), **kw) -> Conditioning:
    return make_conditioning(text, mask, fps=torch.tensor(fps[: text.shape[0]]), resolution=(8, 8), **kw)


def _inputs(b=2, t=4, h=8, w=8, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, t, h, w, generator=gen)
    c_noise = torch.randn(b, generator=gen)
    text = torch.randn(b, 5, 12, generator=gen)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]][:b], dtype=torch.bool)
    return x, c_noise, _cond(text, mask)


def _per_frame(net: VideoUNet, x, c_noise, cond):
    return torch.cat([net(x[:, :, i : i + 1], c_noise, cond) for i in range(x.shape[2])], dim=2)


@pytest.mark.parametrize("name", sorted(PAPER_PARAMETERS))
def test_table7_parameter_counts_within_5_percent(name):
    with torch.device("meta"):
        net = VideoUNet(UNET_CONFIGS[name])
    n = count_parameters(net)
    assert abs(n / PAPER_PARAMETERS[name] - 1) < 0.05, (name, n)


def test_tiny_config_is_small():
    assert count_parameters(VideoUNet(UNET_CONFIGS["unet-tiny"])) < 3e6


def test_temporal_branches_start_as_identity():
    torch.manual_seed(0)
    net = _randomise(VideoUNet(TEST_CFG), temporal=False).eval()
    assert len(net.temporal_modules()) > 0
    x, c_noise, cond = _inputs()
    with torch.no_grad():
        video = net(x, c_noise, cond)
        frames = _per_frame(net, x, c_noise, cond)
    assert video.abs().mean() > 1e-3  # not trivially zero
    torch.testing.assert_close(video, frames, atol=1e-5, rtol=1e-5)
    # the same check fails once the temporal output projections are non-zero
    _randomise(net, temporal=True)
    with torch.no_grad():
        assert not torch.allclose(net(x, c_noise, cond), _per_frame(net, x, c_noise, cond), atol=1e-4)


@pytest.mark.parametrize("kind", [TemporalAttention, TemporalConv])
def test_each_temporal_branch_is_zero_at_init(kind):
    net = VideoUNet(TEST_CFG)
    mods = [m for m in net.temporal_modules() if isinstance(m, kind)]
    assert mods
    for m in mods:
        x = torch.randn(2 * 4, m.norm.num_channels, 4, 4)
        torch.testing.assert_close(m(x, 4, None), x, atol=0, rtol=0)


def test_skip_temporal_images_equal_per_frame_processing():
    net = _randomise(VideoUNet(dataclasses.replace(TEST_CFG, image_mode="skip_temporal")), temporal=False)
    _randomise(net, temporal=True).eval()
    x, c_noise, cond = _inputs()
    images = cond.replace(fps=torch.tensor([float("inf"), 8.0]))
    with torch.no_grad():
        out = net(x, c_noise, images)
        frames = _per_frame(net, x, c_noise, images)
        mixed = net(x, c_noise, cond)
    torch.testing.assert_close(out[0], frames[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out[1], frames[1], atol=1e-4)
    torch.testing.assert_close(out[1], mixed[1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out[0], mixed[0], atol=1e-4)


def test_static_clip_mode_keeps_temporal_layers_for_images():
    cfg = dataclasses.replace(TEST_CFG, fps_conditioning=False)  # the image flag then changes nothing else
    net = _randomise(_randomise(VideoUNet(cfg), temporal=False), temporal=True).eval()
    x, c_noise, cond = _inputs()
    images = cond.replace(fps=torch.tensor([float("inf"), float("inf")]))
    with torch.no_grad():
        torch.testing.assert_close(net(x, c_noise, images), net(x, c_noise, cond), atol=0, rtol=0)
        skipping = VideoUNet(dataclasses.replace(cfg, image_mode="skip_temporal")).eval()
        skipping.load_state_dict(net.state_dict())
        assert not torch.allclose(skipping(x, c_noise, images), net(x, c_noise, images), atol=1e-4)


def test_sample_does_not_depend_on_batch():
    net = _randomise(_randomise(VideoUNet(TEST_CFG), temporal=False), temporal=True).eval()
    x, c_noise, cond = _inputs()
    cond = cond.replace(fps=torch.tensor([8.0, float("inf")]))
    second = _cond(cond.text[1:], cond.text_mask[1:], fps=(float("inf"),))
    with torch.no_grad():
        both = net(x, c_noise, cond)
        alone = net(x[1:], c_noise[1:], second)
    torch.testing.assert_close(both[1:], alone, atol=1e-5, rtol=1e-5)


def test_conditioning_changes_output():
    net = _randomise(_randomise(VideoUNet(TEST_CFG), temporal=False), temporal=True).eval()
    x, c_noise, cond = _inputs()
    with torch.no_grad():
        base = net(x, c_noise, cond)
        assert not torch.allclose(base, net(x, c_noise + 1, cond), atol=1e-4)
        assert not torch.allclose(base, net(x, c_noise, cond.replace(text=cond.text * 2)), atol=1e-4)
        assert not torch.allclose(base, net(x, c_noise, cond.replace(fps=torch.tensor([2.0, 2.0]))), atol=1e-4)
        assert not torch.allclose(base, net(x, c_noise, cond.replace(resolution=torch.ones(2, 2))), atol=1e-4)
        dropped = net(x, c_noise, cond.without_text())  # every token masked: the unconditional branch
    assert torch.isfinite(dropped).all()


def test_backward_reaches_every_parameter():
    net = _randomise(_randomise(VideoUNet(TEST_CFG), temporal=False), temporal=True).train()
    x, c_noise, cond = _inputs()
    net(x, c_noise, cond).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_indivisible_resolution_is_a_clear_error():
    net = VideoUNet(unet_config("unet-tiny"))
    with pytest.raises(InputError, match=r"divisible by 8 .*got 12x8"):
        net(torch.zeros(1, 3, 2, 12, 8), torch.zeros(1), _cond(torch.zeros(1, 3, 384), torch.ones(1, 3)))
    with torch.device("meta"):
        big = VideoUNet(UNET_CONFIGS["unet-85m"])
    with pytest.raises(InputError, match=r"divisible by 8 .*got 36x64"):
        big.check_input(torch.zeros(1, 3, 16, 36, 64, device="meta"))


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="norm_groups"):
        UNetConfig(base_channels=20, norm_groups=8)
    with pytest.raises(ValueError, match="attention_resolutions"):
        UNetConfig(attention_resolutions=[48])
    with pytest.raises(ConfigError, match="unknown U-Net architecture"):
        unet_config("unet-1b")


def test_relative_bucket_matches_t5():
    t5 = pytest.importorskip("transformers.models.t5.modeling_t5")
    rel = torch.arange(-70, 71)[None, :]
    ours = relative_position_bucket(rel, 32, 32)
    ref = t5.T5Attention._relative_position_bucket(rel, bidirectional=True, num_buckets=32, max_distance=32)
    torch.testing.assert_close(ours, ref)


# --------------------------------------------------------------------------------------------------
# the trainable model and the unet-video generator


def _tiny_model_spec():
    return {"base": "unet-tiny", "frames": 4, "height": 16, "width": 16, "video_height": 12, "video_width": 16}


def test_model_shares_fit_diffusion_and_sizes():
    from evalkit.generators.diffusion import SigmaInEDM
    from evalkit.generators.unet_configs import resolve_unet_model_config
    from evalkit.generators.unet_generator import build_unet_model

    model = build_unet_model("unet-tiny", text_dim=384)
    assert isinstance(model.diffusion, SigmaInEDM)
    assert model.sigma_in == 4.0  # 16 frames at 64 px, as fit-tiny
    assert model.clip_shape == (16, 36, 64) and model.noise_shape() == (3, 16, 40, 64)
    with pytest.raises(ConfigError, match="44x64 must be divisible by 8"):
        resolve_unet_model_config({"base": "unet-tiny", "height": 44})


def test_training_loss_backward_with_images():
    from evalkit.generators.unet_generator import trainable_unet
    from evalkit.video import VideoSpec

    torch.manual_seed(0)
    model = trainable_unet({"model": _tiny_model_spec()}, text_dim=12, spec=VideoSpec(4, 12, 16, 8.0))
    videos = torch.randint(0, 256, (2, 4, 12, 16, 3), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    loss = model.loss(videos, torch.randn(2, 5, 12), torch.ones(2, 5, dtype=torch.bool), torch.tensor([8.0, 8.0]),
                      torch.tensor([False, True]), gen)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ConfigError, match="model makes 4x12x16 clips"):
        trainable_unet({"model": _tiny_model_spec()}, text_dim=12, spec=VideoSpec(4, 16, 16, 8.0))


def test_generator_loads_exported_weights(tmp_path):
    from evalkit.errors import WeightsError
    from evalkit.generators.checkpoints import save_weights
    from evalkit.generators.unet_generator import UNetVideoGenerator, build_unet_model
    from evalkit.video import VideoSpec

    enc = {"name": "hashed", "params": {"dim": 16, "max_length": 8}}
    torch.manual_seed(3)
    model = build_unet_model(_tiny_model_spec(), text_dim=16)
    _randomise(_randomise(model.net, temporal=False), temporal=True)
    path = save_weights(tmp_path / "w.safetensors", model.state_dict(),
                        {"model": {"name": "unet-video", "params": {"model": _tiny_model_spec()}}, "text_encoder": enc})
    gen = UNetVideoGenerator(UNetVideoGenerator.Config(checkpoint=str(path), steps=2))
    assert not gen.random_weights and gen.encoder.name == "hashed"
    for key, value in model.state_dict().items():
        torch.testing.assert_close(gen.model.state_dict()[key], value, atol=0, rtol=0)
    spec = VideoSpec(frames=4, height=12, width=16, fps=8.0)
    videos = gen.generate(["a red circle", "a blue square"], [1, 2], spec)
    assert videos.shape == (2, 4, 12, 16, 3) and gen.last_nfe == 3 * 2  # 2 Heun steps, guided
    with pytest.raises(InputError, match="asks for 4 frames at 16x16"):
        gen.generate(["x"], [0], VideoSpec(frames=4, height=16, width=16))
    wrong = save_weights(tmp_path / "fit.safetensors", model.state_dict(), {"model": {"name": "snapvideo-fit"}})
    with pytest.raises(WeightsError, match="expected 'unet-video'"):
        UNetVideoGenerator(UNetVideoGenerator.Config(checkpoint=str(wrong)))
    with pytest.raises(ConfigError, match="checkpoint"):
        UNetVideoGenerator(UNetVideoGenerator.Config())
