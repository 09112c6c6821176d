"""The diffusers adapter, driven by a tiny randomly initialised TextToVideoSD pipeline (offline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from evalkit.errors import ConfigError, InputError, WeightsError  # noqa: E402
from evalkit.generators.base import build_generator  # noqa: E402
from evalkit.generators.diffusers_adapter import (  # noqa: E402
    DiffusersConfig,
    DiffusersGenerator,
    _frames_to_uint8,
    tiny_text_to_video_pipeline,
)
from evalkit.seeding import torch_generator  # noqa: E402
from evalkit.video import VideoSpec  # noqa: E402

SPEC = VideoSpec(frames=3, height=8, width=8, fps=8.0)
PROMPTS = ["a red circle", "blue square moving left", "a green star"]


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipe") / "tiny-t2v"
    tiny_text_to_video_pipeline().save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def generator(pipeline_dir):
    return build_generator("diffusers", {"path": str(pipeline_dir), "num_inference_steps": 2, "guidance_scale": 4.0})


def test_output_contract_and_nfe(generator):
    videos = generator.generate(PROMPTS, [1, 2, 3], SPEC)
    assert videos.dtype == torch.uint8 and tuple(videos.shape) == (3, *SPEC.shape)
    assert videos.float().std() > 1  # not a constant image
    assert generator.last_nfe == 4  # 2 DDIM steps x 2 guidance branches


def test_seed_gives_same_video_in_any_batch(generator):
    batch = generator.generate(PROMPTS, [1, 2, 3], SPEC)
    for i in range(3):
        alone = generator.generate([PROMPTS[i]], [i + 1], SPEC)
        assert torch.equal(alone[0], batch[i])
    other = generator.generate([PROMPTS[0]], [99], SPEC)
    assert not torch.equal(other[0], batch[0])


def test_matches_pipeline_called_with_prompt_strings(generator, pipeline_dir):
    """The embeddings path must reproduce the pipeline's own text path and rounding."""
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(pipeline_dir), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(prompt=PROMPTS[1], num_frames=3, height=8, width=8, num_inference_steps=2, guidance_scale=4.0,
               generator=torch_generator(7), output_type="pil").frames
    reference = torch.from_numpy(np.stack([np.asarray(im) for im in out[0]]))
    ours = generator.generate([PROMPTS[1]], [7], SPEC)[0]
    assert torch.equal(ours, reference)


def test_loop_seeding_equals_generator_list(pipeline_dir, generator):
    looped = build_generator("diffusers", {"path": str(pipeline_dir), "num_inference_steps": 2,
                                           "guidance_scale": 4.0, "seeding": "loop"})
    assert torch.equal(looped.generate(PROMPTS[:2], [5, 6], SPEC), generator.generate(PROMPTS[:2], [5, 6], SPEC))


def test_evalkit_text_encoder_drives_a_pipeline_without_one():
    pipe = tiny_text_to_video_pipeline()
    pipe.text_encoder, pipe.tokenizer = None, None
    config = DiffusersConfig(num_inference_steps=2, guidance_scale=3.0, text_encoder="hashed",
                             text_encoder_params={"dim": 8, "max_length": 6})
    gen = DiffusersGenerator(config, pipeline=pipe)
    batch = gen.generate(PROMPTS[:2], [1, 2], SPEC)
    assert torch.equal(gen.generate(PROMPTS[1:2], [2], SPEC)[0], batch[1])
    with pytest.raises(ConfigError, match="no text encoder of its own"):
        DiffusersGenerator(DiffusersConfig(), pipeline=pipe)
    wrong = DiffusersGenerator(DiffusersConfig(text_encoder="hashed", text_encoder_params={"dim": 6}), pipeline=pipe)
    with pytest.raises(ConfigError, match="cross_attention_dim=8"):
        wrong.generate(["x"], [0], SPEC)


def test_pipeline_without_prompt_embeds_is_refused():
    class ImageOnly:
        def __call__(self, prompt, num_frames=16, generator=None):
            raise AssertionError("never called")

    with pytest.raises(InputError, match="does not accept prompt_embeds"):
        DiffusersGenerator(DiffusersConfig(), pipeline=ImageOnly())


def test_missing_directory_and_bad_settings(tmp_path, generator):
    with pytest.raises(WeightsError, match="model_index.json"):
        build_generator("diffusers", {"path": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match="generator.params.path"):
        build_generator("diffusers", {})
    with pytest.raises(ConfigError, match="call_kwargs"):
        build_generator("diffusers", {"path": "x", "call_kwargs": {"prompt_embeds": 1}})
    with pytest.raises(InputError, match="multiples of 2"):
        generator.generate(["x"], [0], VideoSpec(frames=3, height=7, width=8))


def test_frame_layouts_are_normalised():
    x = np.random.default_rng(0).random((2, 3, 4, 5, 3)).astype(np.float32)
    expected = torch.from_numpy((x * 255).round().astype(np.uint8))
    assert torch.equal(_frames_to_uint8(x, "np"), expected)
    assert torch.equal(_frames_to_uint8(torch.from_numpy(x).permute(0, 1, 4, 2, 3), "pt"), expected)
    pil = [[Image.fromarray(f) for f in v] for v in expected.numpy()]
    assert torch.equal(_frames_to_uint8(pil, "pil"), expected)
    with pytest.raises(InputError, match=r"\(B, T, H, W, 3\)"):
        _frames_to_uint8(np.zeros((2, 4, 5, 3)), "bad")
