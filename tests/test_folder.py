"""The ``folder`` dataset: videos, frame folders or arrays as the real set, prompts from a file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from evalkit import video_io
from evalkit.config import from_dict
from evalkit.datasets.folder import FolderDataset, read_prompts
from evalkit.errors import ConfigError, InputError
from evalkit.registry import DATASETS
from evalkit.seeding import sample_seed
from evalkit.video import VideoSpec


def make(params: dict, spec: VideoSpec | None = None) -> FolderDataset:
    cls = DATASETS.get("folder")
    return cls(from_dict(cls.Config, params), spec or VideoSpec(6, 32, 48, 24.0))


def coloured(video_no: int, frames: int) -> np.ndarray:
    video = np.zeros((frames, 32, 48, 3), np.uint8)
    video[..., 0] = (np.arange(frames) * 6 + 4)[:, None, None]
    video[..., 1] = 10 + 20 * video_no
    return video


def trace(clip: torch.Tensor) -> tuple[int, list[int]]:
    arr = clip.numpy().astype(float)
    return round((arr[..., 1].mean() - 10) / 20), [round((f[..., 0].mean() - 4) / 6) for f in arr]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """b.mp4 (video 1), a.avi (video 0), c/ frame folder (video 2): sorted order a.avi, b.mp4, c."""
    root = tmp_path_factory.mktemp("folder")
    video_io.write_video(root / "a.avi", coloured(0, 12), fps=24)
    video_io.write_video(root / "b.mp4", coloured(1, 10), fps=24)
    (root / "c").mkdir()
    for t, frame in enumerate(coloured(2, 8)):
        Image.fromarray(frame).save(root / "c" / f"{t:04d}.png")
    (root / "notes.txt").write_text("not a video")
    (root / "prompts.tsv").write_text("prompt\tvideo\na red ball\ta.avi\na blue cube\tb\na green cone\tc\n")
    return root


def test_items_in_stylegan_v_order_and_first_frames(mixed):
    ds = make({"root": str(mixed), "clip_start": "first"})
    assert [p.name for p in ds.items] == ["a.avi", "b.mp4", "c"]
    assert ds.num_real(2048) == 3
    clips = ds.real_clips([0, 1, 2], 0)
    assert [trace(c) for c in clips] == [(k, list(range(6))) for k in range(3)]


def test_random_starts_are_seeded_per_index(mixed):
    ds = make({"root": str(mixed), "real_repeat": True})
    a = ds.real_clips([0, 1, 2, 3, 4, 5], 9)
    assert torch.equal(a[4], ds.real_clips([4], 9)[0])
    assert trace(a[3])[0] == 0 and trace(a[5])[0] == 2
    for clip in a:
        video_no, frames = trace(clip)
        assert frames == list(range(frames[0], frames[0] + 6))
        assert 0 <= frames[0] <= {0: 6, 1: 4, 2: 2}[video_no]


def test_plan_from_the_prompts_file(mixed):
    ds = make({"root": str(mixed)})
    plan = ds.plan(5, 2)
    assert [s.prompt for s in plan] == ["a red ball", "a blue cube", "a green cone", "a red ball", "a blue cube"]
    assert [s.seed for s in plan] == [sample_seed(2, i) for i in range(5)]
    drawn = make({"root": str(mixed), "prompt_order": "random"}).plan(60, 2)
    assert {s.prompt for s in drawn} == {"a red ball", "a blue cube", "a green cone"}
    assert drawn == make({"root": str(mixed), "prompt_order": "random"}).plan(60, 2)


def test_oracle_and_real_captions_follow_the_video_column(mixed):
    ds = make({"root": str(mixed)})
    videos = ds.reference_videos(["a green cone", "a red ball"], [1, 2])
    assert [trace(v)[0] for v in videos] == [2, 0]
    assert ds.real_captions([0, 1, 2], 0) == ["a red ball", "a blue cube", "a green cone"]
    with pytest.raises(InputError, match="paired with no video"):
        ds.reference_videos(["a cat"], [0])


def test_array_as_the_real_set(tmp_path):
    videos = np.stack([coloured(k, 10) for k in range(4)])
    np.save(tmp_path / "real.npy", videos)
    (tmp_path / "p.txt").write_text("one\r\ntwo\r\n\r\n")
    ds = make({"root": str(tmp_path / "real.npy"), "prompts_file": str(tmp_path / "p.txt"), "clip_start": "central",
               "real_selection": "random"})
    assert [s.prompt for s in ds.plan(3, 0)] == ["one", "two", "one"]
    clips = ds.real_clips([0, 1, 2, 3], 0)
    assert sorted(trace(c)[0] for c in clips) == [0, 1, 2, 3]
    assert all(trace(c)[1] == [2, 3, 4, 5, 6, 7] for c in clips)  # exact: no codec in between
    expected = torch.from_numpy(videos[trace(clips[0])[0], 2:8])
    assert torch.equal(clips[0], expected)


def test_prompt_file_formats_and_errors(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps(["a", {"prompt": "b", "video": "x.mp4"}]))
    assert [(e.prompt, e.video) for e in read_prompts(tmp_path / "p.json")] == [("a", None), ("b", "x.mp4")]
    (tmp_path / "p.csv").write_text("video,prompt\nx.mp4,a cat\n")
    assert [(e.prompt, e.video) for e in read_prompts(tmp_path / "p.csv")] == [("a cat", "x.mp4")]
    (tmp_path / "bad.csv").write_text("text\nhello\n")
    with pytest.raises(InputError, match=r"bad\.csv:1: expected a header with a 'prompt' column"):
        read_prompts(tmp_path / "bad.csv")
    (tmp_path / "bad.json").write_text(json.dumps(["a", {"video": "x"}]))
    with pytest.raises(InputError, match=r"bad\.json: \[1\]: expected a prompt string"):
        read_prompts(tmp_path / "bad.json")
    (tmp_path / "empty.tsv").write_text("prompt\tvideo\n\tx\n")
    with pytest.raises(InputError, match=r"empty\.tsv:2: empty prompt"):
        read_prompts(tmp_path / "empty.tsv")


def test_folder_errors(tmp_path, mixed):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "prompts.txt").write_text("x\n")
    with pytest.raises(InputError, match="no videos .* and no frame folders"):
        make({"root": str(tmp_path / "empty")}).real_clips([0], 0)
    with pytest.raises(InputError, match="no prompts for the generated set"):
        make({"root": str(tmp_path / "nowhere")}).plan(1, 0)
    (tmp_path / "p.tsv").write_text("prompt\tvideo\na\tmissing.mp4\n")
    with pytest.raises(InputError, match=r"p\.tsv:2: video 'missing.mp4' is not in"):
        make({"root": str(mixed), "prompts_file": str(tmp_path / "p.tsv")}).reference_videos(["a"], [0])
    with pytest.raises(ConfigError, match="missing required field 'root'"):
        from_dict(DATASETS.get("folder").Config, {})


def test_unreadable_video_error_or_skip(tmp_path, mixed):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(mixed, root)
    (root / "b.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match=r"b\.mp4: cannot open the file"):
        make({"root": str(root), "clip_start": "first"}).real_clips([1], 0)
    ds = make({"root": str(root), "clip_start": "first", "skip_unreadable": True})
    assert trace(ds.real_clips([1], 0)[0])[0] == 2
    assert len(ds.skipped) == 1 and ds.skipped[0].startswith(str(root / "b.mp4"))
    short = make({"root": str(mixed), "clip_start": "first"}, VideoSpec(11, 32, 48, 24.0))
    with pytest.raises(InputError, match=r"b\.mp4: has 10 frames, fewer than the 11"):
        short.real_clips([1], 0)
