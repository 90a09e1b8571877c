"""The served decision, as deployed (issue 19): does p decide, and does a target share hold?

Four phases, one run, load average printed before and after each:

1. **offline replay** (no server): each source's test prompts, taken as traffic the artifact
   was not trained on, scored by the artifact and decided in arrival order by the server's own
   controller (`localroute.core.controller.replay`) with `target_cloud_share` and the default
   bounds; the cloud share once the tracker is ready (after `target_min_samples`) beside
   the target;
2. **default config through the real server** (Ray Serve, the configured local model, e.g.
   SmolLM2-135M-Instruct on this CPU, a loopback echo server standing in for the cloud): easy
   and hard prompts (the artifact's lowest and highest p on a mixed pool), interleaved, from
   `--clients` concurrent clients; the cloud share of each kind, and both sides chosen in the
   last half (no lock-in);
3. **target share through the real server**: `--n-share` mixed requests from `--clients`
   clients with `serve.target_cloud_share`; the share over the last `--last` responses;
4. the same **with other load**: background clients keep the local model busy through
   `router-always-local-0` (neither steered nor observed by the tracker), so local answers
   are slower while the share is measured.

    .venv/bin/python benchmarks/bench_served_decision.py --artifact runs/gbt --data runs/data \
        [--config configs/local.yaml] [--measured runs/demo/profile] [--target 0.3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
KEY = "sk-bench-" + "5e6f7a8b"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def prompts(data_dir: Path, per_source: int, seed: int) -> dict[str, list[str]]:
    """The first user turn of up to `per_source` test queries of every source, seeded order."""
    from localroute.data.build import read_table

    t = read_table(data_dir, "queries").select(["source", "turns", "split"])
    out: dict[str, list[str]] = {}
    for src, turns, split in zip(*(t[c].to_pylist() for c in t.column_names), strict=True):
        if split == "test":
            first = next((m["content"] for m in turns if m["role"] == "user"), None)
            if first and first.strip():
                out.setdefault(src, []).append(first)
    rng = random.Random(seed)
    for src in out:
        rng.shuffle(out[src])
        out[src] = out[src][:per_source]
    return out


def score(router, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(p, prompt words) as the server computes them for a one-message request."""
    from localroute.routers.features import request_batch

    rows = [request_batch([{"role": "user", "content": t}], "unknown") for t in texts]
    batch = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    return router.score(batch), batch["prompt_words"].astype(float)


def offline(router, point, prior, pool: dict[str, list[str]], warmup: int) -> list[dict]:
    from localroute.core.controller import RouteController, replay

    rows = []
    for src in sorted(pool):
        p, lp = score(router, pool[src])
        r = replay(RouteController(point, prior), p, lp)
        after = r.decision[warmup:]
        rows.append(
            {
                "source": src,
                "n": len(p),
                "cloud_share_after_warmup": float(after.mean()) if after.size else None,
                "theta_final": float(r.theta[-1]),
            }
        )
    return rows


def serve_cfg(base, artifact: Path, echo_url: str, **over):
    from serve.config import AuthConfig

    # the echo stands in for the configured cloud model, in the declared stand-ins too
    stand_ins = {
        k: ("echo-cloud" if v == base.cloud.model else v) for k, v in base.router.stand_ins.items()
    }
    return dataclasses.replace(
        base,
        host="127.0.0.1",
        port=0,
        access_log=False,
        router=dataclasses.replace(
            base.router, artifact=str(artifact), name=None, stand_ins=stand_ins
        ),
        auth=AuthConfig(api_keys=[KEY], api_keys_env="LR_BENCH_UNSET"),
        cloud=dataclasses.replace(base.cloud, base_url=echo_url, model="echo-cloud"),
        **over,
    )


def fire(url: str, texts: list[str], clients: int, model: str = "localroute") -> list[dict]:
    """Every text once, `clients` at a time; one record per response, in completion order."""
    import openai

    client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=120)
    done: list[dict] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": texts[i]}]
        )
        h = raw.headers
        rec = {
            "i": i,
            "chosen": h["x-localroute-chosen"],
            "p": float(h["x-localroute-p"]),
            "theta": float(h["x-localroute-theta"]),
            "t_local": float(h["x-localroute-t-local"]),
            "t_cloud": float(h["x-localroute-t-cloud"]),
            "theta_source": h.get("x-localroute-theta-source"),
        }
        with lock:
            done.append(rec)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(len(texts))))
    return done


def share(recs: list[dict]) -> float:
    return float(np.mean([r["chosen"] == "cloud" for r in recs])) if recs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--artifact", required=True)
    ap.add_argument("--data", default="runs/data")
    ap.add_argument("--config", default="configs/local.yaml")
    ap.add_argument("--measured", help="profile rows of the deployed local model")
    ap.add_argument("--target", type=float, default=0.3)
    ap.add_argument("--n-easy-hard", type=int, default=100)
    ap.add_argument("--n-share", type=int, default=300)
    ap.add_argument("--last", type=int, default=200)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--offline-per-source", type=int, default=600)
    ap.add_argument("--skip-server", action="store_true")
    ap.add_argument("--out", default="runs/bench_served_decision")
    args = ap.parse_args()

    from cli.config import load_config
    from localroute.config import ConfigPath
    from localroute.core.operating_point import resolve_operating_point
    from localroute.routers import load_router

    cfg = load_config(args.config)
    base = cfg.serve
    if args.measured:
        base = dataclasses.replace(
            base, latency=dataclasses.replace(base.latency, measured=ConfigPath(args.measured))
        )
    router = load_router(args.artifact)
    target = dataclasses.replace(base, target_cloud_share=args.target).target()
    point = resolve_operating_point(router, alpha=base.alpha, theta=base.theta, target=target)
    prior = base.deployment_latency().prior()
    out: dict = {"artifact": router.artifact_id, "target": args.target, "load_start": load()}
    print(
        f"load average {load()}; artifact {router.artifact_id} (alpha {router.alpha:g}, "
        f"theta {router.threshold:.4g}); local prior {prior.local.name} "
        f"({prior.local.provenance}), cloud prior {prior.cloud.name}"
    )

    pool = prompts(Path(args.data), args.offline_per_source, 7)
    print(
        f"\n[1] offline replay, target {args.target:.0%}, window {target.window}: the share once "
        f"the tracker is ready (after the first {target.min_samples} requests)"
    )
    out["offline"] = offline(router, point, prior, pool, target.min_samples)
    for r in out["offline"]:
        s = r["cloud_share_after_warmup"]
        flag = "" if s is None or abs(s - args.target) <= 0.03 else "  MISS"
        print(
            f"    {r['source']:<16} n={r['n']:<4} cloud {s if s is None else f'{s:.3f}'}"
            f"  (target {args.target:.3f}){flag}"
        )
    if args.skip_server:
        return 0

    from localroute.config import RayConfig
    from localroute.ray_runtime import init_ray
    from serve.app import start, stop
    from serve.testing.echo import EchoServer

    init_ray(RayConfig(num_cpus=4))
    mixed = [t for src in sorted(pool) for t in pool[src][:60]]
    random.Random(3).shuffle(mixed)
    with EchoServer() as echo:
        # [2] default config: easy and hard prompts
        p, _ = score(router, mixed)
        order = np.argsort(p)
        k = args.n_easy_hard // 2
        easy, hard = [mixed[i] for i in order[:k]], [mixed[i] for i in order[-k:]]
        texts = [t for pair in zip(easy, hard, strict=True) for t in pair]
        url = start(serve_cfg(base, Path(args.artifact), echo.base_url), port=0)
        print(
            f"\n[2] default config, {len(texts)} requests (easy/hard interleaved), "
            f"{args.clients} clients; load {load()}"
        )
        t0 = time.perf_counter()
        recs = fire(url, texts, args.clients)
        easy_set = set(range(0, len(texts), 2))
        e = [r for r in recs if r["i"] in easy_set]
        h = [r for r in recs if r["i"] not in easy_set]
        last = recs[len(recs) // 2 :]
        out["default"] = {
            "n": len(recs),
            "cloud_share_easy": share(e),
            "cloud_share_hard": share(h),
            "last_half_sides": sorted({r["chosen"] for r in last}),
            "mean_p_easy": float(np.mean([r["p"] for r in e])),
            "mean_p_hard": float(np.mean([r["p"] for r in h])),
            "median_t_local": float(np.median([r["t_local"] for r in recs])),
            "median_t_cloud": float(np.median([r["t_cloud"] for r in recs])),
            "wall_s": time.perf_counter() - t0,
        }
        d = out["default"]
        print(
            f"    easy (mean p {d['mean_p_easy']:.3f}): cloud {d['cloud_share_easy']:.2f}; "
            f"hard (mean p {d['mean_p_hard']:.3f}): cloud {d['cloud_share_hard']:.2f}; "
            f"sides chosen in the last half: {d['last_half_sides']}; median T_s "
            f"{d['median_t_local']:.2f} s, T_e {d['median_t_cloud']:.2f} s "
            f"({d['wall_s']:.0f} s, load {load()})"
        )
        stop()

        # [3] and [4]: a target share, without and with other load on the local model
        share_texts = (mixed * 3)[: args.n_share]
        for key, busy in (("target", 0), ("target_busy", 2)):
            url = start(
                serve_cfg(base, Path(args.artifact), echo.base_url, target_cloud_share=args.target),
                port=0,
            )
            stop_bg = threading.Event()

            def background(url=url, stop_bg=stop_bg) -> None:
                i = 0
                while not stop_bg.is_set():
                    fire(url, [mixed[i % len(mixed)]], 1, "router-always-local-0")
                    i += 1

            threads = [threading.Thread(target=background, daemon=True) for _ in range(busy)]
            for th in threads:
                th.start()
            t0 = time.perf_counter()
            recs = fire(url, share_texts, args.clients)
            stop_bg.set()
            for th in threads:
                th.join(timeout=180)
            tail = recs[-args.last :]
            out[key] = {
                "n": len(recs),
                "background_clients": busy,
                "cloud_share_last": share(tail),
                "theta_source_last": sorted({r["theta_source"] for r in tail}),
                "median_t_local_last": float(np.median([r["t_local"] for r in tail])),
                "wall_s": time.perf_counter() - t0,
            }
            r = out[key]
            print(
                f"\n[{3 if not busy else 4}] target {args.target:.0%}, {len(recs)} requests, "
                f"{args.clients} clients, {busy} background local clients: cloud share over "
                f"the last {args.last} {r['cloud_share_last']:.3f} (target {args.target:.3f}); "
                f"median T_s {r['median_t_local_last']:.2f} s ({r['wall_s']:.0f} s, "
                f"load {load()})"
            )
            stop()
    out["load_end"] = load()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "result.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"\nwrote {Path(args.out) / 'result.json'}; load average {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
