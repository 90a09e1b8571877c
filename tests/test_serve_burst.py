"""A burst against a slow local side: the router sends the overflow to the cloud, then comes back.

The real Serve application on 127.0.0.1, driven by the official `openai` client: a scripted
local stand-in (serve/testing/echo_local.py) that takes 2 s per answer and serves 2 at once
(the ingress's local slots: concurrency 2), and a fast loopback echo cloud. With alpha 1 and
theta 1 the fused score p~ = p - (T_e - T_s) passes theta only when T_s, with the local queue's
expected wait, exceeds T_e: an idle router answers locally; a burst of 40 concurrent requests
fills the local queue and the rest go to the cloud; once the queue drains, local again.

The latency model is the deployment's (no max_tokens on the requests): the local side's 32-token
cap at Table I's 0.04 s/token (T_s ~ 1.4 s) against the cloud's 80-token cap at 0.02 s/token
(T_e ~ 1.7 s): idle, local is the faster side; one request queued beyond the slots tips it.
Live estimates are off (the echo answers' lengths are no model's); the queue's service time is
measured either way.
"""

from __future__ import annotations

import asyncio
import time

import openai
import pytest
from conftest import get_ok, stand_in_app, wait_until

pytestmark = pytest.mark.timeout(240)

KEY = "sk-burst-" + "4e5f6a7b"
ONE = dict(min_replicas=1, max_replicas=1, num_cpus=0.05)
BURST, LOCAL_DELAY_S, SLOTS = 40, 2.0, 2


@pytest.fixture(scope="module")
def served(ray_cluster):
    from serve.config import DeploymentScaling, LatencySpec, LocalModelConfig
    from serve.testing.echo_local import EchoLocal

    # The stand-in answers SLOTS requests at once; Serve queues the rest in front of it.
    local = EchoLocal.options(
        max_ongoing_requests=SLOTS, max_queued_requests=256, ray_actor_options={"num_cpus": 0.05}
    ).bind(delay_s=LOCAL_DELAY_S)
    with stand_in_app(
        "burst",
        KEY,
        local,
        cloud_max_tokens=80,
        theta=1.0,
        alpha=1.0,
        latency=LatencySpec(live=False),
        local=LocalModelConfig(
            concurrency=SLOTS,
            timeout_s=60.0,
            deployment=DeploymentScaling(max_ongoing_requests=SLOTS, **ONE),
        ),
        ingress=DeploymentScaling(max_ongoing_requests=128, max_queued_requests=256, **ONE),
    ) as url:
        yield url


def _terms(h) -> dict:
    return {
        "side": h["x-localroute-decision"],
        "chosen": h["x-localroute-chosen"],
        "wait": float(h["x-localroute-local-wait"]),
        "t_local": float(h["x-localroute-t-local"]),
        "t_cloud": float(h["x-localroute-t-cloud"]),
        "fused": float(h["x-localroute-p-fused"]),
        "theta": float(h["x-localroute-theta"]),
        "source": h["x-localroute-theta-source"],
    }


def _one(c: openai.OpenAI, text: str) -> dict:
    raw = c.chat.completions.with_raw_response.create(
        model="localroute", messages=[{"role": "user", "content": text}]
    )
    assert raw.parse().choices[0].message.content.endswith(text)
    return _terms(raw.headers)


def test_a_burst_overflows_to_the_cloud_and_comes_back(served) -> None:
    import httpx2

    wait_until(lambda: get_ok(served + "/readyz"), "ready", 120)
    c = openai.OpenAI(base_url=served + "/v1", api_key=KEY, max_retries=0, timeout=120)
    idle = _one(c, "idle before")
    assert idle["side"] == "local" and idle["wait"] == 0.0 and idle["source"] == "config"
    assert idle["t_local"] < idle["t_cloud"]

    async def burst() -> list[dict]:
        ac = openai.AsyncOpenAI(base_url=served + "/v1", api_key=KEY, max_retries=0, timeout=120)
        async with ac:

            async def one(i: int) -> dict:
                raw = await ac.chat.completions.with_raw_response.create(
                    model="localroute",
                    messages=[{"role": "user", "content": f"burst {i}"}],
                )
                assert raw.parse().choices[0].message.content.endswith(f"burst {i}")
                return _terms(raw.headers)

            return await asyncio.gather(*(one(i) for i in range(BURST)))

    t0 = time.monotonic()
    rows = asyncio.run(burst())
    elapsed = time.monotonic() - t0
    local = [r for r in rows if r["side"] == "local"]
    cloud = [r for r in rows if r["side"] == "cloud"]
    top = max(r["wait"] for r in rows)
    print(f"burst: {len(local)} local, {len(cloud)} cloud in {elapsed:.1f}s, wait <= {top:.1f}s")
    assert all(r["side"] == r["chosen"] for r in rows)  # no fallbacks: each side as decided
    for r in rows:
        assert r["side"] == ("cloud" if r["fused"] > r["theta"] else "local")
    # Every request sent to the cloud met a local queue whose wait made T_s exceed T_e
    # (with alpha = theta = 1, p~ > theta implies T_s + wait > T_e).
    assert cloud and all(r["wait"] > 0 and r["t_local"] > r["t_cloud"] for r in cloud)
    assert all(r["t_local"] - r["wait"] < r["t_cloud"] for r in cloud)  # idle, it stays local
    # The local side took a few (its slots, and a queue it could work off in time), the cloud
    # the overflow: far fewer than 40 x 2 s / 2 slots of local work.
    assert 1 <= len(local) <= 2 * SLOTS + 2, [r["wait"] for r in local]
    assert len(cloud) >= BURST - 2 * SLOTS - 2
    assert elapsed < BURST * LOCAL_DELAY_S / SLOTS / 2

    # The burst drains (the ingress sees no local request in flight), then local again.
    def drained():
        health = get_ok(served + "/healthz", {"Authorization": f"Bearer {KEY}"})
        return health is not None and health.json()["local_queue"]["inflight"] == 0

    wait_until(drained, "the local queue to drain", 60)
    after = [_one(c, f"idle after {i}") for i in range(2)]
    assert all(r["side"] == "local" and r["wait"] == 0.0 for r in after), after

    text = httpx2.get(served + "/metrics", timeout=10).text
    assert 'localroute_decisions_total{decision="cloud",router="random",served_by="cloud"}' in text
