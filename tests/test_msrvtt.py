"""MSR-VTT: plans on annotation files with the official JSON structure, clips from real mp4 files."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from evalkit import video_io
from evalkit.config import from_dict
from evalkit.datasets.msrvtt import MSRVTT, check_video_id, load_annotations, read_split_csv
from evalkit.errors import ConfigError, InputError
from evalkit.registry import DATASETS
from evalkit.seeding import sample_seed
from evalkit.video import VideoSpec


def make(params: dict, spec: VideoSpec | None = None) -> MSRVTT:
    cls = DATASETS.get("msrvtt")
    return cls(from_dict(cls.Config, params), spec or VideoSpec(8, 32, 48, 30.0))


def official_json(video_numbers, captions_per_video=20, split_of=None, first_sen_id=0) -> dict:
    """The layout of train_val_videodatainfo.json / test_videodatainfo.json (field names with spaces)."""
    videos, sentences = [], []
    sen_id = first_sen_id
    for n in video_numbers:
        split = split_of(n) if split_of else ("train" if n < 6513 else "validate" if n < 7010 else "test")
        videos.append({"category": n % 20, "url": f"https://www.youtube.com/watch?v=x{n}", "video_id": f"video{n}",
                       "start time": 1.0, "end time": 11.5, "split": split, "id": n})
        for k in range(captions_per_video):
            sentences.append({"caption": f"clip {n} caption {k}", "video_id": f"video{n}", "sen_id": sen_id})
            sen_id += 1
    info = {"contributor": "Microsoft MSM group", "data_created": "2016-04-14 14:30:20", "version": "1.0",
            "description": "This is 1.0 version of the 2016 MSR-VTT dataset.", "year": "2016"}
    return {"info": info, "videos": videos, "sentences": sentences}


@pytest.fixture(scope="module")
def test_json(tmp_path_factory) -> Path:
    """The official test split: video7010..video9999, 20 captions each, sen_id from 140200."""
    path = tmp_path_factory.mktemp("msrvtt") / "test_videodatainfo.json"
    data = official_json(range(7010, 10000), first_sen_id=140200)
    # the official file is not sorted by sen_id: shuffle to check the plan's order does not depend on it
    order = np.random.default_rng(0).permutation(len(data["sentences"]))
    data["sentences"] = [data["sentences"][i] for i in order]
    path.write_text(json.dumps(data))
    return path


def test_all_captions_plan_is_exactly_the_59800_test_captions(test_json):
    ds = make({"annotations": str(test_json)})
    assert len(ds.video_ids) == 2990 and ds.caption_count() == 59800
    plan = ds.plan(59800, base_seed=0)
    assert len(plan) == 59800
    assert [s.index for s in plan] == list(range(59800))
    pairs = [(s.meta["video_id"], s.meta["sen_id"]) for s in plan]
    assert len(set(pairs)) == 59800  # every caption exactly once
    assert pairs[0] == ("video7010", 140200) and pairs[-1] == ("video9999", 199999)
    assert [p for _, p in pairs] == list(range(140200, 200000))  # video id order, then sen_id order
    assert collections.Counter(v for v, _ in pairs) == {f"video{n}": 20 for n in range(7010, 10000)}
    assert all(s.prompt == f"clip {s.meta['video_id'][5:]} caption {(s.meta['sen_id'] - 140200) % 20}" for s in plan)
    assert [s.seed for s in plan[:5]] == [sample_seed(0, i) for i in range(5)]


def test_one_caption_per_video_and_subsets(test_json):
    ds = make({"annotations": str(test_json), "captions": "one-per-video"})
    plan = ds.plan(2990, base_seed=1)
    assert [s.label for s in plan] == [f"video{n}" for n in range(7010, 10000)]
    ks = [(s.meta["sen_id"] - 140200) % 20 for s in plan]
    assert len(set(ks)) == 20  # captions are drawn, not always the first
    assert plan == ds.plan(2990, base_seed=1) and plan != ds.plan(2990, base_seed=2)
    # fewer samples than captions: a seeded subset in caption order, or the first ones
    subset = make({"annotations": str(test_json)}).plan(100, base_seed=3)
    ids = [s.meta["sen_id"] for s in subset]
    assert ids == sorted(ids) and len(set(ids)) == 100 and ids != list(range(140200, 140300))
    first = make({"annotations": str(test_json), "caption_subset": "first"}).plan(100, 3)
    assert [s.meta["sen_id"] for s in first] == list(range(140200, 140300))


def test_train_val_file_without_test_split_and_merged_file(tmp_path):
    merged = official_json([0, 1, 6513, 7010, 7011, 9999], captions_per_video=2)
    for v in merged["videos"]:  # files such as MSRVTT_data.json may lack the split field: the id range decides
        del v["split"]
    (tmp_path / "MSRVTT_data.json").write_text(json.dumps(merged))
    ds = make({"root": str(tmp_path)})
    assert ds.video_ids == ["video7010", "video7011", "video9999"]
    assert len(ds.plan(6, 0)) == 6


def test_malformed_json_names_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"videos": [\n  {"video_id": "video7010",}\n]}')
    with pytest.raises(InputError, match=r"bad\.json:2:28: not valid JSON"):
        load_annotations(bad)
    bad.write_text(json.dumps({"videos": []}))
    with pytest.raises(InputError, match=r"bad\.json: top-level field 'sentences' missing"):
        load_annotations(bad)
    data = official_json([7010, 7011], captions_per_video=1)
    data["sentences"][1]["caption"] = 7
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"bad\.json: sentences\[1\]\.caption: expected a string, got 7"):
        load_annotations(bad)
    del data["sentences"][0]["sen_id"]
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"bad\.json: sentences\[0\]\.sen_id: field missing"):
        load_annotations(bad)


def test_caption_of_an_absent_video_names_file_and_field(tmp_path):
    data = official_json([7010, 7011], captions_per_video=2)
    data["sentences"][3]["video_id"] = "video8000"
    path = tmp_path / "test_videodatainfo.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as err:
        make({"annotations": str(path)}).plan(4, 0)
    assert str(err.value) == (
        f"{path}: sentences[3].video_id: 'video8000' is not among the 2 entries of 'videos'"
    )


def test_video_ids_are_checked_before_touching_paths(tmp_path):
    data = official_json([7010], captions_per_video=1)
    data["videos"][0]["video_id"] = "../../etc/passwd"
    path = tmp_path / "a.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"a\.json: videos\[0\]\.video_id: expected a video id like 'video7010'"):
        load_annotations(path)
    for bad in ["video7010/../x", "video", "video-1", "Video1", "video01", "video1.mp4", 7010]:
        with pytest.raises(InputError):
            check_video_id(bad, "x")
    assert check_video_id("video0", "x") == "video0"


def test_jsfusion_csv(tmp_path, test_json):
    csv_path = tmp_path / "MSRVTT_JSFUSION_test.csv"
    csv_path.write_text("key,vid_key,video_id,sentence\nret0,msr9770,video9770,a person is connecting something\n"
                        "ret1,msr7020,video7020,a little girl does gymnastics\n")
    assert read_split_csv(csv_path) == [("video9770", "a person is connecting something"),
                                        ("video7020", "a little girl does gymnastics")]
    ds = make({"annotations": str(test_json), "split": "1k-A", "split_csv": str(csv_path), "captions": "csv"})
    assert ds.video_ids == ["video7020", "video9770"]
    assert [s.prompt for s in ds.plan(2, 0)] == ["a person is connecting something", "a little girl does gymnastics"]
    assert len(make({"annotations": str(test_json), "split": "1k-A", "split_csv": str(csv_path)}).plan(40, 0)) == 40
    csv_path.write_text("key,vid_key,video_id,sentence\nret0,msr1,../video1,x\n")
    with pytest.raises(InputError, match=r"MSRVTT_JSFUSION_test\.csv:2: video_id"):
        read_split_csv(csv_path)
    with pytest.raises(ConfigError, match="needs split_csv"):
        from_dict(DATASETS.get("msrvtt").Config, {"split": "1k-A"})


def test_missing_annotations_say_what_to_set(tmp_path, monkeypatch):
    monkeypatch.delenv("EVALKIT_MSRVTT_ROOT", raising=False)
    with pytest.raises(InputError, match="set dataset.params.annotations"):
        make({}).plan(1, 0)


# ---- real clips from mp4 files ----------------------------------------------------------------------


def coloured(video_no: int, frames: int) -> np.ndarray:
    video = np.zeros((frames, 32, 48, 3), np.uint8)
    video[..., 0] = (np.arange(frames) * 6 + 4)[:, None, None]
    video[..., 1] = 10 + 20 * video_no
    return video


def trace(clip: torch.Tensor) -> tuple[int, list[int]]:
    arr = clip.numpy().astype(float)
    return round((arr[..., 1].mean() - 10) / 20), [round((f[..., 0].mean() - 4) / 6) for f in arr]


@pytest.fixture(scope="module")
def small_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("msrvtt_small")
    (root / "TestVideo").mkdir()
    numbers = [7010, 7011, 7012, 7013]
    for k, n in enumerate(numbers):
        video_io.write_video(root / "TestVideo" / f"video{n}.mp4", coloured(k, 20 + 2 * k), fps=30)
    data = official_json([6000] + numbers, captions_per_video=3, first_sen_id=140200)
    (root / "test_videodatainfo.json").write_text(json.dumps(data))
    return root


def test_real_clips_central_frames_in_id_order(small_root):
    ds = make({"root": str(small_root)})
    assert ds.num_real(2048) == 4
    clips = ds.real_clips([0, 1, 2, 3], base_seed=0)
    assert clips.shape == (4, 8, 32, 48, 3)
    for k, clip in enumerate(clips):
        length = 20 + 2 * k
        start = (length - 8) // 2
        assert trace(clip) == (k, list(range(start, start + 8)))
    with pytest.raises(InputError, match="outside the real set of 4 videos"):
        ds.real_clips([4], 0)
    captions = ds.real_captions([0, 1], 0)
    assert captions[0].startswith("clip 7010 caption") and captions[1].startswith("clip 7011 caption")


def test_real_clips_random_and_resampled(small_root):
    ds = make({"root": str(small_root), "clip_start": "random", "real_selection": "random", "real_repeat": True})
    a = ds.real_clips(list(range(8)), base_seed=4)
    b = ds.real_clips([6, 2], base_seed=4)
    assert torch.equal(a[6], b[0]) and torch.equal(a[2], b[1])
    assert sorted(trace(c)[0] for c in a[:4]) == [0, 1, 2, 3]
    slow = make({"root": str(small_root), "clip_start": "first", "clip_fps": 10.0}, VideoSpec(4, 32, 48, 10.0))
    assert trace(slow.real_clips([3], 0)[0]) == (3, [0, 3, 6, 9])


def test_oracle_returns_the_captioned_video(small_root):
    ds = make({"root": str(small_root)})
    plan = ds.plan(12, 0)
    videos = ds.reference_videos([s.prompt for s in plan], [s.seed for s in plan])
    assert [trace(v)[0] for v in videos] == [int(s.label[5:]) - 7010 for s in plan]
    with pytest.raises(InputError, match="not a caption of an available test video"):
        ds.reference_videos(["clip 6000 caption 0"], [0])


def test_missing_video_is_an_error_or_a_recorded_skip(small_root, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(small_root, root)
    (root / "TestVideo" / "video7012.mp4").unlink()
    with pytest.raises(InputError) as err:
        make({"root": str(root)}).real_clips([0], 0)
    assert "test_videodatainfo.json" in str(err.value) and "video7012" in str(err.value)
    ds = make({"root": str(root), "skip_unreadable": True})
    # the real set keeps its size: positions past the end go round to the first videos again
    assert ds.num_real(10) == 4
    assert [trace(c)[0] for c in ds.real_clips([0, 1, 2, 3], 0)] == [0, 1, 3, 0]
    assert len(ds.skipped) == 1 and "video7012" in ds.skipped[0]


def test_truncated_video_is_an_error_or_a_recorded_skip(small_root, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(small_root, root)
    target = root / "TestVideo" / "video7011.mp4"
    target.write_bytes(target.read_bytes()[:300])
    with pytest.raises(InputError, match=r"video7011\.mp4: cannot open the file: damaged, truncated or not a video"):
        make({"root": str(root)}).real_clips([1], 0)
    ds = make({"root": str(root), "skip_unreadable": True})
    assert trace(ds.real_clips([1], 0)[0])[0] == 2  # the next video stands in, and the skip is listed
    assert len(ds.skipped) == 1 and ds.skipped[0].startswith(str(target))


@pytest.mark.parametrize("name, n", [("msrvtt-zeroshot/snapvideo", 59800), ("msrvtt-zeroshot/one-caption", 2990)])
def test_shipped_protocols_build_their_plans(name, n, test_json):
    from evalkit.protocols import load_protocol
    from evalkit.registry import METRICS

    proto = load_protocol(name, [f"dataset.params.annotations={test_json}"])
    assert proto.num_samples == n and proto.sources and all(m in METRICS for m in proto.metrics)
    ds = make(proto.dataset.params, proto.video.spec())
    plan = ds.plan(proto.num_samples, proto.seed)
    assert len(plan) == n
    assert len({s.label for s in plan}) == 2990
    if n == 59800:
        assert len({s.meta["sen_id"] for s in plan}) == 59800
        assert proto.metrics == ["clipsim:vit-b-32", "clip-fid", "fvd:styleganv"]
