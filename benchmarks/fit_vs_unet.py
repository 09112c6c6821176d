"""FIT vs U-Net: training-step and network-evaluation time per video (Snap Video Table 2).

Both networks run in one process behind the same diffusion code (sigma_in EDM loss, label dropout,
FIT's self-conditioning pass included), on 16-frame 36x64 clips padded to 40x64, alternating FIT and
U-Net measurements after warm-up; the table shows medians in ms per video next to the paper's A100
numbers and the two headline ratios (U-Net 284M / FIT 500M: training 3.31x, inference 4.49x).

- training step = loss forward + backward + optimizer step (LAMB for FIT, Adam for the U-Net, as
  in Snap Video Table 9), divided by the batch size;
- inference = one denoiser evaluation D(x_sigma) (no_grad), divided by the batch size;
- FLOPs per video from ``torch.utils.flop_counter`` on the meta device (forward of one video;
  training = one loss forward + backward, FIT's extra self-conditioning forward included).

``--scale 1`` uses the Table 7/8 configs (a GPU); ``--scale s`` multiplies every width (channels,
token widths, head widths, conditioning width, GroupNorm groups) by s, keeping depths, token
counts and head counts, so a CPU can run the same comparison at reduced size::

    python benchmarks/fit_vs_unet.py --device cuda --scale 1 --batch 8 --dtype bfloat16
    OMP_NUM_THREADS=2 python benchmarks/fit_vs_unet.py --device cpu --scale 0.25 --batch 1 --reps 3

Prints a table and writes JSON (``--out``, default benchmarks/results/fit_vs_unet-<device>-<scale>.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from evalkit.generators.conditioning import Conditioning, make_conditioning
from evalkit.generators.lamb import Lamb, param_groups_no_decay
from evalkit.generators.model_configs import model_config
from evalkit.generators.snapvideo import SnapVideoModel
from evalkit.generators.unet_configs import UNET_MODEL_CONFIGS
from evalkit.generators.unet_generator import UNetVideoModel

#: Snap Video Table 2 (A100, ms per video per GPU)
PAPER_MS = {"fit-500m": (69.5, 23.4), "unet-85m": (133.2, 49.6), "unet-284m": (230.3, 105.1)}
PAPER_RATIOS = {"train": 230.3 / 69.5, "inference": 105.1 / 23.4}
TEXT_TOKENS = 32


def scaled_fit(name: str, scale: float):
    cfg = model_config(name)
    f = cfg.fit
    s = lambda v: max(1, int(round(v * scale)))  # noqa: E731
    fit = dataclasses.replace(f, patch_width=s(f.patch_width), latent_width=s(f.latent_width),
                              cond_width=s(f.cond_width), text_dim=s(f.text_dim), patch_head_dim=s(f.patch_head_dim),
                              latent_head_dim=s(f.latent_head_dim))
    return dataclasses.replace(cfg, fit=fit)


def scaled_unet(name: str, scale: float):
    cfg = UNET_MODEL_CONFIGS[name]()
    u = cfg.unet
    s = lambda v: max(1, int(round(v * scale)))  # noqa: E731
    unet = dataclasses.replace(u, base_channels=s(u.base_channels), head_channels=s(u.head_channels),
                               cond_channels=s(u.cond_channels), text_dim=s(u.text_dim), norm_groups=s(u.norm_groups))
    return dataclasses.replace(cfg, unet=unet)


class Bench:
    """One model with its optimizer, a fixed batch, and the two timed operations."""

    def __init__(self, name: str, model: torch.nn.Module, text_dim: int, batch: int, device: torch.device,
                 dtype: torch.dtype):
        self.name, self.model, self.device, self.dtype, self.batch = name, model.to(device), device, dtype, batch
        gen = torch.Generator().manual_seed(0)
        self.videos = torch.randint(0, 256, (batch, 16, 36, 64, 3), generator=gen, dtype=torch.uint8).to(device)
        self.tokens = torch.randn(batch, TEXT_TOKENS, text_dim, generator=gen).to(device)
        self.mask = torch.ones(batch, TEXT_TOKENS, dtype=torch.bool, device=device)
        self.fps = torch.full((batch,), 24.0, device=device)
        self.loss_gen = torch.Generator(device=device).manual_seed(0)
        if isinstance(model, SnapVideoModel):  # Snap Video Table 9: LAMB for FIT, Adam for the U-Net
            self.opt = Lamb(param_groups_no_decay(model, 0.01), lr=5e-3, betas=(0.9, 0.99), max_grad_norm=1.0)
        else:
            self.opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01)
        c, t, h, w = model.noise_shape()
        self.x_sigma = torch.randn(batch, c, t, h, w, generator=gen).to(device)
        self.cond = make_conditioning(self.tokens, self.mask, fps=24.0, resolution=(36, 64))
        self.sigma = torch.full((batch,), 1.0, device=device)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)

    def train_step(self) -> None:
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.model.loss(self.videos, self.tokens, self.mask, self.fps, None, self.loss_gen)
        loss.backward()
        self.opt.step()

    @torch.no_grad()
    def evaluate(self) -> None:
        self.model.eval()
        with self._autocast():
            self.model.diffusion.denoise(self.model.net, self.x_sigma, self.sigma, self.cond, self.model.sigma_in)


def _timed(fn: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def flops_per_video(build: Callable[[], torch.nn.Module], text_dim: int) -> dict[str, float]:
    """Forward (one evaluation) and training FLOPs of one video, counted on the meta device.

    Training = the network passes of one loss (FIT: an extra no-grad self-conditioning pass) plus the
    backward; the loss's element-wise arithmetic is left out (negligible next to the networks).
    """
    with torch.device("meta"):
        model = build()
        c, t, h, w = model.noise_shape()
        x = torch.zeros(1, c, t, h, w)
        cond = Conditioning(text=torch.zeros(1, TEXT_TOKENS, text_dim), text_mask=torch.ones(1, TEXT_TOKENS, dtype=torch.bool),
                            fps=torch.full((1,), 24.0), resolution=torch.tensor([[36.0, 64.0]]))
        sigma = torch.ones(1)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model.diffusion.network_output(model.net, x, sigma, cond, model.sigma_in)
        forward = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            if getattr(model.config, "self_cond_rate", 0.0) > 0:
                with torch.no_grad():
                    _, carry = model.diffusion.network_output(model.net, x, sigma, cond, model.sigma_in)
                cond = cond.replace(carry=carry)
            out, _ = model.diffusion.network_output(model.net, x, sigma, cond, model.sigma_in)
            out.float().square().mean().backward()
        return {"forward": float(forward), "train": float(counter.get_total_flops())}


def _builders(scale: float, names: list[str]) -> dict[str, tuple[Callable[[], torch.nn.Module], int]]:
    """name -> (model builder, text width) at width ``scale``."""
    out = {}
    for name in names:
        if name.startswith("fit-"):
            cfg = scaled_fit(name, scale)
            out[name] = ((lambda cfg=cfg: SnapVideoModel(cfg)), cfg.fit.text_dim)
        else:
            cfg = scaled_unet(name, scale)
            out[name] = ((lambda cfg=cfg: UNetVideoModel(cfg)), cfg.unet.text_dim)
    return out


def _parameters(build: Callable[[], torch.nn.Module]) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build().parameters())


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    specs = _builders(args.scale, ["fit-500m", *args.unets])
    benches: dict[str, Bench] = {}
    report: dict[str, Any] = {"models": {}}
    for name, (build, text_dim) in specs.items():
        entry = report["models"][name] = {"parameters": _parameters(build)}
        if args.flops:
            entry["flops_per_video"] = flops_per_video(build, text_dim)
            if args.scale != 1.0:  # the paper-size models' counts cost nothing on the meta device
                full, full_dim = _builders(1.0, [name])[name]
                entry["paper_size"] = {"parameters": _parameters(full), "flops_per_video": flops_per_video(full, full_dim)}
        benches[name] = Bench(name, build(), text_dim, args.batch, device, dtype)

    times: dict[str, dict[str, list[float]]] = {n: {"train": [], "inference": []} for n in benches}
    for op in ("train", "inference"):
        for rep in range(args.warmup + args.reps):
            for name, bench in benches.items():  # alternate the models inside every repetition
                fn = bench.train_step if op == "train" else bench.evaluate
                dt = _timed(fn, device)
                if rep >= args.warmup:
                    times[name][op].append(dt / args.batch * 1000.0)
    for name in benches:
        entry = report["models"][name]
        for op in ("train", "inference"):
            entry[f"{op}_ms_per_video"] = statistics.median(times[name][op])
            entry[f"{op}_ms_all"] = times[name][op]
        paper = PAPER_MS.get(name)
        entry["paper_ms_per_video"] = {"train": paper[0], "inference": paper[1]} if paper else None
    fit = report["models"]["fit-500m"]
    report["ratios"] = {
        u: {op: report["models"][u][f"{op}_ms_per_video"] / fit[f"{op}_ms_per_video"] for op in ("train", "inference")}
        for u in args.unets
    }
    report["paper_ratios"] = {
        u: {op: PAPER_MS[u][i] / PAPER_MS["fit-500m"][i] for i, op in enumerate(("train", "inference"))}
        for u in args.unets
    }
    report["settings"] = {
        "device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else
        platform.processor() or platform.machine(), "threads": torch.get_num_threads(), "dtype": args.dtype,
        "scale": args.scale, "batch": args.batch, "warmup": args.warmup, "reps": args.reps,
        "clip": "16x36x64 padded to 16x40x64", "text_tokens": TEXT_TOKENS, "torch": torch.__version__,
    }
    return report


def print_table(report: dict[str, Any]) -> None:
    s = report["settings"]
    print(f"FIT vs U-Net on {s['device_name']} ({s['device']}, {s['threads']} threads), {s['dtype']}, width scale "
          f"{s['scale']}, batch {s['batch']}, medians of {s['reps']} after {s['warmup']} warm-up")
    head = f"{'model':<11}{'params':>10}{'GFLOP fwd':>11}{'GFLOP train':>13}{'train ms':>10}{'infer ms':>10}" \
           f"{'paper train':>13}{'paper infer':>13}"
    print(head)
    print("-" * len(head))
    for name, m in report["models"].items():
        fl = m.get("flops_per_video", {})
        paper = m["paper_ms_per_video"] or {}
        print(f"{name:<11}{m['parameters'] / 1e6:>9.1f}M{fl.get('forward', math.nan) / 1e9:>11.1f}"
              f"{fl.get('train', math.nan) / 1e9:>13.1f}{m['train_ms_per_video']:>10.1f}"
              f"{m['inference_ms_per_video']:>10.1f}{paper.get('train', math.nan):>13.1f}"
              f"{paper.get('inference', math.nan):>13.1f}")
    full = {n: m["paper_size"] for n, m in report["models"].items() if "paper_size" in m}
    if full:
        print("paper-size models (meta device): " + ", ".join(
            f"{n} {f['parameters'] / 1e6:.0f}M params, {f['flops_per_video']['forward'] / 1e9:.0f} GFLOP fwd, "
            f"{f['flops_per_video']['train'] / 1e9:.0f} GFLOP train" for n, f in full.items()))
    for u, r in report["ratios"].items():
        p = report["paper_ratios"][u]
        print(f"{u} / fit-500m: training {r['train']:.2f}x (paper {p['train']:.2f}x), "
              f"inference {r['inference']:.2f}x (paper {p['inference']:.2f}x)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--scale", type=float, default=None, help="width multiplier (default: 1 on GPU, 0.25 on CPU)")
    parser.add_argument("--batch", type=int, default=None, help="videos per step (default: 8 on GPU, 1 on CPU)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--unets", nargs="+", default=["unet-284m", "unet-85m"], choices=sorted(UNET_MODEL_CONFIGS))
    parser.add_argument("--no-flops", dest="flops", action="store_false")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    gpu = args.device.startswith("cuda")
    args.scale = args.scale if args.scale is not None else (1.0 if gpu else 0.25)
    args.batch = args.batch if args.batch is not None else (8 if gpu else 1)
    report = run(args)
    print_table(report)
    out = args.out or Path(__file__).parent / "results" / f"fit_vs_unet-{torch.device(args.device).type}-{args.scale:g}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
