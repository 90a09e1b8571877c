"""The demo: each stage of the system in order, on the config's Ray (a local one by default)."""

from __future__ import annotations

import json
from pathlib import Path


def run_demo(config_path: str, out: str) -> int:
    from localroute.config import load_config
    from localroute.data.build import build, summary
    from localroute.ray_runtime import ray_session
    from pipelines.data_overview import model_quality

    cfg = load_config(config_path)
    out_dir = Path(out).resolve()
    data_dir = out_dir / "data"
    print(f"== data: building the outcome table into {data_dir}")
    manifest = build(data_dir, cfg.data.source_dir, cfg.data.sources)
    counts = summary(data_dir)
    print(
        f"   {sum(counts['queries'].values())} queries, {sum(counts['outcomes'].values())} "
        f"published outcome rows from {len(manifest['sources'])} sources ({manifest['origin']})"
    )
    with ray_session(cfg.ray):
        print("== Ray Data: mean score per source and model (published outcomes)")
        rows = model_quality(data_dir)
        for row in rows:
            print(f"   {row['source']:<18}{row['model']:<48}{row['mean_score']:.3f}  n={row['n']}")
        (out_dir / "model_quality.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("outputs:")
    print(f"   {data_dir}  (Parquet tables, manifest.json, NOTICE)")
    print(f"   {out_dir / 'model_quality.json'}")
    return 0
