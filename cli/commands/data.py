"""`localroute data build|summary`: the query and outcome tables."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _build(args: argparse.Namespace) -> int:
    from localroute.data.build import build

    sources = args.sources.split(",") if args.sources else None
    manifest = build(Path(args.out), args.source_dir, sources, args.shippable_only)
    print(
        f"wrote {len(manifest['sources'])} source(s) to {Path(args.out).resolve()} "
        f"(from {manifest['origin']})"
    )
    return 0


def _summary(args: argparse.Namespace) -> int:
    from localroute.data.build import summary

    counts = summary(Path(args.dir))
    if args.json:
        print(json.dumps(counts, sort_keys=True))
        return 0
    print(f"{'source':<20}{'queries':>10}{'outcomes':>10}")
    for name in sorted(counts["queries"]):
        print(f"{name:<20}{counts['queries'][name]:>10}{counts['outcomes'].get(name, 0):>10}")
    return 0


def register(sub) -> None:
    data = sub.add_parser("data", help="build and inspect the query/outcome tables")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    b = data_sub.add_parser(
        "build",
        help="convert the public data into Parquet tables",
        description="Load every source of ../shared/data (or the build shipped in the package "
        "when that is absent) into queries/, outcomes/ and models/ Parquet tables under --out.",
    )
    b.add_argument("--out", required=True, help="output directory (replaced atomically)")
    b.add_argument(
        "--source-dir",
        help="raw data directory (default: ../shared/data if present, "
        "else the build shipped in the package); 'shipped' forces the shipped build",
    )
    b.add_argument("--sources", help="comma-separated source names (default: all)")
    b.add_argument(
        "--shippable-only",
        action="store_true",
        help="only the sources whose licence lets the project ship them",
    )
    b.set_defaults(func=_build)
    s = data_sub.add_parser(
        "summary", help="row counts per source", description="Row counts of a data build."
    )
    s.add_argument("dir", help="a directory written by `localroute data build`")
    s.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object {queries: {source: n}, outcomes: {source: n}}",
    )
    s.set_defaults(func=_summary)
