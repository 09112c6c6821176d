"""`evalkit list generators|metrics|detectors|protocols|datasets [GLOB]`."""

from __future__ import annotations

import argparse

from evalkit import registry

KINDS = {
    "generators": registry.GENERATORS,
    "metrics": registry.METRICS,
    "detectors": registry.DETECTORS,
    "protocols": registry.PROTOCOLS,
    "datasets": registry.DATASETS,
}

EXAMPLES = """examples:
  evalkit list generators
  evalkit list metrics 'fvd:*'
  evalkit list protocols 'ucf101*'
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered generators, metrics, detectors, protocols",
                       description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=sorted(KINDS))
    p.add_argument("pattern", nargs="?", default="*", help="glob filter (default: *)")
    p.set_defaults(func=run)


def _summary(obj: object) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    return doc[0] if doc else ""


def run(args: argparse.Namespace) -> int:
    reg = KINDS[args.kind]
    if args.kind == "protocols":
        import evalkit.protocols  # noqa: F401  (registers shipped protocol files)
    for name, obj in reg.items(args.pattern):
        text = "" if args.kind == "protocols" else _summary(obj)
        print(f"{name:<32} {text}".rstrip())
    return 0
