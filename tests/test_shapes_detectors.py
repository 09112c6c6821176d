"""Shipped shapes detectors: digests, held-out accuracy, and metrics that react to what they should."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.special
import torch
from safetensors.torch import save_file

from evalkit import weights as weights_registry
from evalkit.datasets.shapes import ShapesConfig, ShapesDataset, caption
from evalkit.datasets.shapes.attributes import LABELS
from evalkit.datasets.shapes.detectors import SHIPPED_SHA256, WEIGHTS_DIR, load_network, read_metadata
from evalkit.datasets.shapes.networks import FILES, FRAME_HEADS, VIDEO_HEADS
from evalkit.datasets.shapes.train_detectors import draw, evaluate_classifier
from evalkit.errors import InputError, WeightsError
from evalkit.metrics.base import build_detector, build_metric
from evalkit.video import VideoSpec

SPEC = VideoSpec(16, 36, 64, 24.0)
#: held-out thresholds checked on 128 fresh clips (docs/shapes.md gives the 1024-clip numbers)
VIDEO_MIN_ACCURACY = {"shape": 0.8, "color": 0.95, "motion": 0.8, "speed": 0.75, "background": 0.95, "label": 0.7}


@pytest.fixture(scope="module")
def heldout():
    """128 clips from a seed stream used neither in training nor in the shipped held-out numbers."""
    torch.set_num_threads(1)
    return draw(1234, "test", 0, 128)


@pytest.fixture(scope="module")
def real_sets():
    ds = ShapesDataset(ShapesConfig(), SPEC)
    a = ds.real_clips(list(range(0, 200)), base_seed=0)
    b = ds.real_clips(list(range(200, 400)), base_seed=0)
    return a, b


def test_shipped_files_match_the_registered_digests():
    for key, file in FILES.items():
        path = WEIGHTS_DIR / file
        assert path.is_file(), path
        resolved = weights_registry.resolve(f"shapes-{key}")
        assert resolved.digest == "sha256:" + SHIPPED_SHA256[key]
        assert resolved.comparable
        meta = read_metadata(path)
        assert meta["settings"]["seed"] == 0
    det = build_detector("shapes-video")
    assert det.comparable and det.weights_digest == "sha256:" + SHIPPED_SHA256["video"]


def test_video_network_heldout_accuracy(heldout):
    attrs, videos = heldout
    net = load_network("video", str(WEIGHTS_DIR / FILES["video"]))
    acc = evaluate_classifier(net, VIDEO_HEADS, attrs, videos, per_frame=False)
    for head, floor in VIDEO_MIN_ACCURACY.items():
        assert acc[head] >= floor, (head, acc)
    logits = build_detector("shapes-video-logits")(videos)
    assert logits.shape == (128, len(LABELS))
    predicted = [LABELS[int(k)] for k in logits.argmax(1)]
    assert np.mean([p == a.label for p, a in zip(predicted, attrs, strict=True)]) == pytest.approx(acc["label"])


def test_frame_network_heldout_accuracy(heldout):
    attrs, videos = heldout
    det = build_detector("shapes-frame")
    feats = det(videos[:8])
    assert det.per_frame and feats.shape == (8 * 16, 128)
    net = det.model
    acc = evaluate_classifier(net, FRAME_HEADS, attrs, videos[:, ::4], per_frame=True)
    assert min(acc.values()) >= 0.9, acc
    # per-frame features do not depend on the other frames of the clip
    single = det(videos[:2, 3:4])  # frame 3 of videos 0 and 1, alone
    assert torch.allclose(single, feats[[3, 16 + 3]], atol=1e-5)


def test_clip_scores_right_captions_higher(heldout):
    attrs, videos = heldout
    det = build_detector("shapes-clip")
    caps = [caption(a) for a in attrs]
    right = det(videos, caps)[:, 0]
    wrong = det(videos, caps[1:] + caps[:1])[:, 0]
    assert right.shape == (128,) and float(right.abs().max()) <= 1.0 + 1e-5
    assert float((right > wrong).float().mean()) > 0.9
    # retrieval: the right caption is the best of all 128 for most clips
    net = det.model
    with torch.no_grad():
        sim = net.encode_video(videos) @ net.encode_text(caps).T
    hit = [caps[int(k)] == caps[i] for i, k in enumerate(sim.argmax(1))]
    assert np.mean(hit) > 0.6
    with pytest.raises(InputError, match="one prompt per video"):
        det(videos[:2], caps[:1])
    with pytest.raises(InputError, match="vocabulary"):
        det(videos[:1], ["zebra xylophone"])


def _frechet(x: np.ndarray, y: np.ndarray) -> float:
    """Independent Fréchet distance (pytorch-fid formula, N-1 covariances)."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _metric(name: str, real: np.ndarray, fake: np.ndarray) -> float:
    m = build_metric(name)
    m.update(real, real=True)
    m.update(fake, real=False)
    return m.compute().value


def _shuffle_time(videos: torch.Tensor, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([v[torch.randperm(v.shape[0], generator=gen)] for v in videos])


def test_fvd_reacts_to_temporal_shuffling_and_fid_does_not(real_sets):
    a, b = real_sets
    video = build_detector("shapes-video")
    fa, fb, fs = (video(x).double().numpy() for x in (a, b, _shuffle_time(b)))
    fvd_real = _metric("fvd:shapes", fa, fb)
    fvd_shuffled = _metric("fvd:shapes", fa, fs)
    assert fvd_real == pytest.approx(_frechet(fa, fb), rel=1e-6, abs=1e-6)
    assert fvd_shuffled > 3 * fvd_real, (fvd_real, fvd_shuffled)

    frame = build_detector("shapes-frame")
    ga, gb, gs = (frame(x).double().numpy() for x in (a, b, _shuffle_time(b)))
    fid_real = _metric("fid:shapes", ga, gb)
    fid_shuffled = _metric("fid:shapes", ga, gs)
    assert fid_real == pytest.approx(_frechet(ga, gb), rel=1e-6, abs=1e-6)
    assert fid_shuffled == pytest.approx(fid_real, rel=1e-6)  # same multiset of frames
    frozen = b[:, :1].expand_as(b).contiguous()  # a frozen first frame changes the frame set a little
    assert _metric("fvd:shapes", fa, video(frozen).double().numpy()) > 3 * fvd_real


def test_clipsim_and_is_on_real_clips(real_sets):
    a, _ = real_sets
    ds = ShapesDataset(ShapesConfig(), SPEC)
    caps = ds.real_captions(list(range(200)), base_seed=0)
    det = build_detector("shapes-clip")
    scores = {}
    for label, prompts in (("right", caps), ("swapped", caps[7:] + caps[:7])):
        per_video = det(a, prompts)
        m = build_metric("clipsim:shapes")
        m.update(per_video[:120], real=False)
        m.update(per_video[120:], real=False)
        scores[label] = m.compute().value
        assert scores[label] == pytest.approx(float(per_video.double().mean()), rel=1e-9)
    assert scores["right"] > scores["swapped"] + 0.3, scores

    logits = build_detector("shapes-video-logits")(a).double().numpy()
    m = build_metric("is:shapes")
    m.update(logits, real=False)
    varied = m.compute().value
    m = build_metric("is:shapes")
    m.update(np.repeat(logits[:1], 200, axis=0), real=False)
    assert m.compute().value == pytest.approx(1.0, abs=1e-6)  # one clip repeated: no diversity
    # independent computation: softmax, 4 consecutive splits, exp of the mean KL(p(y|x) || p(y))
    p = scipy.special.softmax(logits, axis=1)
    expected = np.mean([np.exp(np.mean(np.sum(q * (np.log(q) - np.log(q.mean(0, keepdims=True))), axis=1)))
                        for q in np.array_split(p, 4)])
    assert varied == pytest.approx(expected, rel=1e-9)
    assert 5 < varied < 43  # 43 classes drawn near-uniformly, 50 clips per split


def test_bad_weight_files_are_refused(tmp_path):
    wrong = tmp_path / "wrong.safetensors"
    save_file({"x": torch.zeros(2)}, str(wrong), metadata={"format": '"other"'})
    with pytest.raises(WeightsError, match="expected a shapes VideoNet file"):
        load_network("video", str(wrong))
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        (tmp_path / "junk.safetensors").write_bytes(b"junk")
        load_network("frame", str(tmp_path / "junk.safetensors"))
    frame_file = str(WEIGHTS_DIR / FILES["frame"])
    with pytest.raises(WeightsError, match="expected a shapes VideoNet"):
        load_network("video", frame_file)
    det = build_detector("shapes-video", allow_random_weights=False)
    assert det.comparable
    random = load_network("video", None)
    assert not torch.equal(random.fc.weight, det.model.fc.weight)
