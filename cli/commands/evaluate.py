"""`localroute evaluate`: seed 001's and seed 000's experiments on a data build -> report.html."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_CONFIG = "configs/local.yaml"


def _evaluate(args: argparse.Namespace) -> int:
    from cli.config import load_config
    from localroute.errors import ConfigError
    from pipelines.evaluate import run_evaluate

    cfg = load_config(args.config)
    out = Path(args.out)
    if args.data and args.data.startswith("feedback:"):  # drift on serve's shadow labels
        from pipelines.evaluate.drift import run_drift

        artifact = args.router_artifact or cfg.evaluate.router_artifact
        if not artifact:
            raise ConfigError("evaluate --data feedback:DIR needs --router-artifact")
        d = run_drift(Path(args.data.removeprefix("feedback:")), str(artifact), out)
        a = d["all"]
        print(
            f"{a['n']} shadow labels in {len(d['batches'])} batches: AUC {a['auc']}, "
            f"Brier {a['brier']:.4f}"
        )
        print(f"wrote {out.resolve() / 'report.html'}")
        return 0
    data_dir = Path(args.data or cfg.data.out)
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
    e.add_argument(
        "--data",
        help="data build directory (default: the config's data.out); feedback:DIR: the router "
        "artifact's drift on the shadow labels `serve.feedback` wrote there",
    )
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
