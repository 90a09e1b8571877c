"""The `localroute` command. Every failure the user can fix is one `error:` line and exit 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from localroute.errors import LocalrouteError

DEFAULT_CONFIG = "configs/local.yaml"


def _data_build(args: argparse.Namespace) -> int:
    from localroute.data.build import build

    sources = args.sources.split(",") if args.sources else None
    manifest = build(Path(args.out), args.source_dir, sources, args.shippable_only)
    print(
        f"wrote {len(manifest['sources'])} source(s) to {Path(args.out).resolve()} "
        f"(from {manifest['origin']})"
    )
    return 0


def _data_summary(args: argparse.Namespace) -> int:
    from localroute.data.build import summary

    counts = summary(Path(args.dir))
    if args.json:
        print(json.dumps(counts, sort_keys=True))
        return 0
    print(f"{'source':<20}{'queries':>10}{'outcomes':>10}")
    for name in sorted(counts["queries"]):
        print(f"{name:<20}{counts['queries'][name]:>10}{counts['outcomes'].get(name, 0):>10}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from localroute.config import load_config
    from localroute.data.build import build, summary
    from localroute.ray_runtime import ray_session
    from pipelines.data_overview import model_quality

    cfg = load_config(args.config)
    out = Path(args.out or "runs/demo").resolve()
    data_dir = out / "data"
    print(f"== 1/2 data: building the outcome table into {data_dir}")
    manifest = build(data_dir, cfg.data.source_dir, cfg.data.sources)
    counts = summary(data_dir)
    print(
        f"   {sum(counts['queries'].values())} queries, {sum(counts['outcomes'].values())} "
        f"published outcome rows from {len(manifest['sources'])} sources ({manifest['origin']})"
    )
    print("== 2/2 Ray Data: mean score per source and model (published outcomes)")
    with ray_session(cfg.ray):
        rows = model_quality(data_dir)
    for row in rows:
        print(f"   {row['source']:<18}{row['model']:<48}{row['mean_score']:.3f}  n={row['n']}")
    (out / "model_quality.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(
        f"outputs: {data_dir} (Parquet tables, manifest.json, NOTICE), {out / 'model_quality.json'}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="localroute",
        description="Route LLM traffic between a small local model and a cloud model, on Ray.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    b.set_defaults(func=_data_build)
    s = data_sub.add_parser(
        "summary",
        help="row counts per source",
        description="Row counts of a data build, per source.",
    )
    s.add_argument("dir", help="a directory written by `localroute data build`")
    s.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object {queries: {source: n}, outcomes: {source: n}}",
    )
    s.set_defaults(func=_data_summary)

    d = sub.add_parser(
        "demo",
        help="run the main job end to end on the embedded default",
        description="Build the data, then run each stage on a local Ray instance.",
    )
    d.add_argument(
        "--config", default=DEFAULT_CONFIG, help=f"YAML config (default {DEFAULT_CONFIG})"
    )
    d.add_argument("--out", help="output directory (default runs/demo)")
    d.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LocalrouteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
