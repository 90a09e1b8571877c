"""A local replica killed under load (issue 20): how long do requests wait beyond their cloud
answer time while it is down, and how long until local answers again?

The real Serve app on 127.0.0.1: a scripted local stand-in (`serve/testing/echo_local.py`,
`--local-delay` per answer) and the loopback echo cloud; `--clients` clients send
`router-always-local-1` (every request decided local). First a baseline of cloud answer times
(`router-always-cloud-0`, the same app, interleaved with nothing else), then the kill
(`ray.kill` of the replica's actor: the process is gone, as with SIGKILL). Printed: per phase
(before, while down, after) the request count, failures, p50/p99/max latency, and for requests sent
while the local side was down, their latency minus the cloud baseline's p50 (the target: no
request waits more than 2 s beyond its cloud answer time); load average before and after.

    .venv/bin/python benchmarks/bench_failover.py [--clients 4] [--seconds-after 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
KEY = "sk-bench-" + "failover"
AUTH = {"Authorization": f"Bearer {KEY}"}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--local-delay", type=float, default=0.2)
    ap.add_argument("--baseline", type=int, default=100)
    ap.add_argument("--seconds-before", type=float, default=5.0)
    ap.add_argument("--seconds-after", type=float, default=20.0)
    args = ap.parse_args()

    import httpx2

    from localroute.config import RayConfig
    from localroute.ray_runtime import init_ray
    from serve.app import free_port, start, stop
    from serve.config import (
        AuthConfig,
        CloudModelConfig,
        DeploymentScaling,
        LocalModelConfig,
        RouterSpec,
        ServeConfig,
    )
    from serve.testing.echo import EchoServer
    from serve.testing.echo_local import EchoLocal, kill_replica

    print(f"load average {load()}")
    init_ray(RayConfig(num_cpus=4))
    one = dict(min_replicas=1, max_replicas=1, num_cpus=0.05)
    with EchoServer() as cloud:
        cfg = ServeConfig(
            app_name="failover",
            access_log=False,
            router=RouterSpec(name="random"),
            auth=AuthConfig(api_keys=[KEY], api_keys_env="LR_BENCH_UNSET"),
            cloud=CloudModelConfig(
                base_url=cloud.base_url, model="echo", api_key_env="LR_BENCH_UNSET"
            ),
            local=LocalModelConfig(
                concurrency=8, deployment=DeploymentScaling(max_ongoing_requests=8, **one)
            ),
            ingress=DeploymentScaling(max_ongoing_requests=64, **one),
        )
        local = EchoLocal.options(max_ongoing_requests=8, ray_actor_options={"num_cpus": 0.05})
        url = start(cfg, port=free_port(), local=local.bind(delay_s=args.local_delay))
        c = httpx2.Client(timeout=120)
        while True:
            try:
                if c.get(url + "/readyz").status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            time.sleep(0.2)

        def ask(model: str, text: str):
            t0 = time.perf_counter()
            body = {"model": model, "messages": [{"role": "user", "content": text}]}
            r = c.post(url + "/v1/chat/completions", json=body, headers=AUTH)
            return r, time.perf_counter() - t0

        base = [ask("router-always-cloud-0", f"baseline {i}")[1] for i in range(args.baseline)]
        cloud_p50 = statistics.median(base)
        rows: list[dict] = []
        lock, stop_at = threading.Lock(), threading.Event()

        def client(k: int) -> None:
            with httpx2.Client(timeout=120) as cc:
                i = 0
                while not stop_at.is_set():
                    sent = time.monotonic()
                    body = {
                        "model": "router-always-local-1",
                        "messages": [{"role": "user", "content": f"c{k} r{i}"}],
                    }
                    r = cc.post(url + "/v1/chat/completions", json=body, headers=AUTH)
                    with lock:
                        rows.append(
                            {
                                "sent": sent,
                                "s": time.monotonic() - sent,
                                "ok": r.status_code == 200,
                                "served": r.headers.get("x-localroute-served"),
                            }
                        )
                    i += 1

        threads = [
            threading.Thread(target=client, args=(k,), daemon=True) for k in range(args.clients)
        ]
        for th in threads:
            th.start()
        time.sleep(args.seconds_before)
        killed = time.monotonic()
        kill_replica("EchoLocal")
        time.sleep(args.seconds_after)
        stop_at.set()
        for th in threads:
            th.join(timeout=120)
        stop()
    back = min(
        (r["sent"] for r in rows if r["sent"] > killed and r["served"] == "local"), default=None
    )
    phases = {
        "before the kill": [r for r in rows if r["sent"] < killed],
        "while down": [
            r for r in rows if r["sent"] >= killed and (back is None or r["sent"] < back)
        ],
        "local again": [r for r in rows if back is not None and r["sent"] >= back],
    }
    print(f"cloud answer time (baseline, {args.baseline} requests): p50 {cloud_p50 * 1000:.1f} ms")
    print(f"local side back {back - killed:.1f} s after the kill" if back else "local never back")
    for name, rs in phases.items():
        lat = [r["s"] for r in rs]
        served = {s: sum(r["served"] == s for r in rs) for s in ("local", "cloud")}
        print(
            f"{name:<16} {len(rs):>5} requests, {sum(not r['ok'] for r in rs)} failed, served "
            f"{served}; p50 {pct(lat, 0.5) * 1000:.0f} ms, p99 {pct(lat, 0.99) * 1000:.0f} ms, "
            f"max {max(lat, default=float('nan')) * 1000:.0f} ms"
        )
    down = [r["s"] - cloud_p50 for r in phases["while down"]]
    print(
        f"while down, beyond the cloud answer time: max {max(down, default=float('nan')):.2f} s, "
        f"{sum(d > 2.0 for d in down)} of {len(down)} over 2 s (target: none); load {load()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
