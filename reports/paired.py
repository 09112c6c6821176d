"""Paired differences: is generator B better than baseline A on the same prompts and seeds?

Two rows of an ablation that were generated from the same plan (the same prompt and seed at every
sample index) are not independent samples: most of the spread of each value comes from which prompts
and noise draws the plan holds, and both rows share it. Comparing their two separate bootstrap
intervals throws that away and calls real differences "overlapping". A paired bootstrap resamples
the *same* sample indices for both rows in every round (and one real set per round, shared), so the
spread of the difference B - A is only what the change itself causes.

For a per-sample mean (CLIPSIM) this is the classic paired bootstrap of the mean difference; for set
metrics (FVD, FID, KID) it resamples pairs of videos and recomputes both metrics per round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from evalkit.errors import EvalkitError, InputError
from evalkit.metrics.base import Metric, build_metric
from evalkit.reports.bootstrap import (
    BOOTSTRAP_METRICS,
    Interval,
    IntervalMethod,
    _as_samples,
    _compute,
    constant_column,
    interval_from_values,
    one_blas_thread,
    real_state,
    resamples,
    rounds_of_row,
)
from evalkit.reports.tables import Cell, Column, Section, Table


def paired_bootstrap(
    metric: str | Callable[[], Metric],
    fake_a: np.ndarray,
    fake_b: np.ndarray,
    real: np.ndarray | None = None,
    *,
    rounds: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    method: IntervalMethod = "percentile",
    progress: Callable[[int], object] | None = None,
) -> Interval:
    """Interval of ``metric(B) - metric(A)`` where row i of ``fake_a`` and of ``fake_b`` share prompt and seed.

    Every round draws one set of sample indices for both rows and one resample of ``real`` (ignored for
    metrics without a real set). ``Interval.value`` is the full-data difference. Rounds share the real
    set's sums, send covariances that are singular by construction straight to the reference's sqrtm and,
    for features up to 512 wide, run with one BLAS thread (``evalkit.reports.bootstrap``). Each value
    equals that of a plain round, fresh metrics fed the resampled rows, at the same thread count
    (``tests/test_bootstrap_rounds.py``). ``progress`` is called with 1 after each round.
    """
    factory = (lambda: build_metric(metric)) if isinstance(metric, str) else metric
    if rounds < 1:
        raise InputError(f"paired bootstrap: rounds must be >= 1, got {rounds}")
    fake_a, fake_b = _as_samples(fake_a, "baseline"), _as_samples(fake_b, "compared")
    if fake_a.shape != fake_b.shape:
        raise InputError(f"paired bootstrap: the two rows must hold the same samples; got features of shape "
                         f"{fake_a.shape} (baseline) and {fake_b.shape} (compared)")
    uses_real = bool(getattr(factory(), "uses_real", True))
    if uses_real:
        if real is None:
            raise InputError("paired bootstrap: this metric compares with a real set, but no real features were given")
        real = _as_samples(real, "real")
    else:
        real = None
    constant = any(constant_column(x) for x in (fake_a, fake_b, real) if x is not None)
    value = _compute(factory, fake_b, real, singular=constant) - _compute(factory, fake_a, real, singular=constant)
    values = np.empty(rounds, dtype=np.float64)
    with one_blas_thread(np.shape(fake_a)[-1]):
        # one draw of sample indices per round serves both rows
        rounds_drawn = resamples(np.random.default_rng(seed), fake_a, real, rounds, constant=constant)
        for r, (idx, real_idx, singular) in enumerate(rounds_drawn):
            real_r = real[real_idx] if real is not None else None
            shared = real_state(factory, real_r)
            values[r] = (_compute(factory, fake_b[idx], real_r, shared=shared, singular=singular)
                         - _compute(factory, fake_a[idx], real_r, shared=shared, singular=singular))
            if progress is not None:
                progress(1)
    return interval_from_values(value, values, level=level, method=method)


def check_same_plan(plan_a: list[dict[str, Any]], plan_b: list[dict[str, Any]], *, where: str) -> None:
    """Raise unless both plans hold the same (index, prompt, seed) triples: the condition for pairing."""
    key = lambda s: (int(s["index"]), s.get("prompt"), s.get("seed"))  # noqa: E731
    a = sorted(map(key, plan_a))
    b = sorted(map(key, plan_b))
    if len(a) != len(b):
        raise InputError(f"{where}: the plans hold {len(a)} and {len(b)} samples; paired rows need the same plan")
    for (ia, pa, sa), (ib, pb, sb) in zip(a, b):
        if (ia, pa, sa) != (ib, pb, sb):
            field = "index" if ia != ib else ("prompt" if pa != pb else "seed")
            raise InputError(f"{where}: sample {ia} differs in its {field} ({(ia, pa, sa)} against {(ib, pb, sb)}); "
                             "paired rows need the same prompts and seeds")


#: columns of the frame returned by ``paired_frame``
PAIRED_COLUMNS = ["protocol", "metric", "variant", "higher_is_better", "baseline", "generator", "baseline_value",
                  "value", "difference", "ci_low", "ci_high", "verdict", "n_pairs", "interval"]


def _verdict(low: float, high: float, higher_is_better: bool) -> str:
    if low > 0 or high < 0:
        return "better" if (low > 0) == higher_is_better else "worse"
    return "no clear difference"


def paired_frame(
    frame: pd.DataFrame,
    baseline: str,
    *,
    rounds: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    method: IntervalMethod = "percentile",
    metrics: tuple[str, ...] = BOOTSTRAP_METRICS,
    compared: Sequence[str] | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, list[str]]:
    """Paired differences of final measured rows against ``baseline`` on the same protocol and metric.

    ``compared`` names the generators to compare (default: every other one). Each pair costs a bootstrap
    of ``rounds`` metric evaluations, so naming the rows that matter keeps a report over several run
    directories quick. Rows whose plan differs from the baseline's, whose features are missing, or whose
    run used another real set are left out with a message saying why. ``progress`` shows a bar of rounds.
    """
    import evalkit.datasets  # noqa: F401  (registers dataset-specific metrics such as the shapes ones)
    from evalkit.registry import METRICS
    from evalkit.reports.features import load_fake_features, load_plan, load_real_features
    from evalkit.reports.published import normalise_metric
    from evalkit.seeding import sample_seed

    wanted = {normalise_metric(m) for m in metrics}
    measured = frame[(frame["source"] == "measured") & (frame["status"] == "final")]
    measured = measured[[normalise_metric(str(m)) in wanted for m in measured["metric"]]]
    available = set(measured["generator"])
    for option, name in [("--paired", baseline), *(("--paired-with", g) for g in compared or ())]:
        if name not in available:
            known = ", ".join(sorted(set(frame.loc[frame["source"] == "measured", "generator"])))
            raise InputError(f"{option}: no final measured row of generator {name!r} with a metric that has "
                             f"per-sample features; generators: {known}")
    if compared is not None:
        measured = measured[measured["generator"].isin([*compared, baseline])]
    base_rows = measured[measured["generator"] == baseline]
    out, messages = [], []
    groups = []
    for base in base_rows.to_dict("records"):
        others = measured[(measured["protocol"] == base["protocol"]) & (measured["metric"] == base["metric"])
                          & (measured["variant"] == base["variant"]) & (measured["generator"] != baseline)]
        if not others.empty:
            groups.append((base, others.to_dict("records")))
    bar = tqdm(total=sum(len(o) for _, o in groups) * rounds, desc="paired intervals", unit="round",
               disable=not progress)
    for base, others in groups:
        full = f"{base['metric']}:{base['variant']}" if base["variant"] else str(base["metric"])
        cls = METRICS.get(full)
        try:
            fake_a = load_fake_features(base["run_dir"], base["label"], base["protocol"], cls.detector)
            real = load_real_features(base["run_dir"], base["protocol"], cls.detector) if cls.uses_real else None
            plan_a = load_plan(base["run_dir"], base["protocol"])
        except EvalkitError as exc:
            messages.append(f"paired {baseline} / {base['protocol']} / {full}: baseline unusable ({exc})")
            bar.update(len(others) * rounds)
            continue
        for rec in others:
            where = f"paired {rec['generator']} vs {baseline} / {rec['protocol']} / {full}"
            bar.set_postfix_str(f"{rec['generator']} {base['metric']}", refresh=False)
            try:
                with rounds_of_row(bar, rounds):
                    if rec["run_dir"] != base["run_dir"]:
                        check_same_plan(plan_a, load_plan(rec["run_dir"], rec["protocol"]), where=where)
                        if cls.uses_real and not np.array_equal(
                                real, load_real_features(rec["run_dir"], rec["protocol"], cls.detector)):
                            raise InputError(f"{where}: the two runs hold different real-set features")
                    fake_b = load_fake_features(rec["run_dir"], rec["label"], rec["protocol"], cls.detector)
                    row_seed = sample_seed(seed, 0, f"paired|{baseline}|{rec['generator']}|{rec['protocol']}|{full}")
                    iv = paired_bootstrap(cls, fake_a, fake_b, real, rounds=rounds, seed=row_seed, level=level,
                                          method=method, progress=bar.update)
            except EvalkitError as exc:
                messages.append(f"{where}: left out ({exc})")
                continue
            hib = bool(base["higher_is_better"])
            out.append({
                "protocol": base["protocol"], "metric": base["metric"], "variant": base["variant"],
                "higher_is_better": hib, "baseline": baseline, "generator": rec["generator"],
                "baseline_value": base["value"], "value": rec["value"], "difference": iv.value,
                "ci_low": iv.low, "ci_high": iv.high, "verdict": _verdict(iv.low, iv.high, hib),
                "n_pairs": len(fake_a),
                "interval": f"{level:.0%} paired bootstrap ({iv.method}, {iv.rounds} rounds, seed {seed})",
            })
    bar.close()
    return pd.DataFrame(out, columns=PAIRED_COLUMNS), messages


def _signed(x: float, decimals: int) -> str:
    return f"{x:+.{decimals}f}"


def paired_table(paired: pd.DataFrame) -> Table | None:
    """One section per protocol; a cell is ``difference [low, high]``, bold where the interval excludes 0."""
    from evalkit.reports.leaderboard import column_label
    from evalkit.reports.tables import decimals_for

    if paired.empty:
        return None
    baseline = str(paired["baseline"].iloc[0])
    metric_keys = list(dict.fromkeys(zip(paired["metric"], paired["variant"], paired["higher_is_better"])))
    columns = [Column(label=column_label(m, v, h)) for m, v, h in metric_keys]
    sections = []
    for protocol, rows in paired.groupby("protocol", sort=False):
        section = Section(str(protocol))
        for gen in dict.fromkeys(rows["generator"]):
            cells = []
            for m, v, _ in metric_keys:
                hit = rows[(rows["generator"] == gen) & (rows["metric"] == m) & (rows["variant"] == v)]
                if hit.empty:
                    cells.append(Cell(text="–"))
                    continue
                r = hit.iloc[0]
                dec = decimals_for([r["difference"], r["ci_low"], r["ci_high"]])
                text = f"{_signed(r['difference'], dec)} [{_signed(r['ci_low'], dec)}, {_signed(r['ci_high'], dec)}]"
                cells.append(Cell(text=text, sort_value=r["difference"], bold=r["verdict"] != "no clear difference"))
            section.rows.append((Cell(text=str(gen)), cells))
        sections.append(section)
    level = paired["interval"].iloc[0]
    notes = [f"Difference from {baseline} on the same prompts and seeds, with its {level} interval.",
             "Bold: the interval excludes 0 (a difference in either direction; arrows give the better side)."]
    return Table(title=f"Paired differences against {baseline}", row_header="Generator", columns=columns,
                 sections=sections, notes=notes)
