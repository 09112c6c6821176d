"""Time of one paired bootstrap round (``evalkit report --paired``) against the plain rounds it replaces.

A plain round builds a fresh metric per row, feeds it the resampled generated rows and the resampled
real rows, and computes it: the real set's sums are computed twice per round, and a Fréchet metric
tries the eigenvalue route first even when a covariance is singular by construction (a detector unit
that is 0 for every clip, or no more distinct rows than feature dimensions), where the attempt can
only decline before the reference's sqrtm runs. ``evalkit.reports.paired.paired_bootstrap`` shares the
real sums, goes straight to the sqrtm there, and runs the rounds with one BLAS thread. Three paths
from the same seed, alternating: plain rounds with the machine's BLAS threads, plain rounds with one
BLAS thread, and evalkit's. evalkit's interval must equal the one-thread plain interval to the bit;
the difference from the default-thread interval (BLAS threads change rounding) is reported.

Features come from a run directory (``--run`` with two labels of the same plan) or, by default, are
drawn at the shapes protocol's sizes: FVD on 160 videos x 128 dimensions, FID on 160 x 16 frames x 128,
256 real videos.

    python benchmarks/paired_bootstrap.py --rounds 40 --repeats 3 --out paired_bootstrap.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits


def plain_paired_values(factory, a: np.ndarray, b: np.ndarray, real: np.ndarray, rounds: int,
                        seed: int) -> tuple[float, np.ndarray]:
    """The paired bootstrap written the plain way: fresh metrics fed raw rows in every round."""
    def value(fake: np.ndarray, real_rows: np.ndarray) -> float:
        metric = factory()
        metric.update(fake.reshape(-1, fake.shape[-1]), real=False)
        metric.update(real_rows.reshape(-1, real_rows.shape[-1]), real=True)
        return float(metric.compute().value)

    rng = np.random.default_rng(seed)
    values = np.empty(rounds)
    for r in range(rounds):
        idx = rng.integers(0, len(a), len(a))
        real_r = real[rng.integers(0, len(real), len(real))]
        values[r] = value(b[idx], real_r) - value(a[idx], real_r)
    return value(b, real) - value(a, real), values


def synthetic_features(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in (("fvd:shapes", (160, 128)), ("fid:shapes", (160, 16, 128))):
        a = rng.standard_normal(shape)
        b = 0.9 * a + 0.3 * rng.standard_normal(shape) + 0.05
        real = rng.standard_normal((256, *shape[1:]))
        out[name] = (a, b, real)
    return out


def run_features(run_dir: str, baseline: str, compared: str,
                 protocol: str) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    from evalkit.registry import METRICS
    from evalkit.reports.features import load_fake_features, load_real_features

    out = {}
    for name in ("fvd:shapes", "fid:shapes"):
        detector = METRICS.get(name).detector
        out[name] = (load_fake_features(run_dir, baseline, protocol, detector),
                     load_fake_features(run_dir, compared, protocol, detector),
                     load_real_features(run_dir, protocol, detector))
    return out


def one_value_by_threads(dims: list[int], repeats: int) -> dict[str, dict[str, float]]:
    """Seconds for one Fréchet value (sums of 2048 rows per set, then the distance) at larger D, with the
    default BLAS threads and with one: whether one thread is also right for wider detectors."""
    from evalkit.metrics.frechet import frechet_distance
    from evalkit.metrics.stats import FeatureStats

    def value(x: np.ndarray, y: np.ndarray) -> float:
        sx, sy = FeatureStats(), FeatureStats()
        sx.update(x)
        sy.update(y)
        return frechet_distance(sx.mean(), sx.cov(), sy.mean(), sy.cov(), n1=len(x), n2=len(y)).value

    rng = np.random.default_rng(0)
    out = {}
    for dim in dims:
        x, y = rng.standard_normal((2048, dim)), 1.1 * rng.standard_normal((2048, dim))
        times: dict[str, list[float]] = {"default": [], "one": []}
        for _ in range(repeats):
            for mode in times:
                start = time.perf_counter()
                if mode == "one":
                    with threadpool_limits(limits=1, user_api="blas"):
                        value(x, y)
                else:
                    value(x, y)
                times[mode].append(time.perf_counter() - start)
        out[str(dim)] = {f"{mode}_threads_s": statistics.median(t) for mode, t in times.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40, help="bootstrap rounds per timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings per path, alternating")
    parser.add_argument("--run", help="run directory with the two rows (default: synthetic features)")
    parser.add_argument("--baseline", help="label of the baseline row in --run")
    parser.add_argument("--compared", help="label of the compared row in --run")
    parser.add_argument("--protocol", default="shapes")
    parser.add_argument("--dims", type=int, nargs="*", default=[400, 1024],
                        help="also time one Fréchet value at these D with default and one BLAS thread")
    parser.add_argument("--out", default="paired_bootstrap.json", help="JSON output file")
    args = parser.parse_args(argv)

    import evalkit.datasets  # noqa: F401  (registers the shapes metrics)
    from evalkit.registry import METRICS
    from evalkit.reports.bootstrap import interval_from_values
    from evalkit.reports.paired import paired_bootstrap

    if args.run:
        if not (args.baseline and args.compared):
            parser.error("--run needs --baseline and --compared")
        features = run_features(args.run, args.baseline, args.compared, args.protocol)
    else:
        features = synthetic_features()
    rows = {}
    for name, (a, b, real) in features.items():
        factory = METRICS.get(name)
        times: dict[str, list[float]] = {"plain": [], "plain_1_thread": [], "evalkit": []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            value, values = plain_paired_values(factory, a, b, real, args.rounds, seed=1)
            times["plain"].append((time.perf_counter() - start) / args.rounds)
            start = time.perf_counter()
            with threadpool_limits(limits=1, user_api="blas"):
                value_1, values_1 = plain_paired_values(factory, a, b, real, args.rounds, seed=1)
            times["plain_1_thread"].append((time.perf_counter() - start) / args.rounds)
            start = time.perf_counter()
            ours = paired_bootstrap(factory, a, b, real, rounds=args.rounds, seed=1)
            times["evalkit"].append((time.perf_counter() - start) / args.rounds)
        plain = interval_from_values(value, values, method="percentile")
        plain_1 = interval_from_values(value, values_1, method="percentile")
        same = (plain_1.value, plain_1.low, plain_1.high, plain_1.std) == (ours.value, ours.low, ours.high, ours.std)
        medians = {k: statistics.median(v) for k, v in times.items()}
        rows[name] = {"shape": list(a.shape), "real_shape": list(real.shape),
                      **{f"{k}_s_per_round": v for k, v in medians.items()},
                      "speedup": medians["plain"] / medians["evalkit"],
                      "speedup_over_1_thread": medians["plain_1_thread"] / medians["evalkit"],
                      "times": times, "identical": same,
                      "max_difference_from_default_threads": max(abs(plain.low - ours.low), abs(plain.high - ours.high),
                                                                 abs(plain.value - ours.value)),
                      "interval": [ours.value, ours.low, ours.high, ours.std]}
    result = {"benchmark": "paired_bootstrap", "source": args.run or "synthetic", "rounds": args.rounds,
              "repeats": args.repeats, "machine": platform.machine(), "processor": platform.processor(),
              "python": platform.python_version(), "rows": rows,
              "one_value_by_threads": one_value_by_threads(args.dims, args.repeats)}
    header = (f"{'metric':<12}{'features':>12}{'plain':>9}{'plain 1 thr':>13}{'evalkit':>9}{'speed-up':>10}"
              f"{'identical':>11}{'vs default':>12}")
    print(f"paired bootstrap, s per round, {args.rounds} rounds, medians of {args.repeats}; "
          f"features: {result['source']}")
    print(header)
    print("-" * len(header))
    for name, r in rows.items():
        print(f"{name:<12}{'x'.join(map(str, r['shape'])):>12}{r['plain_s_per_round']:>9.4f}"
              f"{r['plain_1_thread_s_per_round']:>13.4f}{r['evalkit_s_per_round']:>9.4f}{r['speedup']:>9.2f}x"
              f"{'yes' if r['identical'] else 'NO':>11}{r['max_difference_from_default_threads']:>12.1e}")
    print("speed-up: plain rounds with the default BLAS threads / evalkit; identical: evalkit's interval and "
          "the one-thread plain interval, to the bit; vs default: largest difference of value and ends from "
          "the default-thread plain interval")
    for dim, r in result["one_value_by_threads"].items():
        print(f"one Fréchet value at D = {dim} (2048 rows per set): {r['default_threads_s']:.3f} s with the "
              f"default BLAS threads, {r['one_threads_s']:.3f} s with one")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if all(r["identical"] for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
