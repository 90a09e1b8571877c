"""`localroute report DIR`: rebuild DIR/report.html from DIR/metrics.json, without re-running."""

from __future__ import annotations

import argparse
from pathlib import Path


def _report(args: argparse.Namespace) -> int:
    from localroute.errors import ConfigError
    from localroute.report import write_report

    out = Path(args.dir)
    metrics = out / "metrics.json"
    if not metrics.is_file():
        raise ConfigError(f"{metrics}: not found (run `localroute evaluate --out {out}` first)")
    path = write_report(metrics, out / "report.html")
    print(f"wrote {Path(path).resolve()}")
    return 0


def register(sub) -> None:
    r = sub.add_parser(
        "report",
        help="regenerate report.html from an evaluation's metrics.json",
        description="Render DIR/report.html again from DIR/metrics.json (written by "
        "`localroute evaluate`), e.g. after an upgrade, without re-running the evaluation.",
    )
    r.add_argument("dir", help="an evaluation's output directory")
    r.set_defaults(func=_report)
