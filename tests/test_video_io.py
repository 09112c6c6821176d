"""Video I/O on real files written with PyAV (mp4/libx264, avi/mpeg4 with the XVID tag, as UCF-101)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from evalkit import video_io
from evalkit.errors import InputError


def ramp_video(frames: int, height: int = 32, width: int = 64) -> np.ndarray:
    """Frame t is a flat grey of level 8 * t: its index can be read back from a lossy file."""
    levels = (np.arange(frames) * 8 + 4).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (frames, height, width, 3)).copy()


def levels_of(video: np.ndarray) -> list[int]:
    return [int(round((float(frame.mean()) - 4) / 8)) for frame in video]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    video = ramp_video(30)
    mp4 = video_io.write_video(root / "a.mp4", video, fps=24)
    avi = video_io.write_video(root / "b.avi", video, fps=25)
    return {"mp4": mp4, "avi": avi, "root": root}


@pytest.mark.parametrize("kind", ["mp4", "avi"])
def test_video_info(clips, kind):
    info = video_io.video_info(clips[kind])
    assert (info.frames, info.height, info.width) == (30, 32, 64)
    assert info.fps == pytest.approx(24.0 if kind == "mp4" else 25.0)
    assert video_io.video_info(clips[kind], exact=True).frames == 30


@pytest.mark.parametrize("kind", ["mp4", "avi"])
@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_exact_frame_indexing(clips, kind, backend):
    full = video_io.read_video(clips[kind], backend=backend)
    assert full.dtype == np.uint8 and full.shape == (30, 32, 64, 3)
    assert levels_of(full) == list(range(30))
    part = video_io.read_video(clips[kind], 5, start=7, stride=3, backend=backend)
    assert levels_of(part) == [7, 10, 13, 16, 19]
    np.testing.assert_array_equal(part, full[7:22:3])
    picked = video_io.read_video(clips[kind], indices=[29, 0, 0, 12], backend=backend)
    assert levels_of(picked) == [29, 0, 0, 12]
    assert levels_of(video_io.read_video(clips[kind], start=25, backend=backend)) == [25, 26, 27, 28, 29]


def test_pyav_and_decord_agree_bit_for_bit(clips):
    for kind in ("mp4", "avi"):
        a = video_io.read_video(clips[kind], 16, start=3)
        b = video_io.read_video(clips[kind], 16, start=3, backend="decord")
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_asking_past_the_end_names_file_frame_and_count(clips, backend):
    with pytest.raises(InputError) as err:
        video_io.read_video(clips["mp4"], 16, start=20, backend=backend)
    message = str(err.value)
    assert str(clips["mp4"]) in message and "frame 30" in message and "only 30" in message


def test_truncated_avi_is_an_error_not_a_short_clip(tmp_path):
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, size=(60, 64, 64, 3), dtype=np.uint8)
    whole = video_io.write_video(tmp_path / "whole.avi", noisy, fps=25)
    data = whole.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    # The AVI header still claims 60 frames: the damage shows only when decoding.
    assert video_io.video_info(cut).frames == 60
    with pytest.raises(InputError) as err:
        video_io.read_video(cut, 16, start=40)
    message = str(err.value)
    assert str(cut) in message and "frame 40" in message and "truncated" in message
    exact = video_io.video_info(cut, exact=True).frames
    assert 0 < exact < 60
    assert f"only {exact} decodable frames" in message


def test_unreadable_and_missing_files(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 20)
    with pytest.raises(InputError, match=r"junk\.mp4.*cannot open.*frames 0\.\.15"):
        video_io.read_video(junk, 16)
    with pytest.raises(InputError, match=r"nope\.avi: video file not found"):
        video_io.video_info(tmp_path / "nope.avi")
    with pytest.raises(InputError, match="stride must be >= 1"):
        video_io.read_video(junk, 4, stride=0)
    with pytest.raises(InputError, match="unknown video backend"):
        video_io.read_video(junk, 4, backend="opencv")  # type: ignore[arg-type]


def test_write_video_pads_odd_sizes_and_checks_input(tmp_path):
    path = video_io.write_video(tmp_path / "odd.mp4", ramp_video(4, 33, 47), fps=8)
    info = video_io.video_info(path)
    assert (info.frames, info.height, info.width, info.fps) == (4, 34, 48, 8.0)
    with pytest.raises(InputError, match="expected a uint8 video"):
        video_io.write_video(tmp_path / "f.mp4", np.zeros((2, 8, 8, 3), np.float32), fps=8)
    assert video_io.encoder_for_mp4() in ("libx264", "mpeg4")


def write_frames(folder, video, names):
    folder.mkdir(parents=True)
    for frame, name in zip(video, names, strict=True):
        Image.fromarray(frame).save(folder / name)


def test_frame_folder_is_lexicographic(tmp_path):
    video = ramp_video(12)
    # Shuffled creation order, zero-padded names: lexicographic order is the frame order.
    names = [f"{i:05d}.png" for i in range(12)]
    order = np.random.default_rng(1).permutation(12)
    write_frames(tmp_path / "v", video[order], [names[i] for i in order])
    (tmp_path / "v" / "notes.txt").write_text("not a frame")
    np.testing.assert_array_equal(video_io.read_frame_folder(tmp_path / "v"), video)
    np.testing.assert_array_equal(video_io.read_frame_folder(tmp_path / "v", 3, start=2, stride=4), video[2:11:4])
    assert video_io.frame_folder_length(tmp_path / "v") == 12 and video_io.is_frame_folder(tmp_path / "v")
    # Unpadded names sort as StyleGAN-V sorts them: "10.png" before "2.png".
    write_frames(tmp_path / "u", video[:11], [f"{i}.png" for i in range(11)])
    got = video_io.read_frame_folder(tmp_path / "u")
    assert levels_of(got) == [0, 1, 10, 2, 3, 4, 5, 6, 7, 8, 9]


def test_frame_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files"):
        video_io.read_frame_folder(tmp_path / "empty")
    write_frames(tmp_path / "mixed", [ramp_video(1)[0], ramp_video(1, 16, 16)[0]], ["0.png", "1.png"])
    with pytest.raises(InputError, match=r"1\.png: frame size 16x16 differs from 64x32"):
        video_io.read_frame_folder(tmp_path / "mixed")
    with pytest.raises(InputError, match=r"mixed: asked for frame 4 \(frames 4\.\.5, 2 frames\) but the folder has only 2 frame images"):
        video_io.read_frame_folder(tmp_path / "mixed", 2, start=4)


def test_load_array(tmp_path):
    videos = np.stack([ramp_video(4, 8, 8)] * 3)
    np.save(tmp_path / "v.npy", videos)
    np.savez(tmp_path / "v.npz", fake=videos)
    np.savez(tmp_path / "two.npz", a=videos, b=videos)
    np.testing.assert_array_equal(video_io.load_array(tmp_path / "v.npy"), videos)
    np.testing.assert_array_equal(video_io.load_array(tmp_path / "v.npz"), videos)
    np.testing.assert_array_equal(video_io.load_array(tmp_path / "two.npz", key="b"), videos)
    with pytest.raises(InputError, match=r"two\.npz: the \.npz file holds 2 arrays \(a, b\)"):
        video_io.load_array(tmp_path / "two.npz")
    np.save(tmp_path / "float.npy", videos.astype(np.float32))
    with pytest.raises(InputError, match=r"float\.npy: expected dtype uint8"):
        video_io.load_array(tmp_path / "float.npy")
    np.save(tmp_path / "four.npy", videos[0])
    with pytest.raises(InputError, match=r"four\.npy: expected shape \(N, T, H, W, 3\), got \(4, 8, 8, 3\)"):
        video_io.load_array(tmp_path / "four.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=r"obj\.npy: not a plain numeric array"):
        video_io.load_array(tmp_path / "obj.npy")


def test_list_videos_sorted_and_filtered(tmp_path):
    for name in ["b.mp4", "a.AVI", "c.webm", "d.mkv", "e.txt", "f.png"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "z.mp4").write_bytes(b"")
    assert [p.name for p in video_io.list_videos(tmp_path)] == ["a.AVI", "b.mp4", "c.webm", "d.mkv"]
    assert [p.relative_to(tmp_path).as_posix() for p in video_io.list_videos(tmp_path, recursive=True)][-1] == (
        "sub/z.mp4"
    )
    with pytest.raises(InputError, match="video folder not found"):
        video_io.list_videos(tmp_path / "missing")


def test_iter_videos_keeps_order_and_decodes_ahead(clips):
    paths = [clips["mp4"], clips["avi"]] * 3
    got = list(video_io.iter_videos(paths, frames=2, start=5, workers=2))
    assert [p for p, _ in got] == paths
    assert all(levels_of(v) == [5, 6] for _, v in got)

    started: list[int] = []
    lock = threading.Lock()

    def slow_loader(i: int) -> np.ndarray:
        with lock:
            started.append(i)
        time.sleep(0.05)
        return np.full((1, 1, 1, 3), i, np.uint8)

    stream = video_io.iter_videos(range(8), loader=slow_loader, workers=2, prefetch=3)
    first = next(stream)
    assert first[0] == 0
    with lock:
        assert len(started) >= 3  # later items were submitted before the first was consumed
        assert len(started) <= 4  # but no more than the prefetch bound (+ the one yielded)
    assert [i for i, _ in stream] == list(range(1, 8))


def test_iter_videos_raises_at_the_failing_item(clips, tmp_path):
    paths = [clips["mp4"], tmp_path / "missing.mp4"]
    stream = video_io.iter_videos(paths, frames=2)
    assert next(stream)[0] == clips["mp4"]
    with pytest.raises(InputError, match="missing.mp4"):
        next(stream)
