"""`evalkit sanity PROTOCOL`: how every metric of a protocol responds to controlled degradations."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """examples:
  evalkit sanity shapes                                  # runs in CI; expectations asserted
  evalkit sanity ucf101-zeroshot/snapvideo --samples 512 --out runs/sanity-ucf
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sanity", help="run the oracle and its degradations; check each metric's response",
                       description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("protocol", help="protocol name or YAML path")
    p.add_argument("--out", type=Path, default=None, help="run directory (default: runs/sanity-<protocol>)")
    p.add_argument("--samples", type=int, default=None, help="generated and real samples (default: protocol's)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--allow-random-weights", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from evalkit.commands.run import execute, print_rows
    from evalkit.protocols import load_protocol
    from evalkit.sanity import (
        check_expectations,
        default_out,
        fewer_samples_config,
        format_checks,
        sanity_config,
    )
    from evalkit.store import read_results

    config = sanity_config(args.protocol, args.samples, args.batch_size)
    config.allow_random_weights = args.allow_random_weights
    out = args.out or default_out(args.protocol)
    execute(config, out, args.resume, progress=not args.no_progress)
    rows = read_results(out / "results.sqlite")
    # the same oracle with a quarter of the samples: each metric's small-sample bias
    n = args.samples or load_protocol(args.protocol).num_samples
    fewer = fewer_samples_config(args.protocol, n, args.batch_size)
    fewer.allow_random_weights = args.allow_random_weights
    execute(fewer, out / "fewer-samples", args.resume, progress=not args.no_progress)
    rows += read_results(out / "fewer-samples" / "results.sqlite")
    print_rows(rows)
    checks = check_expectations(rows)
    print("\n" + format_checks(checks))
    failed = [c for c in checks if not c.passed]
    print(f"\n{len(checks) - len(failed)}/{len(checks)} expectations hold")
    return 1 if failed else 0
