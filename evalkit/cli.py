"""The `evalkit` command line. Each subcommand lives in ``evalkit.commands.<name>`` and exposes
``add_parser(subparsers)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from evalkit import __version__
from evalkit.allocator import tune_allocator
from evalkit.errors import EvalkitError

COMMANDS = ("quickstart", "run", "score", "report", "sanity", "train", "weights", "list")

EPILOG = """examples:
  evalkit quickstart                         # the built-in shapes benchmark, minutes on a CPU
  evalkit run configs/quickstart.yaml --out runs/qs
  evalkit score --real real_videos/ --fake fake_videos/ --metric fvd:styleganv
  evalkit report runs/qs --format md,html
  evalkit list metrics 'fvd:*'
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evalkit",
        description="Benchmark and evaluation harness for text-to-video generation.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"t2v-evalkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module_name = f"evalkit.commands.{name.replace('-', '_')}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    tune_allocator()
    try:
        return int(args.func(args) or 0)
    except EvalkitError as exc:
        print(f"evalkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nevalkit {args.command}: interrupted; finished chunks are kept (resume with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
