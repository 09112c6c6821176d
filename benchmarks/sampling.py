"""Sampler throughput: network evaluations per second, with and without batched guidance.

Runs the deterministic Heun sampler on a Snap Video FIT (``fit-tiny`` by default, random weights; speed
does not depend on the weights) in three modes: no guidance, guidance with both branches in one
batched forward, and guidance as two forwards. An evaluation is one sample through the network, so
guidance doubles the evaluations per video. Then the shipped tiny cascade (``fit-tiny-shapes`` ->
``fit-upsampler-tiny-shapes``, 16x72x128 videos) end to end through the ``snapvideo-cascade``
generator with the quickstart's settings (configs/quickstart.yaml): text encoding, both stages, uint8
frames. Prints a table and writes JSON.

    python benchmarks/sampling.py --batch 4 --steps 4 --threads 2 --out sampling.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from evalkit.generators.conditioning import make_conditioning
from evalkit.generators.sampler import SamplerConfig
from evalkit.generators.snapvideo import build_model

MODES = {
    "no guidance": {"guidance": None},
    "guidance, batched": {"guidance": 3.0, "guidance_mode": "batched"},
    "guidance, two forwards": {"guidance": 3.0, "guidance_mode": "separate"},
}


def run_mode(model, cond, noise, sampler: SamplerConfig, repeats: int) -> dict:
    model.sample(noise, cond, SamplerConfig(steps=1, guidance=sampler.guidance,
                                            guidance_mode=sampler.guidance_mode))  # warm-up
    times, cpu, stats = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        _, stats = model.sample(noise, cond, sampler)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    best = min(times)
    # process CPU time is reported too: on a shared machine wall time also measures the neighbours
    return {"seconds": best, "cpu_seconds": min(cpu), "net_calls": stats.net_calls, "evaluations": stats.evaluations,
            "evaluations_per_s": stats.evaluations / best, "videos_per_s": noise.shape[0] / best,
            "evaluations_per_video": stats.evaluations // noise.shape[0]}


PROMPTS = ["a red circle moving left quickly on a gray background",
           "an orange star rotating counterclockwise slowly on a gradient background",
           "a white square bouncing quickly on a navy background",
           "a green cross growing slowly on a black background"]


def quickstart_cascade_params() -> dict:
    """The cascade entry of ``configs/quickstart.yaml`` (checkpoints, guidance, upsampler sigma_max)."""
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml").read_text())
    return next(g["params"] for g in config["generators"] if g["name"] == "snapvideo-cascade")


def cascade_seconds(base_steps: int, up_steps: int, batch: int, repeats: int) -> dict:
    """End-to-end seconds per video of the shipped tiny cascade (weights resolved by name)."""
    import warnings

    from evalkit.generators.base import build_generator
    from evalkit.video import VideoSpec

    params = quickstart_cascade_params()
    params["base"]["steps"], params["upsampler"]["steps"] = base_steps, up_steps
    gen = build_generator("snapvideo-cascade", params)
    spec = VideoSpec(frames=16, height=72, width=128, fps=24.0)
    prompts = (PROMPTS * batch)[:batch]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen.generate(prompts[:1], [0], spec)  # warm-up (text encoder, allocations)
        times = []
        for r in range(repeats):
            start = time.perf_counter()
            gen.generate(prompts, list(range(r * batch, (r + 1) * batch)), spec)
            times.append(time.perf_counter() - start)
    best = min(times)
    return {"base_steps": base_steps, "upsampler_steps": up_steps, "params": params, "batch": batch, "seconds": best,
            "seconds_per_video": best / batch, "evaluations_per_video": gen.last_nfe}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fit-tiny", help="named model config")
    parser.add_argument("--batch", type=int, default=4, help="videos per sampler call")
    parser.add_argument("--steps", type=int, default=4, help="Heun steps (2N - 1 evaluations)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per mode (best is reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--text-dim", type=int, default=64, help="width of the (random) text tokens")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="sampling.json", help="JSON output file")
    parser.add_argument("--cascade-steps", type=int, nargs=2, default=[16, 8], metavar=("BASE", "UPSAMPLER"),
                        help="Heun steps of the two cascade stages (0 0: skip the cascade)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.model, text_dim=args.text_dim).eval().to(args.device)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randn(args.batch, 16, args.text_dim, generator=gen)
    cond = make_conditioning(tokens.to(args.device), torch.ones(args.batch, 16, dtype=torch.bool, device=args.device),
                             fps=24.0, resolution=model.config.clip_size)
    noise = torch.randn(args.batch, *model.noise_shape(), generator=gen).to(args.device)

    rows = {}
    for name, kw in MODES.items():
        rows[name] = run_mode(model, cond, noise, SamplerConfig(steps=args.steps, **kw), args.repeats)
    result = {
        "benchmark": "sampling", "model": args.model, "batch": args.batch, "steps": args.steps,
        "threads": args.threads, "device": args.device, "torch": torch.__version__,
        "machine": platform.machine(), "processor": platform.processor(), "modes": rows,
    }
    if all(args.cascade_steps):
        result["cascade"] = cascade_seconds(*args.cascade_steps, batch=args.batch, repeats=args.repeats)
    header = f"{'mode':<24}{'calls':>7}{'evals/video':>13}{'seconds':>10}{'cpu s':>8}{'evals/s':>10}{'videos/s':>10}"
    print(f"{args.model}, batch {args.batch}, {args.steps} Heun steps, {args.threads} threads, {args.device}")
    print(header)
    print("-" * len(header))
    for name, r in rows.items():
        print(f"{name:<24}{r['net_calls']:>7}{r['evaluations_per_video']:>13}{r['seconds']:>10.3f}{r['cpu_seconds']:>8.2f}"
              f"{r['evaluations_per_s']:>10.1f}{r['videos_per_s']:>10.3f}")
    batched, separate = rows["guidance, batched"]["seconds"], rows["guidance, two forwards"]["seconds"]
    print(f"batched guidance speed-up over two forwards: {separate / batched:.2f}x")
    result["batched_guidance_speedup"] = separate / batched
    if "cascade" in result:
        c = result["cascade"]
        guidance = c["params"]["base"].get("guidance")
        print(f"shipped tiny cascade as in the quickstart ({c['base_steps']} + {c['upsampler_steps']} steps, "
              f"base guidance {guidance}, 16x72x128): "
              f"{c['seconds_per_video']:.2f} s per video, {c['evaluations_per_video']:.0f} evaluations per video")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
