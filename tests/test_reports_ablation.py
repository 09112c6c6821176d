"""Ablation tables from configuration differences; mean ± spread over repeated seeds."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.reports.ablation import ablation_frame, ablation_keys, aggregate_seeds, varying_keys
from evalkit.reports.build import ablation_table
from evalkit.reports.load import load_run, load_runs, results_frame
from evalkit.reports.tables import to_markdown
from evalkit.reports.testing import manifest_entry, result_row, write_example_run, write_run

P = "shapes"


def test_varying_keys():
    configs = [{"generator": "fit", "params.steps": 8, "params.g": 1.0, "run.seed": 0},
               {"generator": "fit", "params.steps": 16, "params.g": 1.0, "run.seed": 1},
               {"generator": "fit", "params.steps": 16, "params.g": 1.0, "params.extra": True, "run.seed": 2}]
    assert varying_keys(configs) == ["params.steps", "params.extra"]
    assert varying_keys(configs, include_seeds=True) == ["params.steps", "run.seed", "params.extra"]


def test_ablation_columns_come_from_config_differences(tmp_path):
    write_example_run(tmp_path, steps=(32, 8, 16))
    table = ablation_frame(load_run(tmp_path).results)
    # guidance is the same for every fit generator but unset for unet: a difference too
    assert ablation_keys(table) == ["generator", "params.steps", "params.guidance"]
    assert list(table["params.steps"]) == [8, 16, 32, 50]  # sorted by the swept value
    assert table.loc["unet", "generator"] == "unet"
    col = f"{'ucf101-zeroshot/test'} | fvd:test"
    assert col in table.columns and np.isfinite(table.loc["fit[steps=8]", col])


def test_protocol_overrides_and_run_settings_become_columns(tmp_path):
    for name, n in (("a", 64), ("b", 128)):
        config = {"generators": [{"name": "fit"}], "protocols": [P], "seed": 0,
                  "protocol_overrides": {P: [f"num_samples={n}"]}}
        write_run(tmp_path / name, run_id=name, config=config, entries=[manifest_entry(f"fit-{name}", P, generator_name="fit")],
                  rows=[result_row(f"fit-{name}", P, "fvd:x", float(n), run_id=name)])
    table = ablation_frame(results_frame(load_runs([tmp_path / "a", tmp_path / "b"])))
    assert ablation_keys(table) == ["protocol.num_samples"]
    assert table.loc["fit-b", "protocol.num_samples"] == 128


def test_no_differences_gives_empty_table(tmp_path):
    write_run(tmp_path, run_id="r", entries=[manifest_entry("fit", P)], rows=[result_row("fit", P, "fvd:x", 1.0)])
    assert ablation_frame(load_run(tmp_path).results).empty


def test_repeated_seeds_average_within_a_run(tmp_path):
    write_example_run(tmp_path, steps=(8, 16), seeds=(0, 1, 2), partial=False)
    frame = load_run(tmp_path).results
    agg = aggregate_seeds(frame)
    fvd = agg[agg["metric"] == "fvd"].set_index("generator")
    assert sorted(fvd.index) == ["fit[steps=16]", "fit[steps=8]"]
    raw = frame[(frame["metric"] == "fvd") & frame["generator"].str.startswith("fit[steps=8,")]["value"]
    row = fvd.loc["fit[steps=8]"]
    assert row["value"] == pytest.approx(raw.mean())
    assert row["std"] == pytest.approx(raw.std(ddof=1))
    assert row["n_seeds"] == 3 and row["interval"] == "seeds"
    assert np.isnan(row["ci_low"])


def test_repeated_seeds_across_runs(tmp_path):
    for seed, value in ((0, 10.0), (1, 12.0)):
        config = {"generators": [{"name": "fit"}], "protocols": [P], "seed": seed}
        write_run(tmp_path / f"s{seed}", run_id=f"s{seed}", config=config, entries=[manifest_entry("fit", P)],
                  rows=[result_row("fit", P, "fvd:x", value, run_id=f"s{seed}")])
    frame = results_frame(load_runs([tmp_path / "s0", tmp_path / "s1"]))
    agg = aggregate_seeds(frame)
    assert len(agg) == 1
    row = agg.iloc[0]
    assert row["generator"] == "fit" and row["value"] == 11.0 and row["std"] == pytest.approx(np.sqrt(2.0))
    # a differing non-seed setting is not averaged away
    config = {"generators": [{"name": "fit"}], "protocols": [P], "seed": 2}
    write_run(tmp_path / "s2", run_id="s2", config=config, entries=[manifest_entry("fit", P, params={"steps": 4})],
              rows=[result_row("fit", P, "fvd:x", 99.0, run_id="s2")])
    agg = aggregate_seeds(results_frame(load_runs([tmp_path / "s0", tmp_path / "s1", tmp_path / "s2"])))
    assert sorted(agg["value"]) == [11.0, 99.0]


def test_rendered_ablation_marks_partial_and_best(tmp_path):
    write_example_run(tmp_path, steps=(8, 32))
    frame = aggregate_seeds(load_run(tmp_path).results)
    md = to_markdown(ablation_table(ablation_frame(frame), frame))
    assert "‡" in md and "params.steps" in md
    best = frame[(frame["metric"] == "fvd") & (frame["status"] == "final")]["value"].min()
    assert f"**{best:.4f}**" in md  # values below 1 in this column: four decimals
