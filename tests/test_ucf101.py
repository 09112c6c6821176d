"""UCF-101: plans from the shipped official split files, and a fixture dataset in the official layout.

The fixture writes real .avi files (mpeg4, XVID tag, 25 fps) under ``UCF-101/<Class>/`` and split
files with CRLF line ends, then goes through the same loader as the real dataset. Each frame
encodes (video number, frame number) in flat colours so a clip can be traced to its source.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from evalkit import video_io
from evalkit.config import from_dict
from evalkit.datasets.clips import ClipSampler, ClipTooShortError, resize_video
from evalkit.datasets.ucf101 import UCF101, human_name, read_class_index, shipped_dir
from evalkit.errors import ConfigError, InputError
from evalkit.registry import DATASETS
from evalkit.seeding import sample_seed
from evalkit.video import VideoSpec

SHARED = Path("/work/shared/data/ucf101")


def make(params: dict | None = None, spec: VideoSpec | None = None) -> UCF101:
    cls = DATASETS.get("ucf101")
    return cls(from_dict(cls.Config, params or {}), spec or VideoSpec(16, 32, 48, 25.0))


def official_counts(list_file: Path) -> collections.Counter:
    """Per-class counts read straight from a split file (independent of the loader)."""
    counts: collections.Counter = collections.Counter()
    for raw in list_file.read_bytes().split(b"\r\n"):
        if raw.strip():
            counts[raw.decode().split()[0].split("/")[0]] += 1
    return counts


# ---- the shipped official files -------------------------------------------------------------------


def test_shipped_files_are_the_official_ones_with_crlf():
    folder = shipped_dir() / "ucfTrainTestlist"
    for name in ["classInd.txt"] + [f"{k}list0{i}.txt" for k in ("train", "test") for i in (1, 2, 3)]:
        data = (folder / name).read_bytes()
        assert b"\r\n" in data and data.count(b"\n") == data.count(b"\r\n"), name
        if SHARED.is_dir():
            assert data == (SHARED / "ucfTrainTestlist" / name).read_bytes(), name
    ds = make()
    assert len(ds.classes) == 101 and ds.classes[0] == "ApplyEyeMakeup" and ds.classes[-1] == "YoYo"
    assert (len(ds.split_entries("train")), len(ds.split_entries("test"))) == (9537, 3783)
    assert len(ds.split_entries("train+test")) == 13320
    # the quirk: the class folder says Handstand, the files say HandStand
    hand = [e for e in ds.split_entries("train") if ds.classes[e.class_index] == "HandstandPushups"]
    assert hand and all(e.relpath.startswith("HandstandPushups/v_HandStandPushups_") for e in hand)


def test_snapvideo_prompts_per_class():
    ds = make()
    prompts = dict(zip(ds.classes, ds.class_prompts, strict=True))
    assert len(set(ds.class_prompts)) == 101
    assert prompts["ApplyEyeMakeup"] == "applying eye makeup"
    assert prompts["HandstandPushups"] == "an athlete doing handstand push up"
    assert prompts["YoYo"] == "a person at a Yo-Yo competition"
    assert prompts["Haircut"] == "haircuting"  # as printed in the paper
    assert make({"prompts": "classname"}).class_prompts[0] == "Apply Eye Makeup"
    templ = make({"prompts": "template", "template": "a video of {lower}: {prompt} (class {index})"})
    assert templ.class_prompts[0] == "a video of apply eye makeup: applying eye makeup (class 1)"
    assert human_name("TaiChi") == "Tai Chi" and human_name("YoYo") == "Yo Yo"


def test_class_frequencies_match_trainlist01_chi_square():
    ds = make({"class_frequencies": "train", "class_draw": "random"})
    n = 20000
    drawn = collections.Counter(s.label for s in ds.plan(n, base_seed=7))
    expected = official_counts(shipped_dir() / "ucfTrainTestlist" / "trainlist01.txt")
    assert sum(expected.values()) == 9537
    observed = np.array([drawn[c] for c in ds.classes], dtype=float)
    exp = np.array([expected[c] for c in ds.classes], dtype=float) / 9537 * n
    p_value = stats.chisquare(observed, exp).pvalue
    assert p_value > 1e-3, p_value
    # ... and clearly not uniform: a uniform draw is rejected by the same test
    uniform = collections.Counter(s.label for s in make({"class_frequencies": "uniform"}).plan(n, base_seed=7))
    assert stats.chisquare(np.array([uniform[c] for c in ds.classes], float), exp).pvalue < 1e-6


def test_proportional_draw_reproduces_split_counts_exactly():
    for which, file in [("train", "trainlist01.txt"), ("test", "testlist01.txt")]:
        expected = official_counts(shipped_dir() / "ucfTrainTestlist" / file)
        n = sum(expected.values())
        ds = make({"class_frequencies": which, "class_draw": "proportional"})
        assert collections.Counter(s.label for s in ds.plan(n, base_seed=3)) == expected
    whole = official_counts(shipped_dir() / "ucfTrainTestlist" / "trainlist01.txt") + official_counts(
        shipped_dir() / "ucfTrainTestlist" / "testlist01.txt"
    )
    counts = collections.Counter(s.label for s in make({"class_draw": "proportional"}).plan(10000, 0))
    assert sum(counts.values()) == 10000
    for c, k in whole.items():  # largest remainder: within one of the exact share
        assert abs(counts[c] - k / 13320 * 10000) < 1, c


def test_plan_is_deterministic_and_prefix_stable():
    ds = make()
    a, b = ds.plan(50, 11), ds.plan(60, 11)
    assert a == b[:50]
    assert [s.seed for s in a] == [sample_seed(11, i) for i in range(50)]
    assert [s.index for s in a] == list(range(50))
    assert ds.plan(50, 12) != a
    assert all(s.prompt == ds.class_prompts[s.meta["class_index"] - 1] for s in a)


def test_bad_config_values():
    cls = DATASETS.get("ucf101")
    with pytest.raises(ConfigError, match="template"):
        from_dict(cls.Config, {"template": "{nope}"}, file="p.yaml", path="dataset.params")
    with pytest.raises(ConfigError, match="split must be 1, 2 or 3"):
        from_dict(cls.Config, {"split": 4})
    with pytest.raises(ConfigError, match="either a clip fps or a frame stride"):
        from_dict(cls.Config, {"clip_fps": 8.0, "frame_stride": 2})
    with pytest.raises(ConfigError, match="real_split"):
        from_dict(cls.Config, {"real_split": "val"})


# ---- clip sampling ---------------------------------------------------------------------------------


def test_clip_sampler_rules():
    rng = np.random.default_rng(0)
    assert ClipSampler(16, "first").indices(100) == list(range(16))
    assert ClipSampler(16, "central").indices(100) == list(range(42, 58))
    assert ClipSampler(4, "central", stride=3).indices(20) == [5, 8, 11, 14]
    starts = {ClipSampler(16, "random").indices(20, rng=rng)[0] for _ in range(400)}
    assert starts == set(range(5))  # every valid start, and only those
    assert ClipSampler(4, "first", fps=10.0).indices(30, native_fps=30.0) == [0, 3, 6, 9]
    assert ClipSampler(4, "first", fps=12.5).indices(30, native_fps=25.0) == [0, 2, 4, 6]
    # 25 -> 24 fps over 16 frames is consecutive frames
    assert ClipSampler(16, "first", fps=24.0).indices(30, native_fps=25.0) == list(range(16))
    with pytest.raises(ClipTooShortError, match="v.avi: has 15 frames, fewer than the 16"):
        ClipSampler(16, "first").indices(15, name="v.avi")


@settings(max_examples=200, deadline=None)
@given(
    frames=st.integers(1, 24), stride=st.integers(1, 4), extra=st.integers(0, 40),
    start=st.sampled_from(["random", "central", "first"]), seed=st.integers(0, 2**32),
)
def test_clip_indices_stay_inside_the_video(frames, stride, extra, start, seed):
    sampler = ClipSampler(frames, start, stride)
    length = sampler.span(25.0) + extra
    idx = sampler.indices(length, 25.0, np.random.default_rng(seed))
    assert len(idx) == frames and 0 <= idx[0] and idx[-1] < length
    assert all(b - a == stride for a, b in zip(idx, idx[1:]))
    if start == "central":
        assert abs(idx[0] - (length - 1 - idx[-1])) <= 1  # as much room before as after
    with pytest.raises(ClipTooShortError):
        sampler.indices(sampler.span(25.0) - 1, 25.0, np.random.default_rng(seed))


def test_resize_video_crop_and_squash():
    video = torch.zeros(2, 240, 320, 3, dtype=torch.uint8)
    video[:, :, :30] = 255  # a white band on the left edge, cut away by a centre crop to a square
    square = resize_video(video, 120, 120, "crop")
    assert square.shape == (2, 120, 120, 3) and square.dtype == torch.uint8
    assert int(square.max()) == 0
    squashed = resize_video(video, 120, 120, "squash")
    assert squashed[:, :, 0].float().mean() == 255
    wide = resize_video(video, 288, 512, "crop")
    assert wide.shape == (2, 288, 512, 3)
    assert resize_video(video, 240, 320) is video


# ---- fixture dataset in the official layout --------------------------------------------------------

CLASSES = ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
FILE_CLASS = {"HandstandPushups": "HandStandPushups"}  # the official file-name quirk


def frame_colours(video_no: int, frames: int) -> np.ndarray:
    video = np.zeros((frames, 32, 48, 3), np.uint8)
    video[..., 0] = (np.arange(frames) * 6 + 4)[:, None, None]
    video[..., 1] = 10 + 20 * video_no
    video[..., 2] = 128
    return video


def decode_colours(clip: torch.Tensor) -> tuple[int, list[int]]:
    arr = clip.numpy().astype(float)
    video_no = round((arr[..., 1].mean() - 10) / 20)
    return video_no, [round((f[..., 0].mean() - 4) / 6) for f in arr]


@pytest.fixture(scope="module")
def ucf_root(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("ucf")
    root, splits = base / "UCF-101", base / "ucfTrainTestlist"
    splits.mkdir()
    train, test, numbers = [], [], {}
    video_no = 0
    for c, name in enumerate(CLASSES, start=1):
        (root / name).mkdir(parents=True)
        for g in (1, 2):
            for clip in (1, 2):
                fname = f"v_{FILE_CLASS.get(name, name)}_g{g:02d}_c{clip:02d}.avi"
                video_io.write_video(root / name / fname, frame_colours(video_no, 24 + 4 * video_no % 12), fps=25)
                numbers[f"{name}/{fname}"] = video_no
                video_no += 1
                (train if g == 1 else test).append((f"{name}/{fname}", c))
    crlf = "\r\n"
    (splits / "classInd.txt").write_bytes(
        crlf.join(f"{i} {n}" for i, n in enumerate(CLASSES, start=1)).encode() + crlf.encode()
    )
    (splits / "trainlist01.txt").write_bytes((crlf.join(f"{p} {c}" for p, c in train) + crlf).encode())
    (splits / "testlist01.txt").write_bytes((crlf.join(p for p, _ in test) + crlf).encode())
    return {"base": base, "root": root, "splits": splits, "numbers": numbers, "train": train, "test": test}


def fixture(ucf_root, **params) -> UCF101:
    return make({"root": str(ucf_root["base"]), "splits_dir": str(ucf_root["splits"]), **params})


def test_fixture_first_real_clips_trace_to_the_split_order(ucf_root):
    ds = fixture(ucf_root, real_selection="first", clip_start="first", real_repeat=False)
    assert ds.num_real(100) == 6
    clips = ds.real_clips(list(range(6)), base_seed=0)
    assert clips.shape == (6, 16, 32, 48, 3) and clips.dtype == torch.uint8
    traced = [decode_colours(c) for c in clips]
    assert [v for v, _ in traced] == [ucf_root["numbers"][p] for p, _ in ucf_root["train"]]
    assert all(frames == list(range(16)) for _, frames in traced)
    assert ds.skipped == []


def test_fixture_central_and_random_starts(ucf_root):
    central = fixture(ucf_root, real_selection="first", clip_start="central", frame_stride=1)
    for i, clip in enumerate(central.real_clips([0, 1, 2], 0)):
        video_no = ucf_root["numbers"][ucf_root["train"][i][0]]
        length = 24 + 4 * video_no % 12
        assert decode_colours(clip) == (video_no, list(range((length - 16) // 2, (length - 16) // 2 + 16)))
    rand = fixture(ucf_root, clip_start="random")
    a = rand.real_clips([0, 1, 2, 3, 4, 5, 6, 7], base_seed=5)
    b = rand.real_clips([7, 3], base_seed=5)  # a clip does not depend on its batch
    assert torch.equal(a[7], b[0]) and torch.equal(a[3], b[1])
    sources = [decode_colours(c)[0] for c in a[:6]]
    assert sorted(sources) == sorted(ucf_root["numbers"][p] for p, _ in ucf_root["train"])  # a permutation
    assert decode_colours(a[6])[0] == decode_colours(a[0])[0]  # index 6 goes round again (real_repeat)
    assert rand.real_sources(list(range(6)), 6) != rand.real_sources(list(range(6)), 5)  # order follows the seed
    strided = make({"root": str(ucf_root["base"]), "splits_dir": str(ucf_root["splits"]), "real_selection": "first",
                    "clip_start": "first", "frame_stride": 3}, VideoSpec(8, 32, 48, 25.0))
    assert decode_colours(strided.real_clips([5], 0)[0]) == (9, list(range(0, 24, 3)))


def test_fixture_resizes_to_the_protocol_size(ucf_root):
    ds = make({"root": str(ucf_root["base"]), "splits_dir": str(ucf_root["splits"])}, VideoSpec(16, 24, 24, 24.0))
    clips = ds.real_clips([0, 1], 0)
    assert clips.shape == (2, 16, 24, 24, 3)


def test_fixture_oracle_draws_the_prompted_class_from_the_test_split(ucf_root):
    ds = fixture(ucf_root)
    plan = ds.plan(12, 0)
    videos = ds.reference_videos([s.prompt for s in plan], [s.seed for s in plan])
    test_numbers = {ucf_root["numbers"][p]: c for p, c in ucf_root["test"]}
    for sample, clip in zip(plan, videos, strict=True):
        video_no, _ = decode_colours(clip)
        assert test_numbers[video_no] == sample.meta["class_index"]
    again = ds.reference_videos([plan[3].prompt], [plan[3].seed])
    assert torch.equal(again[0], videos[3])
    with pytest.raises(InputError, match="'a cat' is not one of the 3 class prompts"):
        ds.reference_videos(["a cat"], [0])
    assert ds.real_captions([0], 0)[0] in ds.class_prompts


def test_fixture_handstand_file_case_is_tolerated(ucf_root, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(ucf_root["base"], copy)
    folder = copy / "UCF-101" / "HandstandPushups"
    for f in folder.iterdir():  # the files renamed as several repositories patch them
        f.rename(folder / f.name.replace("HandStand", "Handstand"))
    ds = make({"root": str(copy), "splits_dir": str(copy / "ucfTrainTestlist"), "real_selection": "first",
               "clip_start": "first"})
    clips = ds.real_clips([2, 3], 0)
    assert [decode_colours(c)[0] for c in clips] == [4, 5]


def test_missing_root_and_missing_class_folder(ucf_root, tmp_path, monkeypatch):
    monkeypatch.delenv("EVALKIT_UCF101_ROOT", raising=False)
    ds = make({"splits_dir": str(ucf_root["splits"])})
    assert len(ds.plan(5, 0)) == 5  # plans need no video
    with pytest.raises(InputError, match="dataset.params.root .*EVALKIT_UCF101_ROOT"):
        ds.real_clips([0], 0)
    (tmp_path / "UCF-101" / "ApplyEyeMakeup").mkdir(parents=True)
    (tmp_path / "UCF-101" / "YoYo").mkdir()
    monkeypatch.setenv("EVALKIT_UCF101_ROOT", str(tmp_path))
    with pytest.raises(InputError) as err:
        make({"splits_dir": str(ucf_root["splits"])}).real_clips([0], 0)
    message = str(err.value)
    assert "UCF-101: 1 of the 3 class folders" in message and "HandstandPushups" in message
    assert "classInd.txt" in message


def test_split_file_naming_an_absent_video(ucf_root, tmp_path):
    splits = tmp_path / "lists"
    splits.mkdir()
    for f in ucf_root["splits"].iterdir():
        (splits / f.name).write_bytes(f.read_bytes())
    extra = b"YoYo/v_YoYo_g09_c01.avi 3\r\n"
    (splits / "trainlist01.txt").write_bytes((splits / "trainlist01.txt").read_bytes() + extra)
    params = {"root": str(ucf_root["base"]), "splits_dir": str(splits), "real_selection": "first"}
    with pytest.raises(InputError) as err:
        make(params).real_clips([0], 0)
    assert f"{splits / 'trainlist01.txt'}:7: YoYo/v_YoYo_g09_c01.avi" in str(err.value)
    ds = make({**params, "skip_unreadable": True, "real_repeat": False})
    assert ds.real_clips([0, 1, 2, 3, 4, 5], 0).shape[0] == 6
    assert len(ds.skipped) == 1 and "trainlist01.txt:7" in ds.skipped[0]


def test_split_file_errors_name_file_and_line(ucf_root, tmp_path):
    splits = tmp_path / "lists"
    splits.mkdir()
    (splits / "classInd.txt").write_bytes((ucf_root["splits"] / "classInd.txt").read_bytes())
    (splits / "trainlist01.txt").write_bytes(b"YoYo/v_YoYo_g01_c01.avi 3\r\nYoYo/v_YoYo_g01_c02.avi 2\r\n")
    with pytest.raises(InputError, match=r"trainlist01\.txt:2: label 2 does not match class YoYo \(index 3\)"):
        make({"splits_dir": str(splits), "class_frequencies": "train"}).plan(3, 0)
    (splits / "trainlist01.txt").write_bytes(b"Juggling/v_Juggling_g01_c01.avi 3\r\n")
    with pytest.raises(InputError, match=r"trainlist01\.txt:1: class folder 'Juggling' is not in classInd"):
        make({"splits_dir": str(splits), "class_frequencies": "train"}).plan(3, 0)
    (splits / "classInd.txt").write_bytes(b"1 A\r\n3 B\r\n")
    with pytest.raises(InputError, match=r"classInd\.txt:2: expected class index 2, got 3"):
        read_class_index(splits / "classInd.txt")


def test_truncated_video_is_an_error_or_a_recorded_skip(ucf_root, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(ucf_root["base"], copy)
    target = copy / "UCF-101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi"
    noisy = np.random.default_rng(0).integers(0, 256, (40, 32, 48, 3), dtype=np.uint8)
    video_io.write_video(target, noisy, fps=25)
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 3])
    params = {"root": str(copy), "splits_dir": str(copy / "ucfTrainTestlist"), "real_selection": "first",
              "clip_start": "central"}
    with pytest.raises(InputError) as err:
        make(params).real_clips([0], 0)
    assert str(target) in str(err.value) and "truncated" in str(err.value)
    ds = make({**params, "skip_unreadable": True})
    clip = ds.real_clips([0], 0)[0]
    assert decode_colours(clip)[0] == ucf_root["numbers"]["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi"]
    assert len(ds.skipped) == 1 and ds.skipped[0].startswith(str(target))


# ---- shipped protocol files ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ucf101-zeroshot/snapvideo", "ucf101-zeroshot/videopoet", "ucf101-zeroshot/classname"])
def test_shipped_protocols_build_their_plans(name):
    from evalkit.protocols import load_protocol
    from evalkit.registry import METRICS

    proto = load_protocol(name)
    assert proto.name == name and proto.sources and proto.dataset.kind == "ucf101"
    assert all(m in METRICS for m in proto.metrics)
    cls = DATASETS.get("ucf101")
    ds = cls(from_dict(cls.Config, proto.dataset.params), proto.video.spec())
    plan = ds.plan(proto.num_samples, proto.seed)
    assert len(plan) == proto.num_samples
    assert ds.num_real(proto.num_real) == proto.num_real
    labels = collections.Counter(s.label for s in plan)
    if name.endswith("classname"):
        assert set(labels.values()) == {100} and plan[0].prompt == human_name(plan[0].label)
    else:
        assert len(labels) == 101 and plan[0].prompt in ds.class_prompts


def test_snapvideo_protocol_settings():
    from evalkit.protocols import load_protocol

    proto = load_protocol("ucf101-zeroshot/snapvideo")
    assert (proto.num_samples, proto.video.frames, proto.video.fps) == (10000, 16, 24.0)
    assert proto.metrics == ["fvd:styleganv", "is:c3d-styleganv"]
    assert [288, 288] in proto.eval_resolutions
    assert proto.dataset.params["class_frequencies"] == "train+test"
