"""The ``resized`` wrapper: the wrapped generator's videos, interpolated as torchvision resizes them."""

import warnings

import pytest
import torch
import torchvision.transforms.functional as TF

from evalkit.errors import ConfigError
from evalkit.generators.base import build_generator
from evalkit.generators.resized import ResizedGenerator, resize_videos
from evalkit.video import VideoSpec


def test_resize_matches_torchvision():
    videos = torch.randint(0, 256, (2, 3, 8, 16, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    got = resize_videos(videos, 16, 32)
    frames = videos.reshape(6, 8, 16, 3).permute(0, 3, 1, 2).float()
    want = TF.resize(frames, [16, 32], interpolation=TF.InterpolationMode.BILINEAR, antialias=False)
    want = want.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).reshape(2, 3, 16, 32, 3)
    assert torch.equal(got, want)


def test_wrapped_generator_resized_seed_for_seed(tmp_path):
    gen = ResizedGenerator.test_instance(tmp_path)
    spec = VideoSpec(frames=4, height=16, width=32, fps=8.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights
        out = gen.generate(["a red ball", "a blue cube"], [3, 4], spec)
        small = gen.inner.generate(["a red ball", "a blue cube"], [3, 4], VideoSpec(frames=4, height=8, width=16,
                                                                                    fps=8.0))
    assert out.shape == (2, 4, 16, 32, 3)
    assert torch.equal(out, resize_videos(small, 16, 32))
    assert gen.last_nfe == gen.inner.last_nfe


def test_bad_wrapped_generator_is_named():
    with pytest.raises(Exception, match="unknown generator 'snapvideo-fitt'"):
        build_generator("resized", {"generator": "snapvideo-fitt"})
    with pytest.raises(ConfigError, match="cannot wrap"):
        build_generator("resized", {"generator": "resized"})
