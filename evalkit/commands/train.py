"""`evalkit train CONFIG`: train a generator (FIT, U-Net) with LAMB, EMA and resumable checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """examples:
  evalkit train configs/train/fit-tiny-shapes.yaml --out runs/train/fit
  evalkit train configs/train/fit-tiny-shapes.yaml --out runs/train/fit --resume     # after Ctrl-C
  evalkit train my.yaml --set steps=200 --set batch_size=8 --set optimizer.lr=2e-3
  evalkit train my.yaml --export generators/weights/my-model.safetensors        # ship EMA weights
  torchrun --nproc_per_node 2 -m evalkit train my.yaml --out runs/train/ddp          # data parallel

The run directory receives train_config.json, loss.csv (per-step loss, lr, grad norm, EMA beta),
loss.png, summary.json and checkpoints/step-XXXXXXXX.safetensors (model, EMA, optimizer, RNG states).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a generator (LAMB, warm-up + cosine, EMA, exact resume, DDP)",
                       description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="training config YAML (e.g. configs/train/fit-tiny-shapes.yaml)")
    p.add_argument("--out", type=Path, default=None, help="run directory (default: runs/train/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field by dotted path (repeatable), e.g. optimizer.lr=1e-3")
    p.add_argument("--export", type=Path, default=None, metavar="FILE",
                   help="after training, write the EMA weights to FILE (default: the config's export_to, if set)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from evalkit import distributed as D
    from evalkit.config import load_config
    from evalkit.generators.trainer import TrainConfig, Trainer

    config = load_config(TrainConfig, args.config, list(args.overrides))
    out = args.out or Path("runs") / "train" / Path(args.config).stem
    info = D.init_distributed()
    try:
        trainer = Trainer(config, out, progress=not args.no_progress)
        result = trainer.run(resume=args.resume)
        export = args.export or (Path(config.export_to) if config.export_to else None)
        if info.is_main:
            print(f"trained {result.steps} steps ({result.samples} samples) in {result.wall_s:.0f} s; "
                  f"final loss (mean of last 50 steps) {result.final_loss:.4f}")
            print(f"run directory: {result.run_dir}  (loss.csv, loss.png, checkpoints/)")
            if export is not None:
                path = trainer.export(export)
                print(f"EMA weights written to {path} ({path.stat().st_size / 1e6:.1f} MB)")
    finally:
        D.shutdown()
    return 0
