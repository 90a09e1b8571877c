"""`localroute evaluate`: seed 001's and seed 000's experiments on a data build -> report.html."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_CONFIG = "configs/local.yaml"


def _evaluate(args: argparse.Namespace) -> int:
    from cli.config import load_config
    from pipelines.evaluate import run_evaluate

    cfg = load_config(args.config)
    data_dir = Path(args.data or cfg.data.out)
    out = Path(args.out)
    measured = Path(args.measured) if args.measured else None
    run_evaluate(cfg, data_dir, out, measured, artifact=args.router_artifact)
    print(f"wrote {out.resolve() / 'report.html'}")
    print(f"wrote {out.resolve() / 'metrics.json'}")
    return 0


def register(sub) -> None:
    e = sub.add_parser(
        "evaluate",
        help="replay routers through the cost model; write report.html and metrics.json",
        description="Score each model pair's test split with the router artifact (the one "
        "`localroute train` wrote and `localroute serve` serves; only the baselines random, "
        "oracle and task-prior are fitted here), replay it through seed 001's latency cost model "
        "and fusion rule (a threshold x alpha "
        "sweep), replay MT-Bench turn by turn with and without context awareness, and account "
        "energy, compute and dollars against cloud-only (seed 000). Writes DIR/report.html "
        "(self-contained) and DIR/metrics.json.",
    )
    e.add_argument(
        "--config", default=DEFAULT_CONFIG, help=f"YAML config (default {DEFAULT_CONFIG})"
    )
    e.add_argument("--out", required=True, help="output directory")
    e.add_argument("--data", help="data build directory (default: the config's data.out)")
    e.add_argument(
        "--measured",
        help="directory of measured outcome rows (Parquet) for the local side "
        "(default: the config's evaluate.measured)",
    )
    e.add_argument(
        "--router-artifact",
        help="the trained router artifact directory (default: the config's "
        "evaluate.router_artifact)",
    )
    e.set_defaults(func=_evaluate)
