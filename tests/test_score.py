"""`evalkit score` end to end: input layouts, JSON record, real-feature cache, and error messages."""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image

from evalkit.cli import main
from evalkit.metrics.base import Detector
from evalkit.metrics.frechet import FrechetMetric, frechet_distance
from evalkit.registry import DETECTORS, METRICS


class _MeanColour(Detector):
    """Per-video mean colour and its square (6-d): weight-free, fast, enough for a Fréchet distance."""

    name: ClassVar[str] = "test-mean-colour"
    calls: ClassVar[int] = 0

    def __call__(self, videos, prompts=None):
        type(self).calls += videos.shape[0]  # videos seen
        x = videos.double().mean(dim=(1, 2, 3)) / 255
        return torch.cat([x, x**2], dim=1)


class _FdMeanColour(FrechetMetric):
    name, variant, detector = "fd", "test-mean-colour", "test-mean-colour"
    cov_divisor, sqrt_method = "N-1", "svd-tfgan"


DETECTORS.add("test-mean-colour", _MeanColour, overwrite=True)
METRICS.add("fd:test-mean-colour", _FdMeanColour, overwrite=True)


def _videos(seed: int, n: int = 9) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 3, 6, 5, 3), dtype=np.uint8)


def _expected(real: np.ndarray, fake: np.ndarray) -> float:
    def feats(v):
        m = v.astype(np.float64).mean(axis=(1, 2, 3)) / 255
        return np.concatenate([m, m**2], axis=1)

    r, f = feats(real), feats(fake)
    return frechet_distance(r.mean(0), np.cov(r, rowvar=False), f.mean(0), np.cov(f, rowvar=False), "svd-tfgan").value


def test_npz_and_frame_folders_give_the_reference_value(tmp_path, capsys):
    real, fake = _videos(0), _videos(1)
    np.savez(tmp_path / "real.npz", videos=real)
    np.save(tmp_path / "fake.npy", fake)
    frames_root = tmp_path / "fake_frames"
    for i, video in enumerate(fake):
        (frames_root / f"v{i:02d}").mkdir(parents=True)
        for t, frame in enumerate(video):
            Image.fromarray(frame).save(frames_root / f"v{i:02d}" / f"{t:03d}.png")
    out = tmp_path / "scores.json"
    rc = main(["score", "--real", str(tmp_path / "real.npz"), "--fake", str(tmp_path / "fake.npy"),
               "--metric", "fd:test-mean-colour", "--json", str(out), "--batch-size", "4"])
    assert rc == 0
    record = json.loads(out.read_text())[0]
    expected = _expected(real, fake)
    assert record["value"] == pytest.approx(expected, rel=1e-9)
    assert (record["n_real"], record["n_fake"], record["sqrt_method"]) == (9, 9, "svd-tfgan")
    assert record["metric"] == "fd:test-mean-colour" and "fd:test-mean-colour" in capsys.readouterr().out
    rc = main(["score", "--real", str(tmp_path / "real.npz"), "--fake", str(frames_root),
               "--metric", "fd:test-mean-colour", "--json", str(out), "--frames", "2"])
    assert rc == 0
    assert json.loads(out.read_text())[0]["value"] == pytest.approx(_expected(real[:, :2], fake[:, :2]), rel=1e-9)


def test_real_features_are_cached(tmp_path, monkeypatch):
    np.save(tmp_path / "real.npy", _videos(2))
    np.save(tmp_path / "fake.npy", _videos(3))
    args = ["score", "--real", str(tmp_path / "real.npy"), "--fake", str(tmp_path / "fake.npy"),
            "--metric", "fd:test-mean-colour"]
    _MeanColour.calls = 0
    assert main(args) == 0
    first = _MeanColour.calls
    assert main(args) == 0
    assert first == 18 and _MeanColour.calls == first + 9  # only the generated set is recomputed
    import os

    cache = os.path.join(os.environ["EVALKIT_HOME"], "cache")
    assert any(name.startswith("features-test-mean-colour") for name in os.listdir(cache))


def test_images_folder_is_one_frame_videos(tmp_path):
    images = _videos(4, n=5)[:, 0]
    (tmp_path / "imgs").mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img).save(tmp_path / "imgs" / f"{i}.png")
    np.save(tmp_path / "real.npy", _videos(5, n=5)[:, :1])
    out = tmp_path / "s.json"
    assert main(["score", "--real", str(tmp_path / "real.npy"), "--fake", str(tmp_path / "imgs"),
                 "--metric", "fd:test-mean-colour", "--json", str(out)]) == 0
    assert json.loads(out.read_text())[0]["value"] == pytest.approx(
        _expected(_videos(5, n=5)[:, :1], images[:, None]), rel=1e-9)


def test_errors_name_the_problem(tmp_path, capsys):
    np.save(tmp_path / "fake.npy", _videos(6))
    np.save(tmp_path / "float.npy", _videos(6).astype(np.float32))
    (tmp_path / "broken.png").parent.mkdir(exist_ok=True)
    cases = [
        (["--fake", str(tmp_path / "fake.npy"), "--metric", "fd:test-mean-colour"], "--real is required"),
        (["--real", str(tmp_path / "float.npy"), "--fake", str(tmp_path / "fake.npy"),
          "--metric", "fd:test-mean-colour"], "expected dtype uint8"),
        (["--real", str(tmp_path / "nothing"), "--fake", str(tmp_path / "fake.npy"),
          "--metric", "fd:test-mean-colour"], "no such file or folder"),
        (["--real", str(tmp_path / "fake.npy"), "--fake", str(tmp_path / "fake.npy"), "--metric", "kid"],
         "evalkit weights add pytorch-fid-inception"),
        (["--fake", str(tmp_path / "fake.npy"), "--metric", "clipsim:vit-b-32", "--prompts",
          str(tmp_path / "missing.txt")], "cannot read prompts"),
        (["--real", str(tmp_path / "fake.npy"), "--fake", str(tmp_path / "fake.npy"), "--metric",
          "fd:test-mean-colour", "--weights", "nonsense"], "NAME=FILE"),
        (["--real", str(tmp_path / "fake.npy"), "--fake", str(tmp_path / "fake.npy"), "--metric",
          "fd:test-mean-colour", "--workers", "0"], "--workers must be a positive integer"),
    ]
    for args, message in cases:
        assert main(["score", *args]) == 2
        assert message in capsys.readouterr().err


def test_unreadable_image_is_named(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not a png")
    np.save(tmp_path / "real.npy", _videos(7, n=2)[:, :1])
    assert main(["score", "--real", str(tmp_path / "real.npy"), "--fake", str(folder),
                 "--metric", "fd:test-mean-colour"]) == 2
    assert "a.png" in capsys.readouterr().err


def test_batches_read_ahead_keep_order_and_shape_groups():
    """Decoding in threads, with items finishing out of order, gives the batches a sequential read gives."""
    import random
    import time

    from evalkit.commands.score import VideoSource, iter_batches

    shapes = [(2, 4, 4, 3)] * 5 + [(3, 4, 4, 3)] * 4 + [(2, 4, 4, 3)] * 2
    delays = random.Random(0).sample(range(len(shapes)), len(shapes))

    def read(i: int) -> np.ndarray:
        time.sleep(delays[i] * 0.002)  # later items often finish first
        return np.full(shapes[i], i, dtype=np.uint8)

    source = VideoSource("mem", len(shapes), read, "x")
    got = [(start, batch.shape, batch[:, 0, 0, 0, 0].tolist()) for start, batch in iter_batches(source, 3, workers=4)]
    assert got == [
        (0, (3, 2, 4, 4, 3), [0, 1, 2]),
        (3, (2, 2, 4, 4, 3), [3, 4]),
        (5, (3, 3, 4, 4, 3), [5, 6, 7]),
        (8, (1, 3, 4, 4, 3), [8]),
        (9, (2, 2, 4, 4, 3), [9, 10]),
    ]
