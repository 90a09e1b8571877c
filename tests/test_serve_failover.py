"""A local replica killed under load: no request fails, new requests go to the cloud while it is
down instead of waiting for Serve to start a new one, and local again once one answers.

The real Serve application on 127.0.0.1 with a scripted local stand-in
(serve/testing/echo_local.py, 0.2 s per answer) and an echo cloud; 4 clients send
`router-always-local-1` (every request is decided local) while the test kills the local
replica's actor (ray.kill: the process is gone, as with SIGKILL). The waits themselves are
measured by benchmarks, not asserted here.
"""

from __future__ import annotations

import threading
import time

import httpx2
import pytest
from conftest import get_ok, stand_in_app, wait_until

pytestmark = pytest.mark.timeout(240)

KEY = "sk-failover-" + "1a2b3c4d"
ONE = dict(min_replicas=1, max_replicas=1, num_cpus=0.05)
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def served(ray_cluster):
    from serve.config import DeploymentScaling, LocalModelConfig
    from serve.testing.echo_local import EchoLocal

    local = EchoLocal.options(max_ongoing_requests=8, ray_actor_options={"num_cpus": 0.05})
    with stand_in_app(
        "failover",
        KEY,
        local.bind(delay_s=0.2),
        local=LocalModelConfig(
            concurrency=4,
            timeout_s=60.0,
            deployment=DeploymentScaling(max_ongoing_requests=8, **ONE),
        ),
        ingress=DeploymentScaling(max_ongoing_requests=64, **ONE),
    ) as url:
        yield url


def test_a_killed_local_replica_sends_new_requests_to_the_cloud(served) -> None:
    from serve.testing.echo_local import kill_replica

    wait_until(lambda: get_ok(served + "/readyz"), "the app ready")
    rows: list[dict] = []
    lock = threading.Lock()
    stop = threading.Event()
    kill_at: list[float] = []

    def client(k: int) -> None:
        with httpx2.Client(timeout=120) as c:
            i = 0
            while not stop.is_set():
                sent = time.monotonic()
                body = {
                    "model": "router-always-local-1",
                    "messages": [{"role": "user", "content": f"client {k} request {i}"}],
                }
                r = c.post(served + "/v1/chat/completions", json=body, headers=AUTH)
                row = {
                    "sent": sent,
                    "done": time.monotonic(),
                    "status": r.status_code,
                    "served": r.headers.get("x-localroute-decision"),
                    "chosen": r.headers.get("x-localroute-chosen"),
                    "fallback": r.headers.get("x-localroute-fallback"),
                    "text": r.json()["choices"][0]["message"]["content"]
                    if r.is_success
                    else r.text,
                }
                with lock:
                    rows.append(row)
                i += 1

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    try:
        while len(rows) < 20:  # under load, answered locally
            time.sleep(0.05)
        kill_at.append(time.monotonic())
        kill_replica("EchoLocal")

        def local_again() -> bool:
            with lock:
                return any(r["sent"] > kill_at[0] and r["served"] == "local" for r in rows)

        wait_until(local_again, "the local side answering again", 150)
        time.sleep(0.5)  # a few more local answers after it is back
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)

    assert rows and all(r["status"] == 200 for r in rows), [r for r in rows if r["status"] != 200]
    assert all(r["chosen"] == "local" for r in rows)  # the decision never changed
    before = [r for r in rows if r["done"] < kill_at[0]]
    assert before and all(r["served"] == "local" for r in before)
    # While it was down, new requests skipped the local side: served by the cloud, saying so.
    down = [r for r in rows if r["fallback"] == "local->cloud; down"]
    assert down, sorted({(r["served"], r["fallback"]) for r in rows if r["sent"] > kill_at[0]})
    assert all(r["served"] == "cloud" and r["text"].startswith("echo: ") for r in down)
    back = min(r["sent"] for r in rows if r["sent"] > kill_at[0] and r["served"] == "local")
    # ... and did not wait for the new replica: they were answered before it took a request
    assert any(r["done"] < back for r in down)
    assert rows[-1]["served"] == "local" or any(
        r["served"] == "local" and r["sent"] > back for r in rows
    )
