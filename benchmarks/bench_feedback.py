"""The loop as proof (issue 21): a router trained for another pair, served to traffic it was not
trained on, retrained round by round from shadow labels of that traffic and swapped in live when
it beats the served one.

Through the real Ray Serve app (cli/loop.py: published-outcome stand-ins, `serve.feedback`
sampling, `serve.router.watch_s` swapping, `train --promote-into` as the gate). Printed per round,
on a fixed held-back slice of the source (never sent): AUC and ECE of the retrained and of the
served router; the deployed operating point's cloud share and quality; the cloud share reaching
80% of the local-to-cloud quality gap against random (0.8); beside the starting router and a
router trained offline, in-domain, on every label of the traffic (the ceiling). Then an
interleaved A/B of the served p50 with shadow sampling on and off.

    .venv/bin/python benchmarks/bench_feedback.py --data runs/data --artifact runs/gbt \\
        [--source routerdc_mmlu --local meta-llama/Meta-Llama-3-8B --cloud gpt-4-1106-preview]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def matched(router, t) -> float:
    """The least cloud share whose quality reaches 80% of the local-to-cloud gap (held back)."""
    from localroute.metrics import quality_vs_cloud_share

    b = {k: v[t.held] for k, v in t.ex.items()}
    ql, qc = b["q_local"], b["q_cloud"]
    curve = quality_vs_cloud_share(router.score(b), ql, qc, n_points=201)
    target = ql.mean() + 0.8 * (qc.mean() - ql.mean())
    reached = np.nonzero(np.asarray(curve.value) >= target - 1e-12)[0]
    return float(np.asarray(curve.cloud_share)[reached[0]]) if reached.size else 1.0


def row(name: str, labels: int, router, t, serve_cfg, extra: str = "") -> str:
    from cli.loop import figures

    f, m = figures(router, t, serve_cfg), matched(router, t)
    return (
        f"{name:<26} {labels:>6}  AUC {f['auc']:.3f}  ECE {f['ece']:.3f}  deployed: cloud "
        f"{f['deployed_cloud_share']:.2f}, quality {f['deployed_quality']:.3f}  cloud at 80% of "
        f"the gap {m:.2f} ({m / 0.8:.2f}x random){extra}"
    )


def in_domain(cfg, t, out: Path, seed: int):
    """gbt trained offline on every traffic label (in-domain), calibrated on a fifth."""
    from pipelines.routers.splits import Splits
    from pipelines.routers.train import fit_router

    idx = np.random.default_rng(seed).permutation(t.pool)
    cut = len(idx) * 4 // 5

    def part(rows):
        return {k: v[rows] for k, v in t.ex.items()}

    splits = Splits(
        "in-domain", "local", "cloud", [], part(idx[:cut]), part(idx[cut:]), part(idx[:1])
    )
    return fit_router("gbt", splits, cfg.routers, seed, storage=out)[0]


def overhead_ab(loop, n: int, sample: float, seed: int) -> dict[str, float]:
    """p50 of the same app with shadow sampling on and off, requests interleaved."""
    import httpx2

    from cli.loop import AUTH
    from serve.app import free_port, start, stop
    from serve.testing.echo_local import EchoLocal

    stop()  # the loop's app goes: the A/B apps get their own HTTP port
    t, port, urls = loop.t, free_port(), {}
    local = EchoLocal.options(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.2})
    for arm, s in (("on", sample), ("off", 0.0)):
        fb = dataclasses.replace(
            loop.cfg.feedback, enabled=s > 0, sample=s, out=str(loop.work / arm)
        )
        cfg = dataclasses.replace(
            loop.cfg, app_name=f"ab-{arm}", route_prefix=f"/ab-{arm}", feedback=fb,
            router=dataclasses.replace(loop.cfg.router, watch_s=0.0),
        )  # fmt: skip
        urls[arm] = start(cfg, port=port, local=local.bind(answers=t.scripted("local")))
        urls[arm] += f"/ab-{arm}"
    lat: dict[str, list[float]] = {"on": [], "off": []}
    rng = random.Random(seed)
    with httpx2.Client(timeout=60) as c:
        for k in range(2 * n):
            arm = ("on", "off")[k % 2]
            i = int(t.pool[rng.randrange(len(t.pool))])
            headers = {
                **AUTH,
                "x-localroute-reference": t.refs[i],
                "x-localroute-grading": "mc_letter",
            }
            body = {
                "model": "localroute",
                "messages": [{"role": "user", "content": str(t.ex["text"][i])}],
            }
            t0 = time.perf_counter()
            r = c.post(urls[arm] + "/v1/chat/completions", headers=headers, json=body)
            if r.status_code == 200:
                lat[arm].append(time.perf_counter() - t0)
    stop()
    return {a: statistics.median(v) * 1000 for a, v in lat.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="runs/data")
    ap.add_argument("--artifact", required=True, help="the starting router (another pair)")
    ap.add_argument("--config", default="configs/local.yaml")
    ap.add_argument("--source", default="routerdc_mmlu")
    ap.add_argument("--local", default="meta-llama/Meta-Llama-3-8B")
    ap.add_argument("--cloud", default="gpt-4-1106-preview")
    ap.add_argument("--sample", type=float, default=0.2)
    ap.add_argument("--round-labels", type=int, default=400)
    ap.add_argument("--max-labels", type=int, default=2000)
    ap.add_argument("--holdback", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--ab", type=int, default=300, help="requests per arm of the overhead A/B")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--prior",
        default="routellm_mmlu",
        help="public source(s) retrained with the shadow labels as a weighted prior (empty: none)",
    )
    args = ap.parse_args()

    from cli.config import load_config
    from cli.loop import LoopServer, published_traffic
    from localroute.config import RayConfig
    from localroute.ray_runtime import init_ray
    from localroute.routers import load_router

    cfg = load_config(args.config)
    data = Path(args.data)
    t = published_traffic(data, args.source, args.local, args.cloud, args.holdback, args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-feedback-"))
    start = load_router(args.artifact)
    print(
        f"load average {load()}; traffic {args.source} ({args.local} vs {args.cloud}): "
        f"{len(t.pool)} prompts, {len(t.held)} held back; start {start.artifact_id} "
        f"(trained on {start.info.get('source')}: transfer)"
    )
    print(row("start (transfer)", 0, start, t, cfg.serve))
    print(
        row(
            "in-domain, all labels",
            len(t.pool),
            in_domain(cfg, t, work / "rt", args.seed),
            t,
            cfg.serve,
        )
    )
    init_ray(RayConfig(num_cpus=4))
    result: dict = {"rounds": []}
    with LoopServer(cfg.serve, t, Path(args.artifact), work / "loop", args.sample) as loop:
        t0, labels = time.perf_counter(), 0
        while labels < args.max_labels:
            labels += args.round_labels
            loop.send_until(labels, args.clients)
            r = loop.retrain(cfg, data, args.prior or None)
            served = load_router(loop.watched)
            verdict = "promoted" if r["promoted"] else "kept the served one"
            tail = (
                f"  [{verdict}; {loop.sent} requests, {loop.failed} failed, "
                f"{time.perf_counter() - t0:.0f} s, load {load()}]"
            )
            print(
                row(
                    f"retrained, round {labels // args.round_labels}",
                    r["labels"],
                    r["router"],
                    t,
                    cfg.serve,
                )
            )
            print(row("  served now", r["labels"], served, t, cfg.serve, tail))
            result["rounds"].append(
                {
                    "labels": r["labels"],
                    "promoted": r["promoted"],
                    "retrained_auc": r["auc"],
                    "serving_auc": r["serving_auc"],
                }
            )
        p50 = overhead_ab(loop, args.ab, args.sample, args.seed)
        print(
            f"shadow sampling {args.sample:.0%} vs off, {args.ab} interleaved requests each: "
            f"p50 {p50['on']:.2f} ms vs {p50['off']:.2f} ms (+{p50['on'] - p50['off']:.2f} ms); "
            f"load {load()}"
        )
        result.update(p50_ms=p50, sent=loop.sent, failed=loop.failed)
    (work / "result.json").write_text(json.dumps(result, indent=1))
    print(f"work dir {work}; load average {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
