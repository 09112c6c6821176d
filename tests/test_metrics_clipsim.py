"""CLIPSIM and CLIP-FID detectors against open_clip called directly on the same weight file.

A tiny open_clip configuration keeps the test fast; the detector classes, weight loading (strict,
QuickGELU), preprocessing and reduction are the ones the ViT-B/32, B/16 and L/14 variants use.
"""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from evalkit import weights as W
from evalkit.errors import InputError
from evalkit.metrics.base import build_metric
from evalkit.metrics.detectors.clip import ClipFidViTB32, ClipSimViTB32, build_open_clip

torch.set_num_threads(1)
TINY = "evalkit-test-tiny-clip"


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clipcfg")
    config = {"embed_dim": 32, "quick_gelu": True,
              "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "patch_size": 32},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}
    (folder / f"{TINY}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder / f"{TINY}.json")
    torch.manual_seed(7)
    model = open_clip.create_model(TINY, pretrained=None)
    path = folder / "tiny-clip.pt"
    torch.save(model.state_dict(), path)
    return path


class _TinySim(ClipSimViTB32):
    name: ClassVar[str] = "clipsim-test-tiny"
    arch: ClassVar[str] = TINY


class _TinyFid(ClipFidViTB32):
    name: ClassVar[str] = "clip-fid-test-tiny"
    arch: ClassVar[str] = TINY
    feature_dim: ClassVar[int] = 32


def _reference(path, videos: np.ndarray, prompts: list[str]):
    model, _, preprocess = open_clip.create_model_and_transforms(TINY, pretrained=str(path), force_quick_gelu=True)
    model.eval()
    tokenizer = open_clip.get_tokenizer(TINY)
    sims, feats = [], []
    with torch.no_grad():
        text = model.encode_text(tokenizer(prompts))
        text = text / text.norm(dim=-1, keepdim=True)
        for video, t in zip(videos, text):
            image = model.encode_image(torch.stack([preprocess(Image.fromarray(f)) for f in video]))
            feats.append(image)
            image = image / image.norm(dim=-1, keepdim=True)
            sims.append(float((image @ t).mean()))
    return np.array(sims), torch.cat(feats)


def test_clipsim_and_clip_fid_match_open_clip(tiny_weights):
    rng = np.random.default_rng(0)
    videos = rng.integers(0, 256, size=(3, 2, 40, 56, 3), dtype=np.uint8)
    prompts = ["a red ball bouncing", "a person riding a bike", "waves on a beach at sunset"]
    expected_sims, expected_feats = _reference(tiny_weights, videos, prompts)
    with W.overrides({"clip-vit-b-32-openai": tiny_weights}):
        sim = _TinySim(batch_size=3)  # two videos of 2 frames per batch, then one
        fid = _TinyFid()
    got = sim(torch.from_numpy(videos), prompts)
    assert got.shape == (3, 1) and not sim.per_frame and fid.per_frame
    np.testing.assert_allclose(got[:, 0].numpy(), expected_sims, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fid(torch.from_numpy(videos)), expected_feats, rtol=1e-5, atol=1e-5)
    metric = build_metric("clipsim:vit-b-32")
    metric.update(got, real=False)
    assert metric.compute().value == pytest.approx(expected_sims.mean(), rel=1e-5)
    assert sim.comparable is False  # not the OpenAI file


def test_clipsim_needs_one_prompt_per_video(tiny_weights):
    with W.overrides({"clip-vit-b-32-openai": tiny_weights}):
        sim = _TinySim()
    videos = torch.zeros((2, 1, 8, 8, 3), dtype=torch.uint8)
    with pytest.raises(InputError, match="one text prompt per video"):
        sim(videos, ["only one"])
    with pytest.raises(InputError, match="one text prompt per video"):
        sim(videos)


def test_openai_architectures_are_built_with_quick_gelu():
    model, _, _ = build_open_clip("ViT-B-32", None, torch.device("cpu"))
    act = model.visual.transformer.resblocks[0].mlp.gelu
    assert type(act).__name__ == "QuickGELU"


def test_clipsim_metric_rejects_out_of_range_scores():
    metric = build_metric("clipsim:vit-b-16")
    with pytest.raises(InputError, match=r"\[-1, 1\]"):
        metric.update(np.array([[1.5]]), real=False)
    with pytest.raises(InputError, match="generated videos only"):
        metric.update(np.array([[0.2]]), real=True)
