"""`localroute profile --config FILE`: profile the configured pools over the query table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _profile(args: argparse.Namespace) -> int:
    from cli.config import load_config
    from localroute.data.build import build
    from localroute.ray_runtime import ray_session
    from pipelines.profile import run_profile

    cfg = load_config(args.config)
    pc = cfg.profile
    data_dir = Path(args.data or pc.data or cfg.data.out)
    if not (data_dir / "queries").is_dir():
        print(f"== data: no build at {data_dir}; building it")
        build(data_dir, cfg.data.source_dir, cfg.data.sources)
    out = Path(args.out or pc.out)
    print(f"== profile: {len(pc.pools)} pool(s) into {out.resolve()}")
    with ray_session(cfg.ray):
        summary = run_profile(pc, data_dir, out, cfg.seed)
    print(json.dumps(summary, indent=1))
    return 1 if summary["errors"] and args.strict else 0


def register(sub) -> None:
    p = sub.add_parser(
        "profile",
        help="measure each pool's model on its hardware (Ray Data)",
        description="Run every pool of the config's `profile:` section over the selected queries, "
        "grade the answers and write measured outcome rows under <out>/outcomes/. A rerun skips "
        "the rows already written.",
    )
    p.add_argument("--config", required=True, help="YAML config with a profile: section")
    p.add_argument("--data", help="data build directory (default: profile.data, else data.out)")
    p.add_argument("--out", help="output directory (default: profile.out)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any row has an error")
    p.set_defaults(func=_profile)
