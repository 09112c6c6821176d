"""The main job end to end: `evalkit quickstart` and `evalkit sanity shapes` on the shipped weights.

Small sample counts keep this to about a minute on two CPU cores; the full-size quickstart is the
README's first command. The sanity test asserts the metric expectations of ``evalkit.sanity`` (the
oracle is the floor, degradations are detected, noise is monotone) with the shipped detectors.
"""

from __future__ import annotations

import sqlite3

import pytest

from evalkit.cli import main

STEPS = ["--set", "generators.1.sweep.steps=[2, 3]", "--set", "generators.2.sweep.steps=[2]",
         "--set", "generators.3.params.base.steps=2", "--set", "generators.3.params.upsampler.steps=2"]


@pytest.fixture(scope="module")
def quickstart_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart") / "run"
    code = main(["quickstart", "--out", str(out), "--samples", "12", "--bootstrap", "10", "--no-progress", *STEPS])
    assert code == 0
    return out


def test_quickstart_writes_results_for_every_generator_and_metric(quickstart_dir):
    with sqlite3.connect(quickstart_dir / "results.sqlite") as db:
        rows = db.execute("SELECT generator, protocol, metric FROM results").fetchall()
    generators = {g for g, _, _ in rows}
    metrics = {m for _, _, m in rows}
    assert {"oracle", "fit-tiny[steps=2]", "unet-tiny[steps=2]", "oracle-frozen", "fit-cascade"} <= generators
    assert {"fvd", "fid", "is", "clipsim"} <= {m.split(":")[0] for m in metrics}, metrics
    # the 72x128 cascade runs on shapes-hd only, the 36x64 stages on shapes only, the oracle on both
    on = {g: {p for g2, p, _ in rows if g2 == g} for g in generators}
    assert on["fit-cascade"] == {"shapes-hd"} and on["fit-tiny[steps=2]"] == {"shapes"}
    assert on["oracle"] == {"shapes", "shapes-hd"}


def test_quickstart_report_has_tables_plots_and_html(quickstart_dir):
    report = quickstart_dir / "report"
    markdown = (report / "report.md").read_text()
    assert "fit-tiny" in markdown and "unet-tiny" in markdown
    assert (report / "leaderboard.tex").read_text().count("\\toprule") >= 1
    assert list(report.glob("images/speed-*.png")), sorted(p.name for p in (report / "images").iterdir())
    assert "<img" in (report / "report.html").read_text()
    assert list(report.glob("images/samples-*fit-tiny*.png"))


def test_quickstart_cost_table_puts_training_and_sampling_cost_side_by_side(quickstart_dir):
    import pandas as pd

    costs = pd.read_csv(quickstart_dir / "report" / "cost.csv").set_index("generator")
    from evalkit.generators.checkpoints import training_cost
    from evalkit.generators.snapvideo import read_weights

    for label, name in (("fit-tiny[steps=2]", "fit-tiny-shapes"), ("unet-tiny[steps=2]", "unet-tiny-shapes")):
        row = costs.loc[label]
        _, meta = read_weights(name)  # the training record travels in the shipped file's metadata
        cost = training_cost(meta)    # with the runs it was continued from (init_from)
        assert row["train_steps"] == cost["steps"] and row["train_samples"] == cost["samples"] == 8 * cost["steps"]
        assert row["train_wall_min"] == pytest.approx(cost["wall_s"] / 60) and row["parameters"] > 0
        assert row["gen_seconds_per_video"] > 0 and row["nfe_per_video"] == (2 * 2 - 1) * 2  # Heun, guidance
    assert costs.loc["fit-tiny[steps=3]", "nfe_per_video"] == (2 * 3 - 1) * 2
    assert "| Generator |" in (quickstart_dir / "report" / "report.md").read_text().split("Cost", 1)[1]


def test_quickstart_resume_recomputes_nothing(quickstart_dir, capsys):
    chunks = sorted(p.stat().st_mtime_ns for p in quickstart_dir.glob("features/**/*.npz"))
    code = main(["quickstart", "--out", str(quickstart_dir), "--samples", "12", "--resume", "--no-report",
                 "--no-progress", *STEPS])
    assert code == 0
    assert sorted(p.stat().st_mtime_ns for p in quickstart_dir.glob("features/**/*.npz")) == chunks


def test_sanity_suite_passes_on_shapes_with_the_shipped_detectors(tmp_path, capsys):
    code = main(["sanity", "shapes", "--samples", "192", "--out", str(tmp_path / "sanity"), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "FAIL" not in printed
