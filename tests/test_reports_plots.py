"""Speed-vs-quality plots, per-label breakdowns and sample grids (PNG files)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from evalkit.errors import EvalkitError, InputError
from evalkit.reports.breakdown import breakdowns, label_breakdown
from evalkit.reports.features import load_fake_features, load_plan
from evalkit.reports.grids import frame_strip, sample_grid
from evalkit.reports.load import load_run
from evalkit.reports.plots import breakdown_plots, speed_quality_plots, speed_quality_points
from evalkit.reports.testing import use_test_metrics, write_example_run

P = "ucf101-zeroshot/test"


def test_speed_points_follow_the_sweep(tmp_path):
    write_example_run(tmp_path / "run", steps=(16, 8))
    points = speed_quality_points(load_run(tmp_path / "run").results)
    fit = points[(points["family"] == "fit") & (points["metric"] == "fvd")].sort_values("sweep_value")
    assert list(fit["setting"]) == ["steps=8", "steps=16"]
    assert list(fit["nfe_per_video"]) == [16, 32]
    paths = speed_quality_plots(load_run(tmp_path / "run").results, tmp_path / "img")
    assert {p.name for p in paths} == {"speed-ucf101-zeroshot__test-fvd-test.png",
                                       "speed-ucf101-zeroshot__test-clipsim-test.png"}
    with Image.open(paths[0]) as img:
        assert img.format == "PNG" and img.width > 600  # two panels: seconds and NFE


def test_per_label_values_match_numpy(tmp_path, monkeypatch):
    use_test_metrics(monkeypatch)
    write_example_run(tmp_path, steps=(8,))
    part = label_breakdown(str(tmp_path), "fit[steps=8]", P, "clipsim:test").set_index("label")
    scores = load_fake_features(tmp_path, "fit[steps=8]", P, "score")[:, 0]
    labels = np.array([s["label"] for s in load_plan(tmp_path, P)])
    for label in ("ApplyEyeMakeup", "Biking", "Diving"):
        assert part.loc[label, "value"] == pytest.approx(scores[labels == label].mean(), rel=1e-6)
        assert part.loc[label, "n"] == (labels == label).sum()
    with pytest.raises(EvalkitError, match="real set"):
        label_breakdown(str(tmp_path), "fit[steps=8]", P, "fvd:test")


def test_breakdown_plot(tmp_path, monkeypatch):
    use_test_metrics(monkeypatch)
    write_example_run(tmp_path / "run", steps=(8, 16))
    frame = load_run(tmp_path / "run").results
    table, messages = breakdowns(frame)
    assert set(table["generator"]) == {"fit[steps=8]", "fit[steps=16]"} and not messages
    paths = breakdown_plots(table, frame, tmp_path / "img")
    assert len(paths) == 1 and paths[0].stat().st_size > 1000


def test_frame_strip_picks_evenly_spaced_frames():
    video = np.zeros((9, 4, 5, 3), np.uint8)
    for t in range(9):
        video[t] = t * 10
    strip = frame_strip(video, 3, gap=1)
    assert strip.shape == (4, 3 * 5 + 2, 3)
    assert [strip[0, x, 0] for x in (0, 6, 12)] == [0, 40, 80]
    assert (strip[:, 5] == 255).all()
    with pytest.raises(InputError, match="uint8"):
        frame_strip(video.astype(np.float32), 3)


def test_sample_grid_png(tmp_path):
    videos = np.random.default_rng(0).integers(0, 255, (5, 8, 24, 40, 3), dtype=np.uint8)
    path = sample_grid(videos, ["a dog running on the beach"] * 5, tmp_path / "g.png", max_videos=3, n_frames=4)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.height > img.width / 4
    with pytest.raises(InputError):
        sample_grid(videos[:0], [], tmp_path / "e.png")
