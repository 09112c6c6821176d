"""Inception Score against the formula on known distributions and an independent scipy write-out."""

import numpy as np
import pytest
from scipy.special import softmax
from scipy.stats import entropy

from evalkit.errors import InputError
from evalkit.metrics.inception_score import InceptionScore


class _Splits(InceptionScore):
    name, variant, detector = "is", "test-splits", "none"
    convention, splits, shuffle_seed = "splits", 10, 42


class _Runs(InceptionScore):
    name, variant, detector = "is", "test-runs", "none"
    convention, splits, eps = "runs", 4, 1e-20


class _Logits(InceptionScore):
    name, variant, detector = "is", "test-logits", "none"
    input_kind, splits, std_ddof = "logits", 2, 1


def _reference_is(p: np.ndarray) -> float:
    marginal = p.mean(axis=0)
    return float(np.exp(np.mean([entropy(row, marginal) for row in p])))


def test_one_hot_balanced_classes_score_the_number_of_classes():
    metric = _Runs()
    probs = np.tile(np.eye(5), (8, 1))  # 40 samples, 4 runs of 10 with two of each class
    metric.update(probs)
    value = metric.compute()
    assert value.value == pytest.approx(5.0, rel=1e-12)
    assert value.std == pytest.approx(0.0, abs=1e-12)


def test_uniform_predictions_score_one():
    metric = _Splits()
    metric.update(np.full((30, 7), 1 / 7))
    assert metric.compute().value == pytest.approx(1.0, rel=1e-12)


def test_splits_with_seeded_shuffle_match_write_out():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(11, 0.3), size=205)
    metric = _Splits()
    metric.update(probs[:100])
    metric.update(probs[100:])
    shuffled = probs.copy()
    np.random.RandomState(42).shuffle(shuffled)
    n = len(probs)
    scores = [_reference_is(shuffled[i * n // 10:(i + 1) * n // 10]) for i in range(10)]
    got = metric.compute()
    assert got.value == pytest.approx(np.mean(scores), rel=1e-10)
    assert got.std == pytest.approx(np.std(scores), rel=1e-8)
    assert got.details["split_scores"] == pytest.approx(scores, rel=1e-10)


def test_runs_use_consecutive_blocks_and_report_leftovers():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(6), size=42)
    metric = _Runs()
    metric.update(probs)
    got = metric.compute()
    expected = [_reference_is(probs[i * 10:(i + 1) * 10]) for i in range(4)]
    assert got.value == pytest.approx(np.mean(expected), rel=1e-10)
    assert "2 samples" in got.details["warnings"][0]


def test_logits_input_applies_softmax_and_ddof():
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=3, size=(20, 9))
    metric = _Logits()
    metric.update(logits)
    p = softmax(logits, axis=1)
    expected = [_reference_is(p[:10]), _reference_is(p[10:])]
    got = metric.compute()
    assert got.value == pytest.approx(np.mean(expected), rel=1e-10)
    assert got.std == pytest.approx(np.std(expected, ddof=1), rel=1e-8)


def test_zero_probability_without_eps_raises_and_eps_handles_it():
    probs = np.tile(np.eye(4), (10, 1))
    strict = _Splits()
    strict.update(probs)
    with pytest.raises(InputError, match="not finite"):
        strict.compute()
    tolerant = _Runs()
    tolerant.update(np.tile(np.eye(4), (12, 1)))  # 4 runs of 12, three of each class
    assert tolerant.compute().value == pytest.approx(4.0, rel=1e-9)


def test_bad_inputs():
    metric = _Splits()
    with pytest.raises(InputError, match="generated samples only"):
        metric.update(np.full((2, 3), 1 / 3), real=True)
    with pytest.raises(InputError, match="sum to 1"):
        metric.update(np.full((2, 3), 0.2))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        metric.update(np.array([[2.0, -1.0]]))
    metric.update(np.full((3, 3), 1 / 3))
    with pytest.raises(InputError, match="at least 10"):
        metric.compute()


def test_merge_state_appends_shards():
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(5), size=40)
    whole, a, b = _Runs(), _Runs(), _Runs()
    whole.update(probs)
    a.update(probs[:25])
    b.update(probs[25:])
    a.merge_state(b.state_dict())
    assert a.n_fake == 40
    assert a.compute().value == pytest.approx(whole.compute().value, rel=1e-12)
