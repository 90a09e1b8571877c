"""`localroute evaluate` and the demo's evaluate stage: experiments -> metrics.json + report.html.

Latency and energy figures come from measured outcome rows where there are any (the local side),
else are calibrated from ML.ENERGY, else come from the config (seed 001's Table I); each carries
its provenance into both outputs. The learned router is the artifact `localroute train` wrote
(the one that is served), scored on every pair; only baselines are fitted here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from localroute.errors import ConfigError
from pipelines.evaluate.config import EvaluateConfig
from pipelines.evaluate.context import EvalContext, RouterArtifact, load_artifact, make_context
from pipelines.evaluate.deployed import DeployedSpec
from pipelines.evaluate.experiments import all_experiments
from pipelines.evaluate.pairs import PairTables
from pipelines.evaluate.scoring import LEARNED
from pipelines.evaluate.summary import summarise

MISSING_ARTIFACT = (
    "evaluate.router_artifact is not set: evaluate scores the router artifact `localroute train` "
    "wrote (the router that is served); set evaluate.router_artifact to its directory or pass "
    "--router-artifact DIR"
)


def clean(obj: Any) -> Any:
    """NaN/inf to None, numpy to Python, recursively (JSON: absent is null, never 0)."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


def resolve_artifact(ev: EvaluateConfig, artifact: str | Path | None) -> RouterArtifact | None:
    """The artifact argument, else evaluate.router_artifact (absolute or relative to the working
    directory); an error naming the key when the configured routers need one and none is given."""
    path = artifact if artifact is not None else ev.router_artifact
    if path is None:
        if LEARNED in ev.routers:
            raise ConfigError(MISSING_ARTIFACT)
        return None
    return load_artifact(Path(path))


def _header(ctx: EvalContext) -> dict[str, Any]:
    link, m, a = ctx.link, ctx.measured, ctx.artifact
    return {
        "link": {
            "name": link.name,
            "bandwidth_tokens_s": link.bandwidth_tokens_s,
            "uplink_tokens_s": link.upload_tokens_s,
            "overhead_s": link.overhead_s,
            "provenance": link.provenance,
            "source": link.source,
        },
        "measured": None
        if m is None
        else {"model": m.model, "hardware": m.hardware, "rows": m.n_rows, "path": m.path},
        "mlenergy": None if ctx.mlenergy is None else str(ctx.mlenergy.root),
        "artifact": None
        if a is None
        else {
            **a.to_dict(),
            "scope": f"trained on {a.source} ({a.local} vs {a.cloud}); every pair is scored "
            "with this one artifact, the router that is served",
        },
    }


def run_evaluate(
    cfg,
    data_dir: str | Path,
    out_dir: str | Path,
    measured_dir: str | Path | None = None,
    log=print,
    evaluate: EvaluateConfig | None = None,
    artifact: str | Path | None = None,
) -> dict[str, Any]:
    """Run every experiment on a data build; write out_dir/metrics.json and out_dir/report.html.

    ``cfg`` is a loaded :class:`localroute.config.Config`; ``evaluate`` overrides its section;
    ``artifact`` (a router artifact directory) overrides ``evaluate.router_artifact``.
    """
    from localroute.report import write_report

    t0 = time.perf_counter()
    ev: EvaluateConfig = evaluate if evaluate is not None else cfg.evaluate
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if not (data_dir / "outcomes").is_dir():
        raise ConfigError(
            f"{data_dir}: not a data build (no outcomes/); run `localroute data build`"
        )
    art = resolve_artifact(ev, artifact)
    if art is not None:
        log(f"== evaluate: router artifact {art.path} ({art.name}, fingerprint {art.fingerprint})")
    ctx = make_context(
        ev,
        cfg.seed,
        data_dir,
        Path(measured_dir) if measured_dir else None,
        log,
        artifact=art,
        router_params=dict(cfg.routers.params),
        deployed=DeployedSpec.from_serve(getattr(cfg, "serve", None)),
    )
    metrics = _header(ctx)
    tables = PairTables(ctx)
    for experiment in all_experiments(ev, ctx):
        metrics[experiment.key] = experiment.run(tables, ctx)
    metrics["summary"] = summarise(metrics)
    metrics["routers"] = {
        label: (art.name if label == LEARNED and art else label) for label in ev.routers
    }
    metrics["notes"] = ctx.notes
    metrics["elapsed_s"] = time.perf_counter() - t0
    metrics = clean(metrics)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    write_report(metrics, out_dir / "report.html")
    log(f"   evaluate took {metrics['elapsed_s']:.1f} s")
    return metrics


def headline(metrics: dict[str, Any]) -> str:
    """One line for the demo's table: at matched accuracy on the first pair, the cloud share
    learned + fusion needs beside random + fusion's, and what the learned router saves."""
    rows = metrics.get("summary", {}).get("rows", [])
    learned = [r for r in rows if r["policy"] == "learned + fusion"]
    if not learned:
        return "report written"
    r = learned[0]
    if not r["reached"]:
        return f"{r['pair']}: learned + fusion does not reach matched accuracy"
    rnd = next(
        (x for x in rows if x["pair"] == r["pair"] and x["policy"] == "random + fusion"), None
    )
    share = f"{r['pair']} at accuracy {r['quality']:.3f}: cloud {100 * r['cloud_share']:.0f}%"
    if rnd and rnd["reached"]:
        share += f" (random {100 * rnd['cloud_share']:.0f}%)"
    saved = r["savings_vs_cloud_only"]
    parts = [
        f"{name} {100 * saved[k]:.0f}%"
        for k, name in (("energy_j", "energy"), ("cost_usd", "cost"))
        if saved.get(k) is not None
    ]
    return share + (f"; saves {', '.join(parts)}" if parts else "")


def demo_stage(
    cfg, out_dir: Path, measured_dir: Path | None, artifact: str | Path | None = None
) -> dict[str, Any]:
    """The demo's evaluate stage: data already built at out_dir/'data' (Ray already started);
    ``artifact``: the router artifact the demo trained (else evaluate.router_artifact)."""
    out_dir = Path(out_dir)
    eval_dir = out_dir / "evaluate"
    ev: EvaluateConfig = cfg.evaluate
    scaled = dataclasses.replace(
        ev,
        max_train_rows=ev.max_train_rows or ev.demo.max_train_rows,
        max_test_rows=ev.max_test_rows or ev.demo.max_test_rows,
    )
    print(
        f"== evaluate (demo scale: <= {scaled.max_train_rows} train, <= {scaled.max_test_rows} "
        f"test rows per pair; `localroute evaluate` runs on every row)"
    )
    if measured_dir is not None and not Path(measured_dir).exists():
        print(f"   note: no measured rows at {measured_dir}; local figures are calibrated")
        measured_dir = None
    metrics = run_evaluate(
        cfg, out_dir / "data", eval_dir, measured_dir, evaluate=scaled, artifact=artifact
    )
    print(f"   {eval_dir / 'report.html'}  (self-contained report)")
    print(f"   {eval_dir / 'metrics.json'}")
    return {
        "report": str(eval_dir / "report.html"),
        "metrics": str(eval_dir / "metrics.json"),
        "elapsed_s": metrics.get("elapsed_s"),
        "headline": headline(metrics),
    }
