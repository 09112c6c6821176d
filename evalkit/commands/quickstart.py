"""`evalkit quickstart`: run the built-in shapes benchmark end to end and write a report."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from evalkit.config import load_config
from evalkit.runconfig import RunConfig

EXAMPLES = """examples:
  evalkit quickstart                       # writes runs/quickstart/
  evalkit quickstart --out /tmp/qs --samples 64
  evalkit quickstart --out runs/quickstart --resume
"""


def quickstart_config_path() -> Path:
    return Path(str(resources.files("evalkit.configs"))) / "quickstart.yaml"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="run the built-in shapes benchmark and write a report",
                       description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="run directory (default: runs/quickstart)")
    p.add_argument("--samples", type=int, default=None, help="generated and real samples per generator (default: protocol's)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted quickstart in --out")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the quickstart config")
    p.add_argument("--no-report", action="store_true", help="skip the report step")
    p.add_argument("--bootstrap", type=int, default=200, metavar="N",
                   help="bootstrap rounds for the report's intervals (default: 200; 0: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from evalkit.commands.run import execute, print_rows
    from evalkit.store import read_results

    config = load_config(RunConfig, quickstart_config_path(), list(args.overrides))
    if args.samples:
        for name in config.protocols:
            config.protocol_overrides[name] = [f"num_samples={args.samples}", f"num_real={args.samples}"]
    print(f"evalkit quickstart: {len(config.generators)} generator entries on {', '.join(config.protocols)} -> {args.out}")
    execute(config, args.out, args.resume, progress=not args.no_progress)
    rows = read_results(args.out / "results.sqlite")
    print_rows(rows)
    if not args.no_report:
        from evalkit.commands import report

        # Parse through the report command's own parser so its defaults apply here unchanged.
        parser = argparse.ArgumentParser(prog="evalkit")
        report.add_parser(parser.add_subparsers())
        report_args = parser.parse_args(["report", str(args.out), "--out", str(args.out / "report"),
                                         "--bootstrap", str(args.bootstrap)]
                                        + (["--no-progress"] if args.no_progress else []))
        report.run(report_args)
    print(f"\nresults: {args.out / 'results.sqlite'}")
    return 0
