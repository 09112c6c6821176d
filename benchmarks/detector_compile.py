"""Would ``torch.compile`` make the FID detector faster than evalkit's fast form? Measured, not assumed.

The FID row of ``metrics_throughput.py`` is the one furthest from twice the reference path, and the
Inception forward is what bounds it. This times pytorch-fid's Inception (random weights; speed does not
depend on them) in evalkit's default detector form and the same module compiled by inductor with
weight freezing (``torch._inductor.config.freezing``: BatchNorm folding and prepacked oneDNN
convolution weights), alternating the two after warm-up, and reports medians, the compile time and the
largest feature difference. Prints a table and writes JSON.

    OMP_NUM_THREADS=2 python benchmarks/detector_compile.py --batch 8 --repeats 5 --out detector_compile.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch


def features(out) -> torch.Tensor:
    return out[0] if isinstance(out, (list, tuple)) else out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="images per forward (default 8)")
    parser.add_argument("--size", type=int, default=64, help="input image size before Inception's resize (default 64)")
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards per form, alternating (default 5)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="detector_compile.json", help="JSON output file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    import torch._inductor.config as inductor_config

    from evalkit.metrics.base import build_detector

    det = build_detector("inception-pytorch-fid", device="cpu", allow_random_weights=True)
    model = det.model.eval()
    x = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    inductor_config.freezing = True
    with torch.no_grad():
        reference = features(model(x))
        start = time.perf_counter()
        compiled = torch.compile(model)
        first = features(compiled(x))
        compile_s = time.perf_counter() - start
        times: dict[str, list[float]] = {"fast form": [], "fast form + torch.compile": []}
        for _ in range(args.repeats):
            for name, fn in (("fast form", model), ("fast form + torch.compile", compiled)):
                start = time.perf_counter()
                fn(x)
                times[name].append(time.perf_counter() - start)
    diff = float((first - reference).abs().max() / reference.abs().max())
    rows = [{"form": name, "median_s_per_image": statistics.median(t) / args.batch,
             "images_per_s": args.batch / statistics.median(t)} for name, t in times.items()]
    speedup = rows[0]["median_s_per_image"] / rows[1]["median_s_per_image"]
    print(f"{'form':<28} {'images/s':>9}")
    for r in rows:
        print(f"{r['form']:<28} {r['images_per_s']:>9.2f}")
    print(f"compiled / fast form: {speedup:.2f}x; compile time {compile_s:.1f} s; "
          f"largest feature difference {diff:.1e} of the largest feature")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = {"rows": rows, "speedup": speedup, "compile_s": compile_s, "feature_max_rel_diff": diff,
              "args": vars(args), "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
              "commit": commit}
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
