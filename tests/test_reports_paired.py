"""Paired differences: scipy's paired bootstrap as the reference, and what pairing buys over two intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from evalkit.cli import main
from evalkit.errors import InputError
from evalkit.reports.bootstrap import bootstrap_interval
from evalkit.reports.paired import check_same_plan, paired_bootstrap
from evalkit.reports.testing import (
    GaussianFrechet,
    MeanScore,
    use_test_metrics,
    write_example_run,
    write_plan,
)


def _pairs(n: int = 200, shift: float = 0.01, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose spread is mostly per prompt (shared by both rows) plus a small per-row effect."""
    rng = np.random.default_rng(seed)
    prompt_effect = rng.normal(0.25, 0.1, (n, 1))
    a = prompt_effect + rng.normal(0, 0.01, (n, 1))
    b = prompt_effect + shift + rng.normal(0, 0.01, (n, 1))
    return a, b


def test_mean_difference_interval_matches_scipy_paired_bootstrap():
    a, b = _pairs()
    ours = paired_bootstrap(MeanScore, a, b, rounds=4000, seed=1, method="percentile")
    ref = scipy.stats.bootstrap((a[:, 0], b[:, 0]), lambda x, y: y.mean() - x.mean(), paired=True,
                                vectorized=False, n_resamples=4000, method="percentile", random_state=2)
    assert ours.value == pytest.approx(float(b.mean() - a.mean()), abs=1e-12)
    width = ref.confidence_interval.high - ref.confidence_interval.low
    # two Monte Carlo estimates of the same quantiles: agree to a tenth of the interval's width
    assert abs(ours.low - ref.confidence_interval.low) < 0.1 * width
    assert abs(ours.high - ref.confidence_interval.high) < 0.1 * width
    assert ours.std == pytest.approx(ref.standard_error, rel=0.1)


def test_pairing_resolves_a_shift_that_separate_intervals_do_not():
    a, b = _pairs(shift=0.01)
    paired = paired_bootstrap(MeanScore, a, b, rounds=1000, seed=0)
    assert paired.low > 0  # b is better, and the paired interval says so
    sep_a = bootstrap_interval(MeanScore, a, rounds=1000, seed=0)
    sep_b = bootstrap_interval(MeanScore, b, rounds=1000, seed=1)
    assert sep_a.high > sep_b.low  # the two separate intervals overlap


def test_frechet_difference_is_the_difference_of_the_two_values_and_zero_for_identical_rows():
    rng = np.random.default_rng(3)
    real = rng.standard_normal((150, 3))
    a = rng.standard_normal((120, 3)) + 0.3
    b = a * 1.2 + 0.1
    iv = paired_bootstrap(GaussianFrechet, a, b, real, rounds=20, seed=0)

    def fd(x):
        m = GaussianFrechet()
        m.update(x, real=False)
        m.update(real, real=True)
        return m.compute().value

    assert iv.value == pytest.approx(fd(b) - fd(a), rel=1e-12)
    same = paired_bootstrap(GaussianFrechet, a, a.copy(), real, rounds=20, seed=0)
    assert same.value == 0.0 and same.low == 0.0 and same.high == 0.0


def test_rows_of_different_sizes_or_without_real_set_are_refused():
    a, b = _pairs(n=50)
    with pytest.raises(InputError, match="same samples"):
        paired_bootstrap(MeanScore, a, b[:40])
    with pytest.raises(InputError, match="no real features"):
        paired_bootstrap(GaussianFrechet, a, b)


def test_plans_must_share_prompts_and_seeds():
    plan = [{"index": i, "prompt": f"p{i}", "seed": i} for i in range(4)]
    check_same_plan(plan, list(reversed(plan)), where="x")
    other = [dict(s) for s in plan]
    other[2]["seed"] = 99
    with pytest.raises(InputError, match="sample 2 differs in its seed"):
        check_same_plan(plan, other, where="x")
    with pytest.raises(InputError, match="4 and 3 samples"):
        check_same_plan(plan, plan[:3], where="x")


def test_report_paired_table_and_files(tmp_path, monkeypatch, capsys):
    use_test_metrics(monkeypatch)
    write_example_run(tmp_path / "run", steps=(8, 16, 32))
    assert main(["report", str(tmp_path / "run"), "--format", "md,csv", "--paired", "fit[steps=8]",
                 "--paired-rounds", "50"]) == 0
    out_dir = tmp_path / "run" / "report"
    paired = pd.read_csv(out_dir / "paired.csv")
    # every final row against the baseline, per metric; the partial unet row is not compared
    assert sorted(set(paired["generator"])) == ["fit[steps=16]", "fit[steps=32]"]
    assert sorted(set(paired["metric"])) == ["clipsim", "fvd"]
    results = pd.read_csv(out_dir / "results.csv")
    for rec in paired.to_dict("records"):
        value = results[(results["generator"] == rec["generator"]) & (results["metric"] == rec["metric"])]["value"]
        base = results[(results["generator"] == "fit[steps=8]") & (results["metric"] == rec["metric"])]["value"]
        # features are stored as float32, the results were computed from the float64 arrays
        assert rec["difference"] == pytest.approx(float(value.iloc[0]) - float(base.iloc[0]), rel=1e-6)
        excludes_zero = rec["ci_low"] > 0 or rec["ci_high"] < 0
        assert (rec["verdict"] != "no clear difference") == excludes_zero
    assert "Paired differences against fit[steps=8]" in (out_dir / "report.md").read_text()


def test_report_paired_leaves_out_a_run_with_another_plan(tmp_path, monkeypatch, capsys):
    use_test_metrics(monkeypatch)
    write_example_run(tmp_path / "a", steps=(8,), partial=False, run_id="a")
    write_example_run(tmp_path / "b", steps=(16,), partial=False, run_id="b", rng_seed=1)
    write_plan(tmp_path / "b", "ucf101-zeroshot/test",
               [{"index": i, "prompt": "another prompt", "seed": i} for i in range(48)])
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "rep"),
                 "--format", "md,csv", "--paired", "fit[steps=8]", "--paired-rounds", "10"]) == 0
    out = capsys.readouterr().out
    assert "sample 0 differs in its prompt" in out
    assert not (tmp_path / "rep" / "paired.csv").exists()


def test_report_paired_unknown_baseline_exits_2(tmp_path, monkeypatch, capsys):
    use_test_metrics(monkeypatch)
    write_example_run(tmp_path / "run", steps=(8, 16))
    assert main(["report", str(tmp_path / "run"), "--format", "md", "--paired", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no final measured row of generator 'nope'" in err and "fit[steps=8]" in err


def test_report_paired_with_compares_only_the_named_rows(tmp_path, monkeypatch, capsys):
    use_test_metrics(monkeypatch)
    write_example_run(tmp_path / "run", steps=(8, 16, 32))
    assert main(["report", str(tmp_path / "run"), "--format", "csv", "--paired", "fit[steps=8]",
                 "--paired-with", "fit[steps=32]", "--paired-rounds", "20"]) == 0
    paired = pd.read_csv(tmp_path / "run" / "report" / "paired.csv")
    assert set(paired["generator"]) == {"fit[steps=32]"}
    assert sorted(set(paired["metric"])) == ["clipsim", "fvd"]
    # the same pair, computed with every row compared, gives the same interval (same per-row seed)
    assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "all"), "--format", "csv",
                 "--paired", "fit[steps=8]", "--paired-rounds", "20"]) == 0
    every = pd.read_csv(tmp_path / "all" / "paired.csv")
    every = every[every["generator"] == "fit[steps=32]"].reset_index(drop=True)
    pd.testing.assert_frame_equal(paired.reset_index(drop=True), every)


def test_report_paired_with_refuses_unknown_rows_and_a_missing_baseline(tmp_path, monkeypatch, capsys):
    use_test_metrics(monkeypatch)
    write_example_run(tmp_path / "run", steps=(8, 16))
    assert main(["report", str(tmp_path / "run"), "--format", "md", "--paired", "fit[steps=8]",
                 "--paired-with", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--paired-with" in err and "'nope'" in err and "fit[steps=16]" in err
    assert main(["report", str(tmp_path / "run"), "--format", "md", "--paired-with", "fit[steps=16]"]) == 2
    assert "name the baseline with --paired" in capsys.readouterr().err


def test_report_shows_bootstrap_progress_unless_told_not_to(tmp_path, monkeypatch, capsys):
    use_test_metrics(monkeypatch)
    write_example_run(tmp_path / "run", steps=(8, 16))
    args = ["report", str(tmp_path / "run"), "--format", "csv", "--bootstrap", "5", "--paired", "fit[steps=8]",
            "--paired-rounds", "7"]
    assert main(args) == 0
    err = capsys.readouterr().err
    # five measured rows (FVD and CLIPSIM of two generators, a partial FVD) of 5 rounds each; one final
    # pair per metric of 7 rounds each
    assert "bootstrap intervals" in err and "25/25" in err
    assert "paired intervals" in err and "14/14" in err
    with_bars = pd.read_csv(tmp_path / "run" / "report" / "paired.csv")
    assert main([*args, "--no-progress"]) == 0
    assert "intervals" not in capsys.readouterr().err
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "run" / "report" / "paired.csv"), with_bars)


def test_a_row_that_fails_still_counts_all_its_rounds_on_the_bar():
    import io

    from tqdm import tqdm

    from evalkit.errors import InputError
    from evalkit.reports.bootstrap import rounds_of_row

    bar = tqdm(total=30, file=io.StringIO())
    with rounds_of_row(bar, 10):
        bar.update(10)                       # a row that ran all its rounds adds nothing more
    assert bar.n == 10
    with pytest.raises(InputError), rounds_of_row(bar, 10):
        bar.update(3)
        raise InputError("failed after 3 rounds")
    assert bar.n == 20
    with pytest.raises(InputError), rounds_of_row(bar, 10):
        raise InputError("features missing")  # before its first round
    assert bar.n == 30
