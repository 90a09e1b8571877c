"""The demo: every stage of the system in order, on the config's Ray (a local one by default).

data -> Ray Data (published outcomes) -> Ray Data profiling of a local model -> Ray Train router
-> evaluation report (cost model) -> Ray Serve router answering a multi-turn conversation.
"""

from __future__ import annotations

import json
from pathlib import Path


def _data(cfg, out_dir: Path) -> Path:
    from localroute.data.build import build, summary

    data_dir = out_dir / "data"
    print(f"== data: building the outcome table into {data_dir}")
    manifest = build(data_dir, cfg.data.source_dir, cfg.data.sources, log=lambda *_: None)
    counts = summary(data_dir)
    print(
        f"   {sum(counts['queries'].values())} queries, {sum(counts['outcomes'].values())} "
        f"published outcome rows from {len(manifest['sources'])} sources ({manifest['origin']})"
    )
    return data_dir


def _published_quality(data_dir: Path, out_dir: Path) -> None:
    from pipelines.data_overview import model_quality

    print("== Ray Data: mean published score per source and model")
    rows = model_quality(data_dir)
    for row in rows:
        print(f"   {row['source']:<18}{row['model']:<48}{row['mean_score']:.3f}  n={row['n']}")
    (out_dir / "model_quality.json").write_text(json.dumps(rows, indent=1) + "\n")


def _train(cfg, data_dir: Path, out_dir: Path) -> Path:
    from pipelines.routers import train_one

    rc = cfg.routers
    artifact = out_dir / "routers" / rc.default
    print(f"== Ray Train: router {rc.default} on {rc.default_data} ({rc.default_pair})")
    train_one(cfg, rc.default, rc.default_data, rc.default_pair, data_dir, artifact)
    return artifact


def run_demo(config_path: str, out: str) -> int:
    from cli.config import load_config
    from localroute.ray_runtime import ray_session
    from pipelines.evaluate import demo_stage as evaluate_stage
    from pipelines.profile import demo_stage as profile_stage
    from serve.demo import demo_stage as serve_stage

    cfg = load_config(config_path)
    out_dir = Path(out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = _data(cfg, out_dir)
    with ray_session(cfg.ray):
        _published_quality(data_dir, out_dir)
        profile_stage(cfg, out_dir)
        artifact = _train(cfg, data_dir, out_dir)
        evaluate_stage(cfg, out_dir, out_dir / "profile")
        serve_stage(cfg, out_dir, artifact)
    print("outputs:")
    for path in (
        data_dir,
        out_dir / "model_quality.json",
        out_dir / "profile",
        artifact,
        out_dir / "evaluate" / "report.html",
        out_dir / "evaluate" / "metrics.json",
        out_dir / "serve_demo.json",
    ):
        print(f"   {path}")
    return 0
