"""`evalkit run CONFIG`: evaluate generators on protocols into a resumable run directory."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from evalkit.config import load_config
from evalkit.runconfig import RunConfig
from evalkit.store import read_results

EXAMPLES = """examples:
  evalkit run configs/quickstart.yaml --out runs/qs
  evalkit run configs/quickstart.yaml --out runs/qs --resume          # after Ctrl-C or a crash
  evalkit run my.yaml --set batch_size=4 --set generators.0.params.steps=32
  torchrun --nproc_per_node 4 -m evalkit run my.yaml --out runs/big   # one process per GPU
  evalkit run ucf.yaml --skip-unreadable        # leave out (and list) real videos that fail to decode
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="evaluate generators on protocols (resumable, shardable)",
                       description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="run config YAML (generators, protocols, settings)")
    p.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field by dotted path (repeatable)")
    p.add_argument("--allow-random-weights", action="store_true",
                   help="run detectors with random weights if reference weights are missing (not comparable)")
    p.add_argument("--skip-unreadable", action="store_true",
                   help="leave out real videos that fail to decode (listed with the results) instead of stopping")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def execute(config: RunConfig, out: Path, resume: bool, progress: bool = True) -> list:
    """Run ``config`` into ``out`` (joins torchrun's process group when launched by torchrun)."""
    from evalkit import distributed as D
    from evalkit.runner import Runner

    info = D.init_distributed()
    try:
        return Runner(config, out, resume=resume, dist_info=info, progress=progress).run()
    finally:
        D.shutdown()


def print_rows(rows: list) -> None:
    if not rows:
        return
    width = max(len(r.generator) for r in rows)
    print(f"\n{'generator':<{width}}  {'protocol':<20} {'metric':<24} {'value':>12}  n_fake  n_real")
    for r in rows:
        name = f"{r.metric}:{r.variant}"
        arrow = "↑" if r.higher_is_better else "↓"
        flag = "" if r.comparable else "  (not comparable: non-reference weights)"
        print(f"{r.generator:<{width}}  {r.protocol:<20} {name + ' ' + arrow:<24} {r.value:>12.4f}  "
              f"{r.n_fake:>6}  {r.n_real:>6}{flag}")


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.allow_random_weights:
        overrides.append("allow_random_weights=true")
    if args.skip_unreadable:
        overrides.append("skip_unreadable=true")
    config = load_config(RunConfig, args.config, overrides)
    out = args.out or Path("runs") / config.name
    execute(config, out, args.resume, progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:
        print_rows(read_results(out / "results.sqlite"))
        print(f"\nresults: {out / 'results.sqlite'}   (evalkit report {out})")
    return 0
