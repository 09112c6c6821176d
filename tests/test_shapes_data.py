"""Procedural shapes data: determinism, captions, frame-rate semantics, the protocol dataset."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from evalkit.config import from_dict
from evalkit.datasets.shapes import (
    BACKGROUNDS,
    COLORS,
    MOTIONS,
    SHAPES,
    ShapeAttributes,
    ShapesConfig,
    ShapesDataset,
    ShapesTrainingData,
    caption,
    parse_caption,
    render_batch,
    render_clip,
    sample_attributes,
)
from evalkit.datasets.shapes.attributes import LABELS, valid
from evalkit.datasets.shapes.captions import vocabulary
from evalkit.datasets.shapes.render import clip_geometry
from evalkit.errors import InputError
from evalkit.protocols import load_protocol
from evalkit.registry import DATASETS
from evalkit.video import VideoSpec

SPEC = VideoSpec(frames=8, height=36, width=64, fps=24.0)
RED_LEFT = ShapeAttributes("circle", "red", "left", "quickly", "gray")


def all_attributes() -> list[ShapeAttributes]:
    out = []
    for shape, color, motion, bg in itertools.product(SHAPES, COLORS, MOTIONS, BACKGROUNDS):
        speeds = [None] if motion == "still" else ["slowly", "quickly"]
        out += [ShapeAttributes(shape, color, motion, s, bg) for s in speeds]
    return out


def test_same_seed_same_clip_whatever_the_batch():
    a = render_clip(RED_LEFT, 7, SPEC)
    assert a.dtype == torch.uint8 and a.shape == (8, 36, 64, 3)
    assert torch.equal(a, render_clip(RED_LEFT, 7, SPEC))
    others = [ShapeAttributes("star", "blue", "clockwise", "slowly", "black")] * 40
    batch = render_batch(others + [RED_LEFT], list(range(40)) + [7], SPEC)
    assert torch.equal(batch[-1], a)
    assert not torch.equal(a, render_clip(RED_LEFT, 8, SPEC))


def test_caption_round_trip_over_the_whole_attribute_space():
    seen = set()
    for attrs in all_attributes():
        text = caption(attrs)
        assert parse_caption(text) == attrs
        assert set(text.split()) <= set(vocabulary())
        seen.add(text)
    assert len(seen) == len(all_attributes())  # captions are unique
    assert caption(RED_LEFT) == "a red circle moving left quickly on a gray background"
    assert caption(RED_LEFT.as_still()) == "a red circle on a gray background"
    assert parse_caption("  An Orange star growing slowly on a navy background. ").color == "orange"


@pytest.mark.parametrize("text", ["a red blob moving left quickly on a gray background", "a red circle", ""])
def test_parse_caption_rejects_other_text_with_the_grammar(text):
    with pytest.raises(InputError, match="grammar"):
        parse_caption(text)


def test_attribute_validation_and_sampling():
    with pytest.raises(ValueError, match="shape"):
        ShapeAttributes("blob", "red", "left", "slowly", "gray")
    with pytest.raises(ValueError, match="speed"):
        ShapeAttributes("circle", "red", "still", "slowly", "gray")
    rng = np.random.default_rng(0)
    draws = [sample_attributes(rng) for _ in range(500)]
    assert all(valid(a) and a.motion != "still" for a in draws)
    assert {a.label for a in draws} <= set(LABELS)
    assert len({a.shape for a in draws}) == len(SHAPES)


def test_fps_changes_per_frame_displacement():
    """Motion is per second: at half the frame rate a shape moves twice as far per frame."""
    dx = {}
    for fps in (12.0, 24.0):
        cx = clip_geometry(RED_LEFT, 3, VideoSpec(8, 36, 64, fps))[0]
        dx[fps] = np.diff(cx)
        assert np.allclose(dx[fps], dx[fps][0])  # constant velocity, moving left
        assert dx[fps][0] < 0
    assert dx[12.0][0] == pytest.approx(2 * dx[24.0][0])

    # the rendered clips show it: the centre of mass of the shape moves twice as far
    def centre_x(video: torch.Tensor) -> np.ndarray:
        red = (video[..., 0].float() - video[..., 1].float()).clamp(min=0)  # red shape on gray
        xs = torch.arange(video.shape[2]).float()
        return ((red.sum(1) * xs).sum(-1) / red.sum((1, 2))).numpy()

    slow = centre_x(render_clip(RED_LEFT, 3, VideoSpec(8, 36, 64, 24.0)))
    fast = centre_x(render_clip(RED_LEFT, 3, VideoSpec(8, 36, 64, 12.0)))
    shift24, shift12 = slow[0] - slow[-1], fast[0] - fast[-1]
    assert shift24 > 3 and shift12 == pytest.approx(2 * shift24, rel=0.1)


def test_infinite_fps_is_a_still_image():
    still = render_clip(ShapeAttributes("star", "white", "clockwise", "quickly", "navy"), 1, VideoSpec(4, 36, 64, math.inf))
    assert all(torch.equal(still[0], f) for f in still)
    moving = render_clip(ShapeAttributes("star", "white", "clockwise", "quickly", "navy"), 1, VideoSpec(4, 36, 64, 24.0))
    assert torch.equal(moving[0], still[0]) and not torch.equal(moving[1], still[1])


def test_antialiased_edges_and_other_sizes():
    clip = render_clip(ShapeAttributes("circle", "white", "still", None, "black"), 0, VideoSpec(1, 72, 128, 24.0))
    levels = torch.unique(clip[0, ..., 0])
    assert len(levels) > 5  # partial coverage on the edge, not just two colours
    assert render_clip(RED_LEFT, 0, VideoSpec(3, 20, 20, 8.0)).shape == (3, 20, 20, 3)


def test_protocol_dataset_plan_real_and_reference():
    proto = load_protocol("shapes")
    cls = DATASETS.get("shapes")
    assert cls is ShapesDataset
    ds = cls(from_dict(cls.Config, proto.dataset.params), proto.video.spec())
    plan = ds.plan(6, base_seed=0)
    assert plan == ds.plan(6, base_seed=0) and plan != ds.plan(6, base_seed=1)
    assert [s.index for s in plan] == list(range(6))
    for s in plan:
        attrs = parse_caption(s.prompt)
        assert s.label == attrs.label and s.meta == attrs.to_dict()
    assert ds.num_real(123) == 123
    real = ds.real_clips([0, 5], base_seed=0)
    assert real.shape == (2, 16, 36, 64, 3) and real.dtype == torch.uint8
    assert torch.equal(real[1], ds.real_clips([5], base_seed=0)[0])
    assert [parse_caption(c) for c in ds.real_captions([0, 5], 0)]
    ref = ds.reference_videos([s.prompt for s in plan[:2]], [s.seed for s in plan[:2]])
    assert torch.equal(ref[0], render_clip(parse_caption(plan[0].prompt), plan[0].seed, ds.spec))
    with pytest.raises(InputError, match="grammar"):
        ds.reference_videos(["a cat playing piano"], [0])


def test_config_restricts_attributes_and_rejects_unknown_values():
    ds = ShapesDataset(ShapesConfig(shapes=["square"], motions=["left", "right"]), SPEC)
    plan = ds.plan(20, 3)
    assert {parse_caption(s.prompt).shape for s in plan} == {"square"}
    assert {parse_caption(s.prompt).motion for s in plan} <= {"left", "right"}
    with pytest.raises(ValueError, match="unknown value"):
        ShapesConfig(colors=["mauve"])


def test_training_data_mixes_images_and_variable_fps():
    data = ShapesTrainingData(SPEC, image_ratio=0.5, seed=0, length=64, fps_choices=[8.0, 24.0])
    videos, captions, fps, is_image = data.batch(list(range(64)))
    assert videos.shape == (64, *SPEC.shape) and fps.shape == is_image.shape == (64,)
    assert 10 < int(is_image.sum()) < 54
    for v, c, f, img in zip(videos, captions, fps.tolist(), is_image.tolist(), strict=True):
        attrs = parse_caption(c)
        if img:
            assert math.isinf(f) and attrs.motion == "still" and all(torch.equal(v[0], x) for x in v)
        else:
            assert f in (8.0, 24.0) and attrs.motion != "still"
    item = data[5]
    assert torch.equal(item[0], videos[5]) and item[1] == captions[5] and item[3] == bool(is_image[5])
    first = next(data.iter_batches(16))
    assert torch.equal(first[0], videos[:16])
    with pytest.raises(IndexError):
        data[64]
