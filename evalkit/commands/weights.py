"""`evalkit weights list | add NAME FILE [--force] | verify [NAME]`: the weight-file cache."""

from __future__ import annotations

import argparse

from evalkit import weights as W
from evalkit.errors import WeightsError

EXAMPLES = """examples:
  evalkit weights list
  evalkit weights add pytorch-fid-inception ~/Downloads/pt_inception-2015-12-05-6726825d.pth
  evalkit weights add i3d-torchscript ./i3d_torchscript.pt --force   # digest differs: marked non-reference
  evalkit weights verify
Files go to $EVALKIT_HOME/weights (default ~/.cache/evalkit/weights); nothing is downloaded.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="list, install and verify detector weight files",
                       description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="registered weight files, their URLs and whether they are installed")
    add = actions.add_parser("add", help="verify FILE against the registry and copy it into the cache")
    add.add_argument("name", help="registry name (see `evalkit weights list`)")
    add.add_argument("file", help="the downloaded weight file")
    add.add_argument("--force", action="store_true",
                     help="install despite a digest mismatch; results computed with it are marked not comparable")
    verify = actions.add_parser("verify", help="re-hash installed files and compare them with the registry")
    verify.add_argument("name", nargs="?", help="one registry name (default: all)")
    p.set_defaults(func=run)


def _load_registrations() -> None:
    """Packages register packaged weights when imported (the shapes detectors, the shipped generators)."""
    from evalkit.registry import DATASETS, DETECTORS, GENERATORS

    DETECTORS.names()
    DATASETS.names()
    GENERATORS.names()


def run(args: argparse.Namespace) -> int:
    _load_registrations()
    if args.action == "list":
        print(f"cache: {W.weights_dir()}")
        for result in W.verify():
            entry = W.get_entry(result.name)
            state = {"missing": "not installed", "packaged": "packaged"}.get(result.status, f"installed ({result.status})")
            print(f"{entry.name:<24} {state:<24} {entry.filename}")
            print(f"{'':<24} {entry.description}")
            if result.status == "missing":
                print(f"{'':<24} {entry.url}")
        return 0
    if args.action == "add":
        result = W.add(args.name, args.file, force=args.force)
        note = {
            "ok": "digest verified",
            "unverified": "no published digest to compare; SHA-256 recorded",
            "forced": "DIGEST MISMATCH accepted with --force: results will be marked not comparable",
        }[result.status]
        print(f"installed {result.name} -> {result.path} ({note}; {result.sha256})")
        return 0
    results = W.verify(args.name)
    bad = 0
    for result in results:
        where = result.path or W.get_entry(result.name).url
        print(f"{result.name:<24} {result.status:<11} {where} {result.detail}".rstrip())
        bad += result.status == "mismatch" or (args.name is not None and result.status == "missing")
    if bad:
        raise WeightsError(f"{bad} weight file(s) missing or not matching the registry (see above)")
    return 0
