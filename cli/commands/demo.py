"""`localroute demo`: every stage end to end on the embedded default (what `make demo` runs)."""

from __future__ import annotations

import argparse

DEFAULT_CONFIG = "configs/local.yaml"


def _demo(args: argparse.Namespace) -> int:
    from cli.demo import run_demo

    return run_demo(args.config, args.out, verbose=args.verbose)


def register(sub) -> None:
    d = sub.add_parser(
        "demo",
        help="run the main job end to end on the embedded default",
        description="Build the data, then run each stage on a local Ray instance bound to "
        "127.0.0.1: one line per stage and a summary table; the libraries' logs go to "
        "OUT/logs/demo.log.",
    )
    d.add_argument(
        "--config", default=DEFAULT_CONFIG, help=f"YAML config (default {DEFAULT_CONFIG})"
    )
    d.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    d.add_argument(
        "--verbose", action="store_true", help="print Ray's and the libraries' logs as well"
    )
    d.set_defaults(func=_demo)
