"""`evalkit report RUN_DIR...`: leaderboard, ablation table, plots, sample grids and one HTML file.

Measured rows come from the runs' results stores; published numbers (Snap Video Tables 4 and 5 and
their baselines) are added as "reported" rows of matching protocols and are never ranked with
measured ones. Partial evaluations are shown with their counts and never as final.
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """examples:
  evalkit report runs/qs                                   # md, csv, tex and html into runs/qs/report
  evalkit report runs/fit runs/unet --out reports/cmp --format md,html
  evalkit report runs/sweep --bootstrap 200 --seed 1       # 95% bootstrap intervals from stored features
  evalkit report runs/qs --published snapvideo-t4,ucf101-other
  evalkit report runs/qs --published none                  # measured rows only
  evalkit report runs/guidance --paired "fit-tiny[guidance=1.0]"   # differences on the same prompts and seeds
  evalkit report runs/qs runs/new --paired "fit-tiny[steps=16]" --paired-with "fit-tiny, new run"
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="tables (md/csv/tex/html), plots and sample grids from run directories",
                       description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories written by `evalkit run`")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: RUN_DIR/report of the first run)")
    p.add_argument("--format", default="md,csv,tex,html",
                   help="comma-separated subset of md,csv,tex,html (default: all)")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="recompute FID/FVD/KID/CLIPSIM intervals with N bootstrap rounds from stored features "
                        "(default: 0, keep stored intervals)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default: 0)")
    p.add_argument("--level", type=float, default=0.95, help="bootstrap interval level (default: 0.95)")
    p.add_argument("--interval", choices=("basic", "percentile"), default="basic",
                   help="bootstrap interval construction (default: basic, which corrects the Fréchet bias)")
    p.add_argument("--paired", default=None, metavar="GENERATOR",
                   help="add a table of paired differences against this generator: rows on the same prompts and "
                        "seeds, resampled together (FID/FVD/KID/CLIPSIM from stored features)")
    p.add_argument("--paired-with", action="append", default=None, metavar="GENERATOR",
                   help="compare only this generator with the --paired baseline (repeatable; default: every "
                        "other generator, each of which costs a bootstrap)")
    p.add_argument("--paired-rounds", type=int, default=1000, metavar="N",
                   help="bootstrap rounds of the paired differences (default: 1000)")
    p.add_argument("--published", default="default",
                   help="published tables to add: 'default' (Snap Video Tables 4 and 5), 'none', 'all', or "
                        "comma-separated keys of reports/data/published.yaml")
    p.add_argument("--grid-videos", type=int, default=4, help="videos per sample grid (0: no grids)")
    p.add_argument("--grid-frames", type=int, default=8, help="frames per video in sample grids")
    p.add_argument("--title", default="t2v-evalkit report")
    p.add_argument("--no-progress", action="store_true", help="no progress bars for the bootstrap rounds")
    p.set_defaults(func=run)


def _published(arg: str) -> list[str] | None:
    from evalkit.reports.published import load_published

    if arg == "default":
        return None
    if arg == "none":
        return []
    if arg == "all":
        return list(load_published())
    return [t.strip() for t in arg.split(",") if t.strip()]


def run(args: argparse.Namespace) -> int:
    from evalkit.errors import InputError
    from evalkit.reports.build import build_report, parse_formats

    if args.bootstrap < 0:
        raise InputError(f"--bootstrap: expected a number of rounds >= 0, got {args.bootstrap}")
    if args.paired_rounds < 1:
        raise InputError(f"--paired-rounds: expected a number of rounds >= 1, got {args.paired_rounds}")
    if args.paired_with and not args.paired:
        raise InputError("--paired-with: name the baseline with --paired GENERATOR as well")
    formats = parse_formats(args.format)
    out = args.out or (args.run_dirs[0] / "report")
    report = build_report(
        args.run_dirs, out, formats=formats, bootstrap_rounds=args.bootstrap, seed=args.seed, level=args.level,
        method=args.interval, published_tables=_published(args.published), grid_videos=args.grid_videos,
        grid_frames=args.grid_frames, title=args.title, paired_baseline=args.paired,
        paired_rounds=args.paired_rounds, paired_with=args.paired_with, progress=not args.no_progress,
    )
    n_measured = report.frame["generator"].nunique()
    n_partial = len(report.partial)
    print(f"{n_measured} generator(s), {len(report.frame)} result(s)"
          + (f", {n_partial} partial (not final)" if n_partial else ""))
    for message in report.messages:
        print(f"note: {message}")
    for path in report.files:
        print(path)
    return 0
