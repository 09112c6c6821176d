"""Run directories -> frames: counts, partial evaluations and clear errors for bad input."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from evalkit.errors import RunDirError
from evalkit.reports.features import load_fake_features, load_plan, load_real_features
from evalkit.reports.load import common_protocols, load_run, load_runs, results_frame, split_protocol
from evalkit.reports.testing import manifest_entry, result_row, write_example_run, write_features, write_run

P = "ucf101-zeroshot/test"


def test_frame_joins_manifest_counts_timings_and_settings(tmp_path):
    write_example_run(tmp_path, steps=(8, 16))
    run = load_run(tmp_path)
    frame = run.results
    assert set(frame["generator"]) == {"fit[steps=8]", "fit[steps=16]", "unet"}
    row = frame[(frame["generator"] == "fit[steps=16]") & (frame["metric"] == "fvd")].iloc[0]
    assert row["status"] == "final"
    assert row["gen_seconds_per_video"] == pytest.approx(0.32)
    assert row["nfe_per_video"] == 32
    assert row["config"]["params.steps"] == 16
    assert row["config"]["run.seed"] == 0
    assert "run.batch_size" not in row["config"]  # never changes a number
    assert row["swept"] == {"steps": 16}
    assert not run.complete


def test_half_finished_evaluation_is_partial_with_counts(tmp_path):
    # the manifest says running (20 of 48) even though the row claims to be final
    entries = [manifest_entry("unet", P, n_samples=48, n_done=20, status="running")]
    write_run(tmp_path, run_id="r", entries=entries, rows=[result_row("unet", P, "fvd:x", 1.0, run_id="r")])
    row = load_run(tmp_path).results.iloc[0]
    assert (row["status"], row["n_done"], row["n_samples"]) == ("partial", 20, 48)


def test_partial_row_stays_partial(tmp_path):
    entries = [manifest_entry("fit", P, n_samples=8)]
    rows = [result_row("fit", P, "fvd:x", 1.0, run_id="r", status="partial")]
    write_run(tmp_path, run_id="r", entries=entries, rows=rows)
    assert load_run(tmp_path).results.iloc[0]["status"] == "partial"


def test_missing_run_directory(tmp_path):
    with pytest.raises(RunDirError, match="not a run directory"):
        load_run(tmp_path / "nope")


def test_run_without_results_names_the_file_and_counts(tmp_path):
    write_run(tmp_path, run_id="r", entries=[manifest_entry("fit", P, status="pending", n_done=0)], rows=[])
    with pytest.raises(RunDirError, match=r"results\.sqlite: no results file.*1 evaluation\(s\).*0 done"):
        load_run(tmp_path)


def test_empty_results_table(tmp_path):
    write_run(tmp_path, run_id="r", entries=[manifest_entry("fit", P)], rows=[])
    sqlite3.connect(tmp_path / "results.sqlite").executescript(
        "CREATE TABLE results (run_id TEXT, generator TEXT, protocol TEXT, metric TEXT, variant TEXT, value REAL,"
        " std REAL, ci_low REAL, ci_high REAL, n_real INT, n_fake INT, higher_is_better INT, detector TEXT,"
        " weights_digest TEXT, comparable INT, config_hash TEXT, code_version TEXT, wall_time_s REAL,"
        " started TEXT, finished TEXT, status TEXT, details TEXT)")
    with pytest.raises(RunDirError, match="results table is empty"):
        load_run(tmp_path)


def test_corrupted_results_file(tmp_path):
    write_run(tmp_path, run_id="r", entries=[manifest_entry("fit", P)], rows=[result_row("fit", P, "fvd:x", 1.0)])
    (tmp_path / "results.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(RunDirError, match=r"results\.sqlite: not a readable results database"):
        load_run(tmp_path)


def test_corrupted_manifest(tmp_path):
    write_run(tmp_path, run_id="r", entries=[manifest_entry("fit", P)], rows=[result_row("fit", P, "fvd:x", 1.0)])
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(RunDirError, match=r"manifest\.json: not valid JSON"):
        load_run(tmp_path)
    (tmp_path / "manifest.json").write_text('{"entries": [{"generator": "fit", "protocol": "p", "status": "odd"}]}')
    with pytest.raises(RunDirError, match=r"entries\[0\]\.status must be one of"):
        load_run(tmp_path)


def test_runs_without_common_protocol(tmp_path):
    write_run(tmp_path / "a", run_id="a", entries=[manifest_entry("fit", "shapes")],
              rows=[result_row("fit", "shapes", "fvd:x", 1.0, run_id="a")])
    write_run(tmp_path / "b", run_id="b", entries=[manifest_entry("fit", P)],
              rows=[result_row("fit", P, "fvd:x", 1.0, run_id="b")])
    runs = load_runs([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(RunDirError, match="no protocol in common.*shapes.*ucf101-zeroshot/test"):
        common_protocols(runs)


def test_same_label_in_two_runs_stays_distinct(tmp_path):
    for name in ("a", "b"):
        write_run(tmp_path / name, run_id=name, entries=[manifest_entry("fit", P)],
                  rows=[result_row("fit", P, "fvd:x", 1.0, run_id=name)])
    frame = results_frame(load_runs([tmp_path / "a", tmp_path / "b"]))
    assert sorted(frame["generator"]) == ["a/fit", "b/fit"]
    assert set(frame["label"]) == {"fit"}
    with pytest.raises(RunDirError, match="run id 'a' is also"):
        write_run(tmp_path / "c", run_id="a", entries=[manifest_entry("fit", P)],
                  rows=[result_row("fit", P, "fvd:x", 1.0, run_id="a")])
        load_runs([tmp_path / "a", tmp_path / "c"])


def test_features_are_ordered_by_index_and_checked(tmp_path):
    index = np.array([5, 1, 3, 0, 4, 2])
    feats = index[:, None].astype(np.float32) * np.ones((1, 3), np.float32)
    write_features(tmp_path, "gen/x", P, index, {"det": feats}, chunk_size=4)
    assert (tmp_path / "features" / "gen__x" / "ucf101-zeroshot__test").is_dir()
    got = load_fake_features(tmp_path, "gen/x", P, "det")
    np.testing.assert_array_equal(got[:, 0], np.arange(6))
    with pytest.raises(RunDirError, match="missing array 'other'"):
        load_fake_features(tmp_path, "gen/x", P, "other")
    write_features(tmp_path, "dup", P, np.array([0, 1, 1]), {"det": feats[:3]}, chunk_size=2)
    with pytest.raises(RunDirError, match="more than one chunk"):
        load_fake_features(tmp_path, "dup", P, "det")
    with pytest.raises(RunDirError, match="no real-set features"):
        load_real_features(tmp_path, P, "det")
    with pytest.raises(RunDirError, match="no sample plan"):
        load_plan(tmp_path, P)


def test_eval_resolution_protocol_reads_suffixed_keys(tmp_path):
    assert split_protocol("ucf@288x288") == ("ucf", "@288x288")
    feats = np.ones((2, 3), np.float32)
    write_features(tmp_path, "fit", "ucf", np.arange(2), {"det": feats, "det@288x288": 2 * feats})
    assert load_fake_features(tmp_path, "fit", "ucf@288x288", "det")[0, 0] == 2.0
    assert load_fake_features(tmp_path, "fit", "ucf", "det")[0, 0] == 1.0
