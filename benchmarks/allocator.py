"""What raising glibc's malloc thresholds (``evalkit.allocator``) does to sampling on the CPU.

Samples the shipped ``fit-tiny-shapes`` base stage through the ``snapvideo-fit`` generator (as the
quickstart does: guidance 2, one batch of prompts) in fresh child processes, one per allocator
setting, alternating ``default`` and ``tuned`` so that a slow minute of a shared machine falls on both.
Each child reports wall time, user and system CPU time, minor page faults, peak resident memory and a
digest of the generated frames; the digests must agree (the setting moves buffers, not arithmetic).
Prints a table of medians and writes JSON.

    python benchmarks/allocator.py --batch 16 --steps 4 --repeats 3 --out allocator.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODES = ("default", "tuned")
PROMPT = "a red circle moving left quickly on a gray background"


def child(mode: str, checkpoint: str, batch: int, steps: int, threads: int) -> dict:
    """One measurement in this process (the allocator setting must precede the first large allocation)."""
    from evalkit.allocator import tune_allocator

    applied = tune_allocator() if mode == "tuned" else False
    import warnings

    import torch

    from evalkit.generators.base import build_generator
    from evalkit.video import VideoSpec

    torch.set_num_threads(threads)
    gen = build_generator("snapvideo-fit", {"checkpoint": checkpoint, "steps": steps, "guidance": 2.0})
    spec = VideoSpec(frames=16, height=36, width=64, fps=24.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen.generate([PROMPT], [10_000], spec)  # warm-up: weights, text encoder, first allocations
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        videos = gen.generate([PROMPT] * batch, list(range(batch)), spec)
        wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    digest = hashlib.sha256(videos.contiguous().numpy().tobytes()).hexdigest()
    return {"mode": mode, "applied": applied, "wall_s": wall, "user_s": after.ru_utime - before.ru_utime,
            "sys_s": after.ru_stime - before.ru_stime, "minor_faults": after.ru_minflt - before.ru_minflt,
            "peak_rss_mb": after.ru_maxrss / 1024, "frames_sha256": digest}


def run_child(mode: str, args: argparse.Namespace) -> dict:
    from evalkit.allocator import CONTROL_VARIABLES

    env = {k: v for k, v in os.environ.items() if k not in CONTROL_VARIABLES}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--checkpoint", args.checkpoint,
           "--batch", str(args.batch), "--steps", str(args.steps), "--threads", str(args.threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child {mode} failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="fit-tiny-shapes", help="weights name or file of a FIT base stage")
    parser.add_argument("--batch", type=int, default=16, help="videos in the timed batch (the quickstart's 16)")
    parser.add_argument("--steps", type=int, default=4, help="Heun steps")
    parser.add_argument("--repeats", type=int, default=3, help="child processes per setting")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--out", default="allocator.json", help="JSON output file")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.checkpoint, args.batch, args.steps, args.threads)))
        return 0

    runs = [run_child(mode, args) for _ in range(args.repeats) for mode in MODES]
    digests = {r["frames_sha256"] for r in runs}
    rows = {}
    for mode in MODES:
        mine = [r for r in runs if r["mode"] == mode]
        rows[mode] = {key: statistics.median(r[key] for r in mine)
                      for key in ("wall_s", "user_s", "sys_s", "minor_faults", "peak_rss_mb")}
        rows[mode]["applied"] = all(r["applied"] for r in mine) if mode == "tuned" else False
    same = len(digests) == 1
    result = {"benchmark": "allocator", "checkpoint": args.checkpoint, "batch": args.batch, "steps": args.steps,
              "threads": args.threads, "repeats": args.repeats, "machine": platform.machine(),
              "processor": platform.processor(), "python": platform.python_version(), "rows": rows, "runs": runs,
              "same_frames": same, "wall_speedup": rows["default"]["wall_s"] / rows["tuned"]["wall_s"]}
    header = f"{'malloc':<10}{'wall s':>9}{'user s':>9}{'sys s':>8}{'minor faults':>14}{'peak RSS MB':>13}"
    print(f"{args.checkpoint}, batch {args.batch}, {args.steps} Heun steps, guidance 2, {args.threads} threads; "
          f"medians of {args.repeats} child processes each")
    print(header)
    print("-" * len(header))
    for mode, r in rows.items():
        print(f"{mode:<10}{r['wall_s']:>9.2f}{r['user_s']:>9.2f}{r['sys_s']:>8.2f}{r['minor_faults']:>14.0f}"
              f"{r['peak_rss_mb']:>13.0f}")
    print(f"wall-time speed-up of tuned over default: {result['wall_speedup']:.2f}x; "
          f"identical frames: {'yes' if same else 'NO'}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
