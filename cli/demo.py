"""The demo: every stage of the system in order, on the config's Ray (a local one by default).

data -> Ray Data (published outcomes) -> Ray Data profiling of a local model -> Ray Train router
-> evaluation of that router artifact (cost model, report) -> Ray Serve serving that artifact to
a multi-turn conversation. The terminal gets one header, a live timer and one result line per
stage and a summary table; everything the libraries print goes to ``<out>/logs/demo.log``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from cli.console import Console
from localroute.errors import LocalrouteError

STAGES = 7


def _data(cfg, out_dir: Path, con: Console) -> Path:
    from localroute.data.build import build, summary

    data_dir = out_dir / "data"
    with con.stage("data", "the outcome table from public per-query results") as row:
        manifest = build(data_dir, cfg.data.source_dir, cfg.data.sources, log=lambda *_: None)
        counts = summary(data_dir)
        row.measured = (
            f"{sum(counts['queries'].values())} queries, {sum(counts['outcomes'].values())} "
            f"outcome rows, {len(manifest['sources'])} sources"
        )
        row.output = str(data_dir)
    return data_dir


def _published_quality(data_dir: Path, out_dir: Path, con: Console) -> None:
    from pipelines.data_overview import model_quality

    with con.stage("Ray Data", "mean published score per source and model") as row:
        rows = model_quality(data_dir)
        path = out_dir / "model_quality.json"
        path.write_text(json.dumps(rows, indent=1) + "\n")
        row.measured = f"{len(rows)} (source, model) means"
        row.output = str(path)


def _profile(cfg, out_dir: Path, con: Console) -> None:
    from pipelines.profile import demo_stage

    with con.stage("profile", "Ray Data runs the local model on real queries") as row:
        res = demo_stage(cfg, out_dir)
        med = res.get("median_latency_s")
        row.measured = (
            f"{res.get('rows', 0)} rows of {', '.join(res.get('models', []))}, median "
            f"{med:.2f} s (measured)"
            if med
            else f"{res.get('rows', 0)} rows"
        )
        row.output = str(res.get("written", out_dir / "profile"))


def with_measured_local(cfg, profile_dir: Path):
    """The serve section's latency model takes the local model's measured per-token times from
    the profile just run (when it wrote rows): train chooses alpha and theta on it, serve uses it
    as its prior, evaluate replays it."""
    import dataclasses

    from localroute.config import ConfigPath

    if not any(profile_dir.rglob("*.parquet")):
        return cfg
    s = cfg.serve
    lat = dataclasses.replace(s.latency, measured=ConfigPath(profile_dir))
    cfg.sections["serve"] = dataclasses.replace(s, latency=lat)
    return cfg


def _train(cfg, data_dir: Path, out_dir: Path, con: Console) -> Path:
    from pipelines.routers import train_one

    rc = cfg.routers
    artifact = out_dir / "routers" / rc.default
    with con.stage("train", f"router {rc.default} on {rc.default_data} ({rc.default_pair})") as row:
        metrics = train_one(cfg, rc.default, rc.default_data, rc.default_pair, data_dir, artifact)
        test = metrics.get("test", {})
        auc = test.get("auc")
        band = metrics["random_band"]  # a coin's test AUC over 20 seeds: (mean, std)
        text = f"test AUC {auc:.3f}" if isinstance(auc, float) and math.isfinite(auc) else "AUC -"
        text += f" vs random {band[0]:.3f} +/- {band[1]:.3f} (20 seeds)"
        ece = test.get("ece")
        if isinstance(ece, float):
            text += f", ECE {ece:.3f}"
        row.measured = text
        row.output = str(artifact)
    return artifact


def _evaluate(cfg, out_dir: Path, artifact: Path, con: Console) -> None:
    from pipelines.evaluate import demo_stage

    with con.stage("evaluate", "the served artifact through the cost model") as row:
        res = demo_stage(cfg, out_dir, out_dir / "profile", artifact=artifact)
        row.measured = str(res.get("headline", "report written"))
        row.output = str(out_dir / "evaluate" / "report.html")


def _serve(cfg, out_dir: Path, artifact: Path, con: Console) -> None:
    from serve.demo import demo_stage

    with con.stage("serve", "Ray Serve answers a 3-turn conversation") as row:
        res = demo_stage(cfg, out_dir, artifact)
        if res.get("pairing"):  # a stand-in router says so, in one line
            con.say(f"      {res['pairing']}")
        turns = res.get("turns", [])
        for t in turns:
            p, side = t.get("p"), t.get("decision", "?")
            first = " ".join(str(t.get("answer", "")).split()[:6])
            con.say(f"      turn {t.get('turn')}: {side:<5} p={p}  {first}")
        sides = [t.get("decision") for t in turns]
        row.measured = f"{len(turns)} turns served: " + ", ".join(str(s) for s in sides)
        row.output = str(out_dir / "serve_demo.json")


LOOP_SOURCE, LOOP_LOCAL, LOOP_CLOUD = (
    "routerdc_mmlu",
    "meta-llama/Meta-Llama-3-8B",
    "gpt-4-1106-preview",
)


def _loop(cfg, data_dir: Path, out_dir: Path, artifact: Path, con: Console) -> None:
    """TrafficBench's loop on real published outcomes: the demo's router served to traffic of
    another pair (stand-ins answer with that pair's published outcomes), shadow labels, one
    retrain, promoted only if it beats the served router on held-out labels."""
    from cli.loop import LoopServer, figures, published_traffic
    from localroute.routers import load_router

    with con.stage("loop", "shadow labels from live traffic, one retrain, the live swap") as row:
        if not (data_dir / "outcomes" / f"{LOOP_SOURCE}.parquet").is_file():
            row.measured = f"skipped: {LOOP_SOURCE} needs ../shared/data (not shippable)"
            return
        t = published_traffic(data_dir, LOOP_SOURCE, LOOP_LOCAL, LOOP_CLOUD, 600, cfg.seed)
        before = figures(load_router(artifact), t, cfg.serve)
        with LoopServer(cfg.serve, t, artifact, out_dir / "loop", sample=0.3) as loop:
            loop.send_until(300)
            r = loop.retrain(cfg, data_dir, prior="routellm_mmlu")
            served = load_router(loop.watched)
        new = figures(r["router"], t, cfg.serve)
        con.say(
            f"      {loop.sent} requests of {LOOP_SOURCE} traffic ({LOOP_LOCAL} vs {LOOP_CLOUD}: "
            f"stand-ins answering their published outcomes), {loop.failed} failed, "
            f"{r['labels']} shadow labels"
        )
        gate = f"the gate, {r['n']} held-out shadow labels"
        verdict = f"promoted by {gate}" if r["promoted"] else f"no clear win for {gate}"
        row.measured = (
            f"held-back AUC {before['auc']:.3f} -> retrained {new['auc']:.3f}, ECE "
            f"{before['ece']:.3f} -> {new['ece']:.3f} ({verdict}; serving {served.artifact_id})"
        )
        row.output = str(out_dir / "loop")


def run_demo(config_path: str, out: str, verbose: bool = False) -> int:
    from cli.config import load_config
    from localroute.ray_runtime import ray_session

    cfg = load_config(config_path)
    out_dir = Path(out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "logs" / "demo.log"
    with Console(log, verbose=verbose, n_stages=STAGES) as con:
        con.say(f"localroute demo: {config_path} -> {out_dir}")
        try:
            data_dir = _data(cfg, out_dir, con)
            with ray_session(cfg.ray, log_to_driver=verbose):
                _published_quality(data_dir, out_dir, con)
                _profile(cfg, out_dir, con)
                cfg = with_measured_local(cfg, out_dir / "profile")
                artifact = _train(cfg, data_dir, out_dir, con)
                _evaluate(cfg, out_dir, artifact, con)
                _serve(cfg, out_dir, artifact, con)
                _loop(cfg, data_dir, out_dir, artifact, con)
        except LocalrouteError:
            raise  # the CLI prints its one line
        except Exception as exc:
            stage = con.rows[-1].name if con.rows else "data"
            raise DemoError(
                f"{stage} stage failed: {type(exc).__name__}: {exc} (log: {log})"
            ) from exc
        con.summary()
    return 0


class DemoError(LocalrouteError):
    """A stage failed for a reason outside the user's input; the log has the whole story."""
