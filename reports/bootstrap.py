"""Uncertainty of a metric value: bootstrap intervals from per-sample features, spread over seeds.

A bootstrap round draws the generated set and (for metrics that use one) the real set again with
replacement, builds a fresh metric and computes it. Rounds are drawn from one seeded generator, so
the same seed gives the same interval. Two interval constructions are offered:

- ``percentile``: the ``(1-level)/2`` and ``(1+level)/2`` quantiles of the bootstrap values;
- ``basic`` (the default): those quantiles reflected around the full-data value,
  ``[2v - q_hi, 2v - q_lo]``. Fréchet distances are biased upwards by roughly ``tr(Σ)/n`` per set
  and a bootstrap replicate carries that bias twice; the reflection removes it to first order, so
  the interval keeps its coverage when the bias is not small next to the spread.

Near zero distance (identical distributions) neither construction covers well: the distance is at
the edge of its range, and the basic interval can reach below zero. For distances (Fréchet metrics,
whose population value is never negative) the interval is cut at 0, which removes only impossible
values. Reports say which construction and how many rounds produced an interval.

Speed: rounds skip work that cannot change a value. Features up to 512 wide run with one BLAS
thread (``one_blas_thread``). Covariances that are singular by construction (``constant_column``,
``too_few_distinct_rows``) go straight to the reference's sqrtm. A paired round shares its real-set
sums (``real_state``). Each value equals a plain round's at the same thread count
(``tests/test_bootstrap_rounds.py``, ``benchmarks/paired_bootstrap.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from evalkit.errors import EvalkitError, InputError
from evalkit.metrics.base import Metric, build_metric
from evalkit.metrics.frechet import FrechetMetric

IntervalMethod = Literal["basic", "percentile"]


@dataclasses.dataclass(frozen=True)
class Interval:
    """A point value with a bootstrap interval (``low``, ``high``) and the bootstrap standard deviation."""

    value: float
    low: float
    high: float
    std: float
    rounds: int
    level: float
    method: str

    def covers(self, x: float) -> bool:
        return self.low <= x <= self.high


def _as_samples(features: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(features)
    if array.ndim < 1 or len(array) < 2:
        raise InputError(f"bootstrap: {name} features need at least 2 samples, got shape {array.shape}")
    return array


#: widest features whose bootstrap rounds run with one BLAS thread
ONE_BLAS_THREAD_MAX_DIM = 512


def one_blas_thread(dim: int) -> contextlib.AbstractContextManager:
    """Run the enclosed rounds with one BLAS thread when the features are at most 512 wide.

    A round's linear algebra is a few D x D products, an eigenvalue attempt and a sqrtm. On two cores
    with torch loaded (``benchmarks/paired_bootstrap.py``), plain rounds at D = 128 ran three to seven
    times faster with one BLAS thread than with two, and one Fréchet value took 0.06 s instead of
    0.17 s at D = 400; at D = 1024 the two were even, and at D = 2048 one thread took 17.1 s against
    9.9 s, so wider features keep the machine's threads. At these widths one thread also makes the
    rounds' arithmetic independent of the machine's core count.
    """
    if dim <= ONE_BLAS_THREAD_MAX_DIM:
        return threadpool_limits(limits=1, user_api="blas")
    return contextlib.nullcontext()


def feed(metric: Metric, features: np.ndarray, *, real: bool) -> None:
    """Update a metric the way the runner does: per-frame rows (n, T, D) enter as n*T feature rows."""
    features = np.asarray(features)
    if features.ndim == 3:
        features = features.reshape(-1, features.shape[-1])
    metric.update(features, real=real)


def constant_column(features: np.ndarray) -> bool:
    """True when some feature is the same in every row (a detector's dead unit: ReLU features stuck at 0).

    Such a column has zero variance in the set and in every resample of it, so their covariance is
    singular whatever the rounding. With ``too_few_distinct_rows`` this tells a bootstrap round that a
    Fréchet metric's eigenvalue route would only decline (see ``evalkit.metrics.frechet``), so the round
    goes straight to the reference's sqrtm.
    """
    features = np.asarray(features)
    rows = features.reshape(-1, features.shape[-1]) if features.ndim > 1 else features[:, None]
    return bool((rows.max(axis=0) == rows.min(axis=0)).any())


def too_few_distinct_rows(features: np.ndarray, idx: np.ndarray) -> bool:
    """True when the resample ``features[idx]`` holds no more distinct feature rows than dimensions.

    k distinct samples hold at most k*T distinct rows ((n, T, D) features give T rows per sample), and
    their covariance has rank at most k*T - 1: singular when k*T <= D, whatever the values.
    """
    features = np.asarray(features)
    rows_per_sample = features.shape[1] if features.ndim == 3 else 1
    return len(np.unique(idx)) * rows_per_sample <= features.shape[-1]


def resamples(rng: np.random.Generator, fake: np.ndarray, real: np.ndarray | None, rounds: int, *,
              constant: bool) -> Iterator[tuple[np.ndarray, np.ndarray | None, bool]]:
    """Per round: indices into ``fake``, indices into ``real`` (None without one), and whether a
    covariance of the round is singular by construction (``constant``: a set has a constant column).

    The indices are drawn in the order plain rounds draw them (generated set first), so a seed gives
    the same rounds whichever loop consumes them.
    """
    for _ in range(rounds):
        idx = rng.integers(0, len(fake), len(fake))
        real_idx = rng.integers(0, len(real), len(real)) if real is not None else None
        singular = constant or too_few_distinct_rows(fake, idx) or (
            real_idx is not None and too_few_distinct_rows(real, real_idx))
        yield idx, real_idx, singular


@contextlib.contextmanager
def rounds_of_row(bar: tqdm, rounds: int) -> Iterator[None]:
    """Count one row's ``rounds`` on ``bar`` in full, also when the row fails part-way or before its first round."""
    start = bar.n
    try:
        yield
    finally:
        bar.update(rounds - (bar.n - start))


def real_state(factory: Callable[[], Metric], real: np.ndarray | None) -> dict[str, np.ndarray] | None:
    """A Fréchet metric's real-set sums for ``real``, computed once per round and shared by the rows it
    scores (for the other metrics, whose real state is the features themselves, None: they are fed)."""
    if real is None:
        return None
    metric = factory()
    if not isinstance(metric, FrechetMetric):
        return None
    feed(metric, real, real=True)
    return metric.state_dict()


def _compute(factory: Callable[[], Metric], fake: np.ndarray, real: np.ndarray | None = None, *,
             shared: dict[str, np.ndarray] | None = None, singular: bool = False) -> float:
    """One metric value from fake rows and real rows, or the ``real_state`` of those real rows (``shared``).

    ``singular`` says a covariance is singular by construction (``constant_column``,
    ``too_few_distinct_rows``): a Fréchet metric then takes the reference's sqrtm at once. The value is
    the same either way.
    """
    metric = factory()
    if shared is not None:
        metric.merge_state(shared)
    elif real is not None:
        feed(metric, real, real=True)
    if singular and isinstance(metric, FrechetMetric):
        metric.trace = "sqrtm"
    feed(metric, fake, real=False)
    return float(metric.compute().value)


def bootstrap_values(
    metric: str | Callable[[], Metric],
    fake: np.ndarray,
    real: np.ndarray | None = None,
    *,
    rounds: int = 100,
    seed: int = 0,
    progress: Callable[[int], object] | None = None,
) -> tuple[float, np.ndarray]:
    """The full-data value and ``rounds`` bootstrap values of ``metric`` (a name or a factory).

    ``fake``/``real`` hold one row per sample ((n, D) or (n, T, D)); rows are resampled whole, so the
    frames of a video stay together. ``real`` is ignored (and may be None) for metrics without a real set.
    ``progress`` is called with 1 after each round (e.g. a tqdm bar's ``update``).
    """
    factory = (lambda: build_metric(metric)) if isinstance(metric, str) else metric
    if rounds < 1:
        raise InputError(f"bootstrap: rounds must be >= 1, got {rounds}")
    uses_real = bool(getattr(factory(), "uses_real", True))
    fake = _as_samples(fake, "generated")
    if uses_real:
        if real is None:
            raise InputError("bootstrap: this metric compares with a real set, but no real features were given")
        real = _as_samples(real, "real")
    else:
        real = None
    constant = any(constant_column(x) for x in (fake, real) if x is not None)
    value = _compute(factory, fake, real, singular=constant)
    values = np.empty(rounds, dtype=np.float64)
    with one_blas_thread(np.shape(fake)[-1]):
        rounds_drawn = resamples(np.random.default_rng(seed), fake, real, rounds, constant=constant)
        for r, (idx, real_idx, singular) in enumerate(rounds_drawn):
            values[r] = _compute(factory, fake[idx], real[real_idx] if real is not None else None,
                                 singular=singular)
            if progress is not None:
                progress(1)
    return value, values


def interval_from_values(
    value: float, values: np.ndarray, *, level: float = 0.95, method: IntervalMethod = "basic",
    floor: float | None = None,
) -> Interval:
    """Turn bootstrap values into an ``Interval`` (see the module docstring for the two methods)."""
    if not 0.0 < level < 1.0:
        raise InputError(f"bootstrap: level must be in (0, 1), got {level}")
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if len(finite) < 2:
        raise InputError("bootstrap: fewer than 2 bootstrap rounds gave a finite value")
    q_lo, q_hi = np.quantile(finite, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    if method == "percentile":
        low, high = float(q_lo), float(q_hi)
    elif method == "basic":
        low, high = float(2.0 * value - q_hi), float(2.0 * value - q_lo)
    else:
        raise InputError(f"bootstrap: method must be 'basic' or 'percentile', got {method!r}")
    if floor is not None:
        low, high = max(low, floor), max(high, floor)
    return Interval(value=float(value), low=low, high=high, std=float(finite.std(ddof=1)),
                    rounds=len(finite), level=level, method=method)


def bootstrap_interval(
    metric: str | Callable[[], Metric],
    fake: np.ndarray,
    real: np.ndarray | None = None,
    *,
    rounds: int = 100,
    seed: int = 0,
    level: float = 0.95,
    method: IntervalMethod = "basic",
    progress: Callable[[int], object] | None = None,
) -> Interval:
    """Bootstrap interval of a metric computed from stored per-sample features."""
    value, values = bootstrap_values(metric, fake, real, rounds=rounds, seed=seed, progress=progress)
    probe = build_metric(metric) if isinstance(metric, str) else metric()
    floor = 0.0 if isinstance(probe, FrechetMetric) else None  # a distance is never negative
    return interval_from_values(value, values, level=level, method=method, floor=floor)


@dataclasses.dataclass(frozen=True)
class SeedSpread:
    """Mean and sample standard deviation of one metric over repeated seeds."""

    mean: float
    std: float
    n: int
    values: tuple[float, ...]


def seed_spread(values: Sequence[float]) -> SeedSpread:
    """Mean ± standard deviation (ddof=1; 0 for a single seed) of values from repeated seeds."""
    array = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if len(array) == 0:
        raise InputError("seed_spread: no finite value to aggregate")
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return SeedSpread(mean=float(array.mean()), std=std, n=len(array), values=tuple(float(v) for v in array))


#: metrics (normalised names) whose intervals ``bootstrap_frame`` recomputes from stored features
BOOTSTRAP_METRICS = ("fid", "fvd", "kid", "clipsim", "clipfid", "cdfvd")


def bootstrap_frame(
    frame: pd.DataFrame,
    *,
    rounds: int,
    seed: int = 0,
    level: float = 0.95,
    method: IntervalMethod = "basic",
    metrics: Sequence[str] = BOOTSTRAP_METRICS,
    progress: bool = False,
) -> tuple[pd.DataFrame, list[str]]:
    """Replace the intervals of measured rows by bootstrap intervals from the run's stored features.

    Each row is resampled with its own seed (derived from ``seed`` and the row's identity), so adding a
    run does not change the intervals of the others. Rows whose features or metric cannot be found keep
    their stored interval; the returned messages say which and why. ``progress`` shows a bar of rounds.
    """
    import evalkit.datasets  # noqa: F401  (registers dataset-specific metrics such as the shapes ones)
    from evalkit.registry import METRICS
    from evalkit.reports.features import load_fake_features, load_real_features
    from evalkit.reports.published import normalise_metric
    from evalkit.seeding import sample_seed

    frame = frame.copy()
    messages: list[str] = []
    wanted = {normalise_metric(m) for m in metrics}
    chosen = [(i, rec) for i, rec in frame.iterrows()
              if rec["source"] == "measured" and normalise_metric(str(rec["metric"])) in wanted]
    bar = tqdm(total=len(chosen) * rounds, desc="bootstrap intervals", unit="round", disable=not progress)
    for i, rec in chosen:
        bar.set_postfix_str(f"{rec['generator']} {rec['metric']}", refresh=False)
        full = f"{rec['metric']}:{rec['variant']}" if rec["variant"] else str(rec["metric"])
        label = f"{rec['generator']} / {rec['protocol']} / {full}"
        try:
            with rounds_of_row(bar, rounds):
                cls = METRICS.get(full)
                detector = cls.detector
                generator = str(rec["label"])
                fake = load_fake_features(rec["run_dir"], generator, rec["protocol"], detector)
                real = load_real_features(rec["run_dir"], rec["protocol"], detector) if cls.uses_real else None
                row_seed = sample_seed(seed, 0, f"{rec['run_id']}|{generator}|{rec['protocol']}|{full}")
                iv = bootstrap_interval(cls, fake, real, rounds=rounds, seed=row_seed, level=level, method=method,
                                        progress=bar.update)
        except EvalkitError as exc:
            messages.append(f"{label}: no bootstrap interval ({exc})")
            continue
        if rec["value"] is not None and np.isfinite(rec["value"]) and not np.isclose(
                iv.value, rec["value"], rtol=1e-4, atol=1e-6):
            messages.append(f"{label}: value from stored features {iv.value:.6g} differs from the stored "
                            f"result {rec['value']:.6g}; the interval is centred on the recomputed value")
        frame.at[i, "ci_low"] = iv.low
        frame.at[i, "ci_high"] = iv.high
        frame.at[i, "interval"] = f"{level:.0%} bootstrap ({iv.method}, {iv.rounds} rounds, seed {seed})"
    bar.close()
    return frame, messages
