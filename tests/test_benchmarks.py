"""The benchmark scripts run end to end at toy sizes, and their value checks hold (no timing is asserted)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture()
def bench_path(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    yield
    for name in ("metrics_throughput", "sampling", "detector_compile", "allocator", "paired_bootstrap"):
        sys.modules.pop(name, None)


def test_metrics_throughput_values_match_the_references(bench_path, tmp_path):
    import metrics_throughput

    out = tmp_path / "metrics.json"
    code = metrics_throughput.main(["--videos", "3", "--batch", "2", "--frames", "10", "--size", "32",
                                    "--images", "8", "--file-videos", "2", "--file-size", "32", "--mem-sizes", "2",
                                    "--calib-clips", "2", "--threads", "1", "--ref-workers", "0", "--skip", "memory",
                                    "--frechet-samples", "2100",
                                    "--out", str(out)])
    result = json.loads(out.read_text())
    assert code == 0, result["checks"]
    extraction = {"fvd-styleganv", "fvd-cd-fvd-i3d", "fvd-files-cd-fvd-i3d", "fid-pytorch-fid"}
    assert {c["benchmark"] for c in result["checks"]} == extraction | {"frechet-2048"}
    # both detector forms were compared against the reference
    assert all("form_rel_diff" in c for c in result["checks"] if c["benchmark"] in extraction)
    assert any("fast form" in r["impl"] for r in result["rows"])  # the CPU default
    frechet = next(c for c in result["checks"] if c["benchmark"] == "frechet-2048")
    assert frechet["trace_route"] == "eigenvalues" and frechet["value_rel_diff"] <= 1e-6
    values = [r["value"] for r in result["rows"] if r["value"] is not None]
    assert min(abs(v) for v in values) > 1e-3  # calibrated detectors: the compared values are not ~0


def test_sampling_benchmark_counts_evaluations(bench_path, tmp_path):
    import sampling

    result = sampling.main(["--steps", "2", "--batch", "2", "--repeats", "1", "--threads", "1",
                            "--cascade-steps", "0", "0", "--out", str(tmp_path / "sampling.json")])
    modes = result["modes"]
    assert modes["no guidance"]["evaluations_per_video"] == 3  # 2N - 1 Heun evaluations
    assert modes["guidance, batched"]["net_calls"] == 3
    assert modes["guidance, two forwards"]["net_calls"] == 6
    assert modes["guidance, batched"]["evaluations"] == modes["guidance, two forwards"]["evaluations"] == 12



def test_allocator_benchmark_gives_the_same_frames_under_both_settings(bench_path, tmp_path):
    import platform

    import allocator

    out = tmp_path / "allocator.json"
    assert allocator.main(["--batch", "2", "--steps", "1", "--repeats", "1", "--threads", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["same_frames"] and len(result["runs"]) == 2
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert result["rows"]["tuned"]["applied"] is glibc


def test_paired_bootstrap_benchmark_gives_the_plain_rounds_interval(bench_path, tmp_path):
    import paired_bootstrap

    out = tmp_path / "paired_bootstrap.json"
    assert paired_bootstrap.main(["--rounds", "2", "--repeats", "1", "--dims", "16", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert set(rows) == {"fvd:shapes", "fid:shapes"} and all(r["identical"] for r in rows.values())


@pytest.mark.heavy
def test_detector_compile_gives_the_same_features(bench_path, tmp_path):
    import detector_compile  # inductor compiles Inception: about a minute on two cores

    out = tmp_path / "compile.json"
    assert detector_compile.main(["--batch", "1", "--size", "32", "--repeats", "1", "--threads", "1",
                                  "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["form"] for r in result["rows"]] == ["fast form", "fast form + torch.compile"]
    assert result["feature_max_rel_diff"] < 1e-4
