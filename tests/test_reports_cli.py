"""`evalkit report`: files written, counts printed, and clear errors (exit 2) for bad input."""

from __future__ import annotations

import pytest

from evalkit.cli import main
from evalkit.reports.testing import manifest_entry, result_row, use_test_metrics, write_example_run, write_run


def test_report_writes_requested_formats(tmp_path, monkeypatch, capsys):
    use_test_metrics(monkeypatch)
    write_example_run(tmp_path / "run", steps=(8, 16))
    assert main(["report", str(tmp_path / "run"), "--format", "md,csv", "--bootstrap", "10", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "1 partial (not final)" in out
    names = {p.name for p in (tmp_path / "run" / "report").iterdir()}
    assert {"report.md", "leaderboard.csv", "results.csv", "ablation.csv", "breakdown.csv"} <= names
    assert "report.html" not in names and "leaderboard.tex" not in names
    md = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "95% bootstrap (basic, 10 rounds, seed 3)" in md


def test_published_none_and_all(tmp_path, capsys):
    write_run(tmp_path / "run", run_id="r", entries=[manifest_entry("fit", "ucf101-zeroshot/x")],
              rows=[result_row("fit", "ucf101-zeroshot/x", "fvd:v", 1.0, run_id="r")])
    assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "a"), "--format", "md",
                 "--published", "none"]) == 0
    assert "Snap Video" not in (tmp_path / "a" / "report.md").read_text()
    assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "b"), "--format", "md",
                 "--published", "all"]) == 0
    text = (tmp_path / "b" / "report.md").read_text()
    assert "Snap Video (512x288)" in text and "VideoFusion" in text


@pytest.mark.parametrize("case, message", [
    ("missing", "not a run directory"),
    ("no_results", "no results file"),
    ("corrupted", "not a readable results database"),
    ("no_common", "no protocol in common"),
    ("format", "--format: expected a comma-separated subset"),
])
def test_bad_input_exits_2_with_message(tmp_path, capsys, case, message):
    run = tmp_path / "run"
    args = ["report", str(run)]
    if case != "missing":
        rows = [] if case == "no_results" else [result_row("fit", "shapes", "fvd:v", 1.0, run_id="r")]
        write_run(run, run_id="r", entries=[manifest_entry("fit", "shapes")], rows=rows)
    if case == "corrupted":
        (run / "results.sqlite").write_bytes(b"\x00garbage" * 64)
    if case == "no_common":
        write_run(tmp_path / "other", run_id="o", entries=[manifest_entry("fit", "msrvtt-zeroshot/x")],
                  rows=[result_row("fit", "msrvtt-zeroshot/x", "fvd:v", 1.0, run_id="o")])
        args.append(str(tmp_path / "other"))
    if case == "format":
        args += ["--format", "md,pdf"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("evalkit report: error:") and message in err
