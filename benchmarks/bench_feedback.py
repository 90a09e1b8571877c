"""The loop as proof (issue 21): a router trained for another pair, served to traffic it was not
trained on, learns from shadow labels of that traffic and is swapped in live, round by round.

Through the real Ray Serve app (`serve.feedback` sampling, `serve.router.watch_s` swapping):
stand-in local and cloud deployments answer each query of a public source with the *published*
outcome of a real pair (the local stand-in gives the reference letter exactly where that model
was right, a wrong one elsewhere; the same for the cloud), and each request carries its reference,
so the grader labels it as the published outcomes do. The starting router is an artifact trained
on another source/pair (default: gbt on routellm_mmlu, Mixtral-8x7B vs gpt-4-1106), declared as
a stand-in; each round, after `--round-labels` more shadow labels, `localroute train --data
feedback:DIR` retrains it into the watched directory and the server adopts it. Printed per round,
on a fixed held-back slice of the source (never sent): AUC and ECE; cloud share and quality at the
deployed operating point; cloud share at matched quality against random; and the same figures of
a router trained offline, in-domain, on every label of the traffic (the ceiling), first the
starting router's. Then an interleaved A/B of the served p50 with shadow sampling on and off.

    .venv/bin/python benchmarks/bench_feedback.py --data runs/data --artifact runs/gbt \\
        [--source routerdc_mmlu --local meta-llama/Meta-Llama-3-8B --cloud gpt-4-1106-preview]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
KEY = "sk-bench-" + "feedback"
AUTH = {"Authorization": f"Bearer {KEY}"}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def wrong(letter: str) -> str:
    return "B" if letter != "B" else "C"


def traffic(data: Path, source: str, local: str, cloud: str, holdback: int, seed: int):
    """(examples as a batch, reference per prompt, held-back row indices, traffic indices)."""
    from localroute.data.build import read_table
    from localroute.routers.examples import pair_examples, to_batch

    ex = to_batch(pair_examples(data, source, local, cloud))
    q = read_table(data, "queries", [source]).select(["query_id", "reference"])
    ref = dict(zip(q["query_id"].to_pylist(), q["reference"].to_pylist(), strict=True))
    keep = np.array([ref.get(i) is not None for i in ex["query_id"]])
    ex = {k: v[keep] for k, v in ex.items()}
    # Right or wrong, as the stand-ins answer: RouterDC publishes the probability of the right
    # letter (a score in [0, 1]); the model's answer is the right letter where it is >= 0.5.
    for side in ("local", "cloud"):
        ex[f"q_{side}"] = (np.asarray(ex[f"q_{side}"], float) >= 0.5).astype(float)
    ex["label"] = (ex["q_local"] < ex["q_cloud"]).astype(np.int8)
    order = np.random.default_rng(seed).permutation(len(ex["text"]))
    return ex, [ref[i] for i in ex["query_id"]], order[:holdback], order[holdback:]


def scripted(ex: dict, refs: list[str], side: str) -> dict[str, str]:
    """The stand-in's answer per prompt: the reference where the model was right."""
    q = ex[f"q_{side}"]
    return {
        str(t): (r if q[i] >= 1 else wrong(r))
        for i, (t, r) in enumerate(zip(ex["text"], refs, strict=True))
    }


def figures(router, ex: dict, idx: np.ndarray, point, prior) -> dict:
    """AUC, ECE, the deployed point and matched-quality cloud share on the held-back slice."""
    from localroute.core.controller import RouteController, replay
    from localroute.metrics import quality_vs_cloud_share, roc_auc
    from localroute.routers.calibration import ece

    b = {k: v[idx] for k, v in ex.items()}
    p = router.score(b)
    ql, qc = b["q_local"].astype(float), b["q_cloud"].astype(float)
    r = replay(RouteController(point, prior), p, b["prompt_words"].astype(float))
    share = r.cloud_share
    quality = float(np.where(r.decision == 1, qc, ql).mean())
    target = ql.mean() + 0.8 * (qc.mean() - ql.mean())
    curve = quality_vs_cloud_share(p, ql, qc, n_points=201)
    reached = np.nonzero(np.asarray(curve.value) >= target - 1e-12)[0]
    matched = float(np.asarray(curve.cloud_share)[reached[0]]) if reached.size else 1.0
    random_share = 0.8  # random reaches 80% of the gap at 80% cloud share, in expectation
    return {
        "auc": roc_auc(b["label"], p),
        "ece": ece(p, b["label"]),
        "deployed_cloud_share": share,
        "deployed_quality": quality,
        "cloud_share_at_80pct_gap": matched,
        "vs_random": matched / random_share,
    }


def row(name: str, labels: int, f: dict) -> str:
    return (
        f"{name:<22} {labels:>6}  AUC {f['auc']:.3f}  ECE {f['ece']:.3f}  deployed: cloud "
        f"{f['deployed_cloud_share']:.2f}, quality {f['deployed_quality']:.3f}  cloud at 80% of "
        f"the gap {f['cloud_share_at_80pct_gap']:.2f} ({f['vs_random']:.2f}x random)"
    )


def offline_router(cfg, ex: dict, idx: np.ndarray, out: Path, seed: int):
    """gbt trained offline on `idx` rows of the traffic (in-domain), calibrated on a fifth."""
    from pipelines.routers.splits import Splits
    from pipelines.routers.train import fit_router

    rng = np.random.default_rng(seed)
    idx = rng.permutation(idx)
    cut = len(idx) * 4 // 5
    part = lambda rows: {k: v[rows] for k, v in ex.items()}  # noqa: E731
    splits = Splits(
        "in-domain", "local", "cloud", [], part(idx[:cut]), part(idx[cut:]), part(idx[:1])
    )
    router, _ = fit_router("gbt", splits, cfg.routers, seed, storage=out)
    return router


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
        "--union",
        default="routellm_mmlu",
        help="public source(s) retrained with the shadow labels as a prior (empty: none)",
    )
    args = ap.parse_args()

    import httpx2

    from cli.config import load_config
    from localroute.config import RayConfig
    from localroute.core.operating_point import resolve_operating_point
    from localroute.ray_runtime import init_ray
    from localroute.routers import load_router
    from pipelines.routers.train import train_one
    from serve.app import start, stop
    from serve.config import AuthConfig, CloudModelConfig, LocalModelConfig, RouterSpec
    from serve.feedback import FeedbackConfig
    from serve.testing.echo import EchoServer
    from serve.testing.echo_local import EchoLocal

    cfg = load_config(args.config)
    data = Path(args.data)
    ex, refs, held, pool = traffic(
        data, args.source, args.local, args.cloud, args.holdback, args.seed
    )
    work = Path(tempfile.mkdtemp(prefix="bench-feedback-"))
    watched, fb = work / "router", work / "feedback"
    shutil.copytree(args.artifact, watched)
    start_router = load_router(watched)
    prior = cfg.serve.deployment_latency().prior()

    def point_of(router):
        return resolve_operating_point(router, alpha=cfg.serve.alpha, theta=cfg.serve.theta)

    print(
        f"load average {load()}; traffic {args.source} ({args.local} vs {args.cloud}): "
        f"{len(pool)} prompts, {len(held)} held back; start {start_router.artifact_id} "
        f"(trained on {start_router.info.get('source')}: transfer)"
    )
    ceiling = offline_router(cfg, ex, pool, work / "rt", args.seed)
    print(
        row("start (transfer)", 0, figures(start_router, ex, held, point_of(start_router), prior))
    )
    print(
        row(
            "in-domain, all labels", len(pool), figures(ceiling, ex, held, point_of(ceiling), prior)
        )
    )

    init_ray(RayConfig(num_cpus=4))
    texts = [str(t) for t in ex["text"]]
    with EchoServer(answers=scripted(ex, refs, "cloud")) as cloud:
        names = {"local": args.local, "cloud": args.cloud}
        base = dataclasses.replace(
            cfg.serve,
            access_log=False,
            router=RouterSpec(
                artifact=str(watched),
                stand_ins={
                    start_router.info["local"]: args.local,
                    start_router.info["cloud"]: args.cloud,
                },
                watch_s=0.5,
            ),
            auth=AuthConfig(api_keys=[KEY], api_keys_env="LR_BENCH_UNSET"),
            cloud=CloudModelConfig(
                base_url=cloud.base_url, model=names["cloud"], api_key_env="LR_BENCH_UNSET"
            ),
            local=LocalModelConfig(model="tiny", model_name=names["local"], concurrency=16),
            feedback=FeedbackConfig(
                enabled=True,
                sample=args.sample,
                seed=args.seed,
                out=str(fb),
                flush_rows=50,
                max_per_minute=100_000,
                budget_tokens=None,
                queue=1024,
            ),
        )
        local = EchoLocal.options(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.2})
        url = start(base, port=0, local=local.bind(answers=scripted(ex, refs, "local")))
        order = [int(i) for i in pool]
        cursor, sent, failures = 0, 0, 0
        lock = threading.Lock()

        def send_until(labels: int) -> None:
            nonlocal cursor, sent, failures

            def written() -> float:
                txt = httpx2.get(url + "/metrics", timeout=10).text
                return sum(
                    float(x.rsplit(" ", 1)[1])
                    for x in txt.splitlines()
                    if x.startswith("localroute_feedback_written")
                )

            stop_at = threading.Event()

            def client() -> None:
                nonlocal cursor, sent, failures
                with httpx2.Client(timeout=60) as c:
                    while not stop_at.is_set():
                        with lock:
                            i = order[cursor % len(order)]
                            cursor += 1
                        r = c.post(
                            url + "/v1/chat/completions",
                            headers={
                                **AUTH,
                                "x-localroute-reference": refs[i],
                                "x-localroute-grading": "mc_letter",
                            },
                            json={
                                "model": "localroute",
                                "messages": [{"role": "user", "content": texts[i]}],
                                "max_tokens": 4,
                            },
                        )
                        with lock:
                            sent += 1
                            failures += r.status_code != 200

            threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
            for t in threads:
                t.start()
            while written() < labels:
                time.sleep(0.5)
            stop_at.set()
            for t in threads:
                t.join(timeout=60)

        labels, t0 = 0, time.perf_counter()
        while labels < args.max_labels:
            labels += args.round_labels
            send_until(labels)
            out = work / "train"
            shutil.rmtree(out, ignore_errors=True)
            spec = f"feedback:{fb}" + (f",{args.union}" if args.union else "")
            train_one(cfg, "gbt", spec, f"{args.local},{args.cloud}", data, out)
            fresh = load_router(out)
            fresh.save(watched)  # weights, then router.json: the server polls and swaps
            deadline = time.monotonic() + 60
            while (
                httpx2.get(url + "/v1/models", headers=AUTH, timeout=10).json()["data"][0][
                    "fingerprint"
                ]
                != fresh.fingerprint
            ):
                assert time.monotonic() < deadline, "not swapped"
                time.sleep(0.2)
            n = fresh.info["labels"]["feedback"]
            print(
                row(
                    f"served after round {labels // args.round_labels}",
                    n,
                    figures(fresh, ex, held, point_of(fresh), prior),
                )
                + f"  [{sent} requests, {failures} failed, {time.perf_counter() - t0:.0f} s, "
                f"load {load()}]"
            )
        stop()

        # Shadow sampling's cost on the served p50: the same app with and without it, interleaved.
        from serve.app import free_port

        lat = {"on": [], "off": []}
        urls, port = {}, free_port()  # one Serve HTTP proxy for both apps
        for arm, sample in (("on", args.sample), ("off", 0.0)):
            fcfg = dataclasses.replace(
                base.feedback, enabled=sample > 0, sample=sample, out=str(work / f"ab-{arm}")
            )
            urls[arm] = (
                start(
                    dataclasses.replace(
                        base,
                        app_name=f"ab-{arm}",
                        route_prefix=f"/ab-{arm}",
                        feedback=fcfg,
                        router=dataclasses.replace(base.router, watch_s=0.0),
                    ),
                    port=port,
                    local=local.bind(answers=scripted(ex, refs, "local")),
                )
                + f"/ab-{arm}"
            )
        rng = random.Random(args.seed)
        with httpx2.Client(timeout=60) as c:
            for k in range(2 * args.ab):
                arm = ("on", "off")[k % 2]
                i = order[rng.randrange(len(order))]
                t1 = time.perf_counter()
                r = c.post(
                    urls[arm] + "/v1/chat/completions",
                    headers={
                        **AUTH,
                        "x-localroute-reference": refs[i],
                        "x-localroute-grading": "mc_letter",
                    },
                    json={
                        "model": "localroute",
                        "messages": [{"role": "user", "content": texts[i]}],
                        "max_tokens": 4,
                    },
                )
                if r.status_code == 200:
                    lat[arm].append(time.perf_counter() - t1)
        p50 = {a: statistics.median(v) * 1000 for a, v in lat.items()}
        print(
            f"shadow sampling {args.sample:.0%} vs off, {args.ab} interleaved requests each: p50 "
            f"{p50['on']:.2f} ms vs {p50['off']:.2f} ms (+{p50['on'] - p50['off']:.2f} ms); "
            f"load {load()}"
        )
        stop()
    print(f"work dir {work}; load average {load()}")
    (work / "result.json").write_text(json.dumps({"p50_ms": p50}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
