"""What the router hop costs: localroute's Serve router vs the model deployment called directly,
and the same load against RouteLLM's own OpenAI server, all over one loopback echo backend.

Targets, all answering `POST /v1/chat/completions` with the echo server's reply:

* `echo`       the OpenAI-compatible echo server itself (serve/testing/echo.py, own process);
* `deployment` the CloudModel deployment called directly over Serve HTTP (no router): what
               one Serve HTTP hop to a Python replica costs;
* `localroute` the full router: ingress (auth, parsing, router score, fusion) calling the echo
               server from its own process (pooled HTTP client, no deployment hop); model
               `router-random-0.0-alpha0` sends every request to the cloud side, so the
               difference to `echo` is the router hop;
* `routellm`   RouteLLM's `routellm.openai_server` (PyPI `routellm`, its `random` router,
               strong and weak models both the echo server via litellm), run from the separate
               virtualenv `.venv-routellm` on 127.0.0.1 when that exists.

Two loads per target: sequential (one client, latency percentiles) and concurrent (C clients,
throughput and failures). Targets alternate request by request in the sequential load so drift
on a shared machine hits them alike.

    .venv/bin/python benchmarks/bench_router_hop.py [--n 300] [--concurrency 32] [--out DIR]
        [--throughput-optimized]

`--throughput-optimized` starts Ray with Serve's throughput-optimized mode and HAProxy: ingress
replicas serve HTTP themselves behind HAProxy, with no Python proxy hop (the env vars must be
set before Ray starts; `localroute serve` would set them the same way).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROUTELLM_VENV = REPO / ".venv-routellm"
KEY = "bench-key"
BODY = {
    "model": "router-random-0.0-alpha0",
    "messages": [{"role": "user", "content": "What is the capital of France? Answer briefly."}],
    "max_tokens": 16,
}

ROUTELLM_LAUNCH = """
import sys, uvicorn
port, base_url = int(sys.argv[1]), sys.argv[2]
sys.argv = ["routellm.openai_server", "--routers", "random", "--base-url", base_url,
            "--api-key", "unused", "--strong-model", "openai/echo-strong",
            "--weak-model", "openai/echo-weak"]
import routellm.openai_server as s
uvicorn.run(s.app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def wait_http(url: str, timeout: float = 60.0) -> None:
    import httpx2

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx2.get(url, timeout=1.0)
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f}s")


def start_process(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        args,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


async def concurrent(url: str, body: dict, n: int, concurrency: int) -> dict[str, float]:
    import httpx2

    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []
    failures = 0
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(
        timeout=60.0, limits=limits, headers={"Authorization": f"Bearer {KEY}"}
    ) as http:

        async def one() -> None:
            nonlocal failures
            async with sem:
                t0 = time.perf_counter()
                try:
                    r = await http.post(url, json=body)
                    ok = r.status_code == 200
                except Exception:
                    ok = False
                if ok:
                    lat.append(time.perf_counter() - t0)
                else:
                    failures += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        wall = time.perf_counter() - t0
    return {
        "n": n,
        "concurrency": concurrency,
        "failures": failures,
        "throughput_rps": len(lat) / wall,
        "p50_ms": 1e3 * pct(lat, 50) if lat else float("nan"),
        "p99_ms": 1e3 * pct(lat, 99) if lat else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="sequential requests per target")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--n-concurrent", type=int, default=640)
    ap.add_argument("--router-artifact", help="measure a trained router instead of `random`")
    ap.add_argument("--out", default="runs/bench", help="directory for router_hop.json")
    ap.add_argument(
        "--ab-thread",
        action="store_true",
        help="also measure the router with RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0 "
        "in its ingress (user code on the replica's own event loop; Serve's default is 1)",
    )
    ap.add_argument(
        "--throughput-optimized",
        action="store_true",
        help="start Ray with RAY_SERVE_THROUGHPUT_OPTIMIZED=1 and RAY_SERVE_ENABLE_HA_PROXY=1 "
        "(HAProxy in front of ingress replicas that serve HTTP themselves: no Python proxy)",
    )
    args = ap.parse_args(argv)
    if args.throughput_optimized:  # read by Serve's controller and replicas at their start
        from serve.app import ray_env
        from serve.config import ServeConfig

        os.environ.update(ray_env(ServeConfig(throughput_optimized=True)))

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import dataclasses

    import ray
    from ray import serve

    from localroute.config import RayConfig
    from localroute.ray_runtime import init_ray
    from serve.app import free_port, start, stop
    from serve.config import (
        AuthConfig,
        CloudModelConfig,
        DeploymentScaling,
        ServeConfig,
    )
    from serve.testing.cloud_model import CloudModel

    procs: list[subprocess.Popen] = []
    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "load_average_at_start": os.getloadavg(),
        "body": BODY,
    }
    echo_port = free_port()
    procs.append(
        start_process([sys.executable, "-m", "serve.testing.echo", "--port", str(echo_port)])
    )
    echo_base = f"http://127.0.0.1:{echo_port}/v1"
    wait_http(echo_base + "/models")
    started = init_ray(RayConfig(num_cpus=4))
    try:
        one = DeploymentScaling(min_replicas=1, max_replicas=1, num_cpus=0.25)
        cloud_cfg = CloudModelConfig(
            base_url=echo_base,
            model="echo",
            retries=0,
            deployment=dataclasses.replace(one, max_ongoing_requests=256, max_queued_requests=-1),
        )
        cfg = ServeConfig(
            auth=AuthConfig(api_keys=[KEY]),
            cloud=cloud_cfg,
            ingress=dataclasses.replace(one, max_ongoing_requests=256, max_queued_requests=-1),
            access_log=False,
        )
        port = free_port()
        url = start(cfg, port=port, router_artifact=args.router_artifact, access_log=False)
        direct = CloudModel.options(
            **cloud_cfg.deployment.options(cfg.backpressure), name="DirectCloudModel"
        ).bind(cloud_cfg, None)
        serve.run(
            direct,
            name="direct",
            route_prefix="/direct",
            logging_config={"enable_access_log": False},
        )
        targets = {
            "echo": echo_base + "/chat/completions",
            "deployment": url + "/direct",
            "localroute": url + "/v1/chat/completions",
        }
        if args.ab_thread:  # the same router with its code on the replica's own event loop
            env = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}
            same_loop = dataclasses.replace(
                cfg,
                app_name="same-loop",
                route_prefix="/same-loop",
                ingress=dataclasses.replace(cfg.ingress, env_vars=env),
            )
            start(same_loop, port=port, router_artifact=args.router_artifact, access_log=False)
            targets["localroute-same-loop"] = url + "/same-loop/v1/chat/completions"
        if ROUTELLM_VENV.is_dir():
            rport = free_port()
            procs.append(
                start_process(
                    [str(ROUTELLM_VENV / "bin" / "python"), "-c", ROUTELLM_LAUNCH, str(rport)]
                    + [echo_base],
                    env={
                        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                        "OPENAI_API_KEY": "unused",
                        "HF_HUB_OFFLINE": "1",
                        "PYTHONPATH": "",
                    },
                )
            )
            wait_http(f"http://127.0.0.1:{rport}/docs", timeout=180)
            targets["routellm"] = f"http://127.0.0.1:{rport}/v1/chat/completions"
            results["routellm_model"] = body_for("routellm")["model"]
        else:
            print(f"RouteLLM: {ROUTELLM_VENV} is absent; its server is not measured")

        print(f"sequential: {args.n} requests per target (+{args.warmup} warm-up), interleaved")
        lat = sequential(targets, args.n, args.warmup)
        seq = {
            name: {
                "p50_ms": 1e3 * pct(xs, 50),
                "p99_ms": 1e3 * pct(xs, 99),
                "mean_ms": 1e3 * statistics.fmean(xs),
            }
            for name, xs in lat.items()
        }
        hop = {
            "p50_ms": seq["localroute"]["p50_ms"] - seq["echo"]["p50_ms"],
            "p99_ms": seq["localroute"]["p99_ms"] - seq["echo"]["p99_ms"],
        }
        results["sequential"] = seq
        hop["in_ingress_mean_ms"] = ingress_decision_ms(url)
        results["router_hop"] = hop
        print(f"{'target':<22}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
        for name, s in seq.items():
            print(f"{name:<22}{s['p50_ms']:>10.2f}{s['p99_ms']:>10.2f}{s['mean_ms']:>10.2f}")
        print(
            f"router hop (localroute - echo): p50 {hop['p50_ms']:.2f} ms, "
            f"p99 {hop['p99_ms']:.2f} ms; of it in the ingress before the model call "
            f"(auth, parsing, score, fusion): mean {hop['in_ingress_mean_ms']:.3f} ms"
        )

        conc = {}
        for name in [t for t in ("localroute", "routellm") if t in targets]:
            conc[name] = asyncio.run(
                concurrent(targets[name], body_for(name), args.n_concurrent, args.concurrency)
            )
            c = conc[name]
            print(
                f"concurrent {name:<11} C={c['concurrency']} n={c['n']}: "
                f"{c['throughput_rps']:.0f} req/s, p50 {c['p50_ms']:.1f} ms, "
                f"p99 {c['p99_ms']:.1f} ms, failures {c['failures']}"
            )
        results["concurrent"] = conc
    finally:
        stop()
        if started:
            ray.shutdown()
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "router_hop.json").write_text(json.dumps(results, indent=1) + "\n")
    start_load = results["load_average_at_start"]
    print(f"load average (1, 5, 15 min): at start {start_load}, at end {os.getloadavg()}")
    print(f"wrote {out / 'router_hop.json'}")
    return 0


def ingress_decision_ms(url: str) -> float:
    """Mean of the ingress's own `localroute_router_hop_seconds` histogram (one replica)."""
    import httpx2

    values = {}
    for line in httpx2.get(url + "/metrics").text.splitlines():
        if line.startswith("localroute_router_hop_seconds_"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return (
        1e3
        * values["localroute_router_hop_seconds_sum"]
        / values["localroute_router_hop_seconds_count"]
    )


def body_for(target: str) -> dict:
    """RouteLLM's model names carry no alpha: `router-random-0.5` (its random router)."""
    return dict(BODY, model="router-random-0.5") if target == "routellm" else BODY


def sequential(targets: dict[str, str], n: int, warmup: int) -> dict[str, list[float]]:
    import httpx2

    lat: dict[str, list[float]] = {name: [] for name in targets}
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx2.Client(timeout=30.0, headers=headers) as http:
        for i in range(warmup + n):
            for name, url in targets.items():
                t0 = time.perf_counter()
                r = http.post(url, json=body_for(name))
                dt = time.perf_counter() - t0
                if r.status_code != 200:
                    raise RuntimeError(f"{name}: HTTP {r.status_code}: {r.text[:200]}")
                if i >= warmup:
                    lat[name].append(dt)
    return lat


if __name__ == "__main__":
    sys.exit(main())
