"""The runner: end to end on the toy plugin, resume after SIGKILL, world size 1 vs 2, run-dir guards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import toy_plugin

from evalkit.cli import main
from evalkit.errors import RunDirError
from evalkit.rundir import REAL, RunDir, RunLock
from evalkit.store import read_results

TESTS = Path(__file__).parent


def values(run_dir: Path) -> dict[tuple, float]:
    return {(r.generator, r.protocol, r.metric, r.variant): r.value for r in read_results(run_dir / "results.sqlite")}


def env(**extra: str) -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = str(TESTS) + os.pathsep + out.get("PYTHONPATH", "")
    out["OMP_NUM_THREADS"] = "1"
    out.update(extra)
    return out


def cli(*args: str, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TESTS / "toy_plugin.py"), *args], env=env(**extra_env),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture()
def toy(tmp_path: Path):
    proto = toy_plugin.write_protocol(tmp_path)
    return tmp_path, toy_plugin.write_run_config(tmp_path, proto)


def test_run_end_to_end(toy, capsys):
    tmp, config = toy
    out = tmp / "run"
    assert main(["run", str(config), "--out", str(out), "--no-progress"]) == 0
    rows = read_results(out / "results.sqlite")
    got = {(r.generator, r.protocol) for r in rows}
    assert got == {("oracle", "toy"), ("oracle", "toy@6x6"), ("oracle-noise", "toy"), ("oracle-noise", "toy@6x6")}
    by = {(r.generator, r.protocol): r for r in rows}
    assert all(r.n_fake == 21 and r.n_real == 23 and r.status == "final" for r in rows)
    # the degraded generator is clearly worse than the oracle
    assert by[("oracle-noise", "toy")].value > 5 * by[("oracle", "toy")].value
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert len((out / "plans" / "toy.jsonl").read_text().splitlines()) == 21
    assert by[("oracle", "toy")].details["gen_seconds_per_video"] >= 0
    assert "oracle-noise" in capsys.readouterr().out


def test_existing_dir_needs_resume_and_same_config(toy):
    tmp, config = toy
    out = tmp / "run"
    assert main(["run", str(config), "--out", str(out), "--no-progress"]) == 0
    assert main(["run", str(config), "--out", str(out), "--no-progress"]) == 2
    assert main(["run", str(config), "--out", str(out), "--resume", "--set", "batch_size=2", "--no-progress"]) == 2
    # resuming a finished run with the same config recomputes nothing and keeps the numbers
    before = values(out)
    assert main(["run", str(config), "--out", str(out), "--resume", "--no-progress"]) == 0
    assert values(out) == before


def test_lock_refuses_a_second_writer(tmp_path):
    lock = RunLock(tmp_path)
    lock.acquire()
    try:
        with pytest.raises(RunDirError, match="lock held"):
            RunLock(tmp_path).acquire()
    finally:
        lock.release()


def _kill_when_chunks(proc: subprocess.Popen, folder: Path, n: int, timeout: float = 120) -> int:
    start = time.time()
    while time.time() - start < timeout:
        done = len(list(folder.glob("chunk-*.npz"))) if folder.is_dir() else 0
        if done >= n:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return done
        if proc.poll() is not None:
            raise AssertionError(f"run ended before it could be killed: {proc.stderr.read()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("timed out waiting for chunks")


def test_sigkill_then_resume_matches_uninterrupted(toy):
    tmp, config = toy
    full, killed = tmp / "full", tmp / "killed"
    assert cli("run", str(config), "--out", str(full), "--no-progress").returncode == 0

    log = tmp / "seeds.log"
    proc = subprocess.Popen([sys.executable, str(TESTS / "toy_plugin.py"), "run", str(config), "--out", str(killed),
                             "--no-progress"], env=env(TOY_LOG=str(log), TOY_SLEEP="0.3"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    chunk_dir = RunDir(killed).chunk_dir("oracle", "toy")
    _kill_when_chunks(proc, chunk_dir, 2)
    stored = RunDir(killed).done_chunks("oracle", "toy")
    assert 2 <= len(stored) < 6
    assert not (killed / "results.sqlite").exists() or not values(killed)
    stored_seeds = set()
    for c in stored:
        data = RunDir(killed).read_chunk("oracle", "toy", c)
        stored_seeds |= {s for s in data["index"].tolist()}
    first_log = log.read_text().split()

    # resume with another world size (2 processes, gloo)
    log.unlink()
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          "29517", str(TESTS / "toy_plugin.py"), "run", str(config), "--out", str(killed), "--resume",
                          "--no-progress"], env=env(TOY_LOG=str(log)), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert values(killed) == values(full)

    plan = RunDir(killed).read_plan("toy")
    seed_of = {p["index"]: str(p["seed"]) for p in plan}
    resumed = log.read_text().split()
    # no sample whose features were stored before the kill is computed again
    assert not {seed_of[i] for i in stored_seeds} & set(resumed)
    # every sample is generated exactly once after the kill, and all together cover the plan
    assert len(resumed) == len(set(resumed)) == 21 - len(stored_seeds)
    assert set(first_log) | set(resumed) == set(seed_of.values())


def test_world_size_two_matches_one(toy):
    tmp, config = toy
    one, two = tmp / "one", tmp / "two"
    assert cli("run", str(config), "--out", str(one), "--no-progress").returncode == 0
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          "29518", str(TESTS / "toy_plugin.py"), "run", str(config), "--out", str(two),
                          "--no-progress"], env=env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert values(one) == values(two)  # bit-identical, odd sample counts included
    # both ranks wrote their chunks: 21 samples in chunks of 4 -> chunks 0..5
    assert RunDir(two).done_chunks("oracle", "toy") == set(range(6))
    assert RunDir(two).done_chunks(REAL, "toy") == set(range(6))


def test_real_features_are_cached_across_runs(toy, tmp_path, monkeypatch):
    tmp, config = toy
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    assert main(["run", str(config), "--out", str(tmp / "a"), "--no-progress"]) == 0
    cache = list((tmp_path / "home" / "cache" / "real").iterdir())
    assert len(cache) == 1
    shutil.rmtree(tmp / "a" / "features" / "oracle")
    calls = []
    monkeypatch.setattr(toy_plugin.ToyDataset, "real_clips", lambda *a, **k: calls.append(1))
    assert main(["run", str(config), "--out", str(tmp / "b"), "--no-progress"]) == 0
    assert calls == []  # the real set was not decoded again
    assert values(tmp / "a") == values(tmp / "b")


def test_real_chunks_do_not_depend_on_batching(toy, tmp_path, monkeypatch):
    """Real clips read a batch ahead: each chunk file still holds exactly its indices and their features."""
    tmp, _ = toy
    proto = toy_plugin.write_protocol(tmp)
    runs = {}
    for batch_size in (3, 4):  # 3: batches straddle nothing but split each 4-index chunk into 3 + 1
        monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / f"home{batch_size}"))
        (tmp / f"b{batch_size}").mkdir()
        config = toy_plugin.write_run_config(tmp / f"b{batch_size}", proto, batch_size=batch_size)
        out = tmp / f"run{batch_size}"
        assert main(["run", str(config), "--out", str(out), "--no-progress"]) == 0
        runs[batch_size] = RunDir(out)
    chunks = sorted(runs[3].done_chunks(REAL, "toy"))
    assert chunks == sorted(runs[4].done_chunks(REAL, "toy")) == list(range(6))  # 23 real clips, chunks of 4
    for c in chunks:
        a, b = runs[3].read_chunk(REAL, "toy", c), runs[4].read_chunk(REAL, "toy", c)
        assert list(a["index"]) == list(range(4 * c, min(4 * c + 4, 23)))
        assert set(a) == set(b)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
