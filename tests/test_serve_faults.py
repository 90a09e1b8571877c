"""The router under faults and load, on 127.0.0.1, with a scripted local side
(serve/testing/echo_local.py) and loopback fake clouds (serve/testing/echo.py): a cloud that hangs
or trickles (one deadline per request), a local replica that dies before or during a stream, two
ingress replicas sharing metrics and sessions, a local side that starts slowly (liveness vs
readiness), a busy local side (the queue's expected wait in T_s), and a conversation too long for
the local window.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from conftest import get_ok, wait_until

pytestmark = pytest.mark.timeout(300)

KEY = "sk-faults-" + "0c1d2e3f"
AUTH = {"Authorization": f"Bearer {KEY}"}
ONE = dict(min_replicas=1, max_replicas=1, num_cpus=0.05)


def _cfg(cloud_url: str, name: str, *, timeout_s: float = 5.0, ingress_replicas: int = 1, **over):
    from serve.config import (
        AuthConfig,
        CloudModelConfig,
        DeploymentScaling,
        LocalModelConfig,
        RouterSpec,
        ServeConfig,
    )

    n = ingress_replicas
    return ServeConfig(
        app_name=name,
        route_prefix=f"/{name}",
        router=RouterSpec(name="random"),
        auth=AuthConfig(api_keys=[KEY], api_keys_env="LR_TEST_UNSET_KEYS"),
        local=LocalModelConfig(
            timeout_s=10.0,
            concurrency=over.pop("local_concurrency", 2),
            deployment=DeploymentScaling(max_ongoing_requests=32, **ONE),
        ),
        cloud=CloudModelConfig(
            base_url=cloud_url,
            model="echo-large",
            api_key_env="LR_TEST_UNSET_CLOUD_KEY",
            timeout_s=timeout_s,
            retries=1,
            retry_backoff_s=0.05,
        ),
        ingress=DeploymentScaling(
            min_replicas=n, max_replicas=n, num_cpus=0.05, max_ongoing_requests=64
        ),
        access_log=False,
        **over,
    )


def _local(**kw):
    from serve.testing.echo_local import EchoLocal

    return EchoLocal.options(max_ongoing_requests=32, ray_actor_options={"num_cpus": 0.05}).bind(
        **kw
    )


@pytest.fixture(scope="module")
def apps(ray_cluster):
    from ray import serve

    from serve.app import free_port, start, stop
    from serve.testing.echo import EchoServer

    echo = EchoServer().start()
    hang = EchoServer(mode="hang", hang_s=60).start()
    trickle = EchoServer(mode="trickle", hang_s=60, trickle_s=2.0).start()
    port = free_port()
    try:
        url = start(_cfg(hang.base_url, "hang"), port=port, local=_local())
        start(_cfg(trickle.base_url, "trickle"), port=port, local=_local())
        start(_cfg(echo.base_url, "die"), port=port, local=_local(delay_s=0.3))
        start(
            _cfg(echo.base_url, "multi", ingress_replicas=2),
            port=port,
            local=_local(context_window=256),
        )
        start(
            _cfg(echo.base_url, "busy", local_concurrency=1),
            port=port,
            local=_local(delay_s=2.0),
        )
        start(_cfg(echo.base_url, "late"), port=port, local=_local(start_delay_s=8.0))
        yield {"url": url, "port": port, "echo": echo, "hang": hang, "trickle": trickle}
    finally:
        stop()
        for s in (echo, hang, trickle):
            s.stop()
        assert not serve.status().applications


def _wait_ok(url: str, headers: dict[str, str] | None = None):
    """GET until 200 (conftest's readiness poll); returns the response."""
    return wait_until(lambda: get_ok(url, headers), url, timeout_s=90.0)


def _body(model: str, text: str, **kw) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **kw}


def _events(raw: str) -> list:
    """The SSE `data:` payloads, decoded (`[DONE]` kept as a string)."""
    out = []
    for line in raw.splitlines():
        if line.startswith("data: "):
            data = line[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_hung_or_trickling_cloud_falls_back_within_the_deadline(apps) -> None:
    import httpx2

    _wait_ok(apps["url"] + "/hang/readyz")
    _wait_ok(apps["url"] + "/trickle/healthz")

    async def one(app: str, stream: bool):
        body = _body("router-always-cloud-0.5", f"{app} {stream}", stream=stream)
        async with httpx2.AsyncClient(timeout=30.0) as http:
            t0 = time.monotonic()
            r = await http.post(f"{apps['url']}/{app}/v1/chat/completions", json=body, headers=AUTH)
            return r, time.monotonic() - t0

    async def all_four():
        jobs = [one(app, s) for app in ("hang", "trickle") for s in (False, True)]
        return await asyncio.gather(*jobs)

    for r, elapsed in asyncio.run(all_four()):
        assert r.status_code == 200, r.text
        assert r.headers["x-localroute-chosen"] == "cloud"
        assert r.headers["x-localroute-decision"] == "local"
        assert r.headers["x-localroute-fallback"] == "cloud->local; timeout"
        # The cloud's deadline (timeout_s 5) ended the call, not the server: it hangs or
        # trickles for 60 s, so an answer from it would have been the cloud's. Only a lower
        # bound on the time (a busy machine adds to it): the deadline was used, not cut short.
        assert elapsed >= 4.9, elapsed
        if r.headers["content-type"].startswith("text/event-stream"):
            events = _events(r.text)
            assert events[-1] == "[DONE]" and not any("error" in e for e in events[:-1])
        else:
            assert r.json()["choices"][0]["message"]["content"].startswith("local: ")
    assert apps["hang"].requests == 4  # a try and one retry per request, within the deadline


def test_a_replica_that_dies_falls_back_or_ends_the_stream_cleanly(apps) -> None:
    import httpx2

    from serve.testing.echo_local import DIE_MID_STREAM

    base = apps["url"] + "/die"
    _wait_ok(base + "/readyz")
    # Dies before answering: the cloud answers instead.
    body = _body("router-always-local-0.5", f"unary {DIE_MID_STREAM}")
    t0 = time.monotonic()
    r = httpx2.post(base + "/v1/chat/completions", json=body, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["x-localroute-decision"] == "cloud"
    assert r.headers["x-localroute-fallback"] == "local->cloud; replica_died"
    assert r.json()["choices"][0]["message"]["content"] == f"echo: unary {DIE_MID_STREAM}"
    assert time.monotonic() - t0 < 15
    # Serve replaces the replica; then it dies two deltas into a stream.
    _wait_ok(base + "/readyz")
    body = _body("router-always-local-0.5", f"stream {DIE_MID_STREAM} now", stream=True)
    t0 = time.monotonic()
    with httpx2.stream(
        "POST", base + "/v1/chat/completions", json=body, headers=AUTH, timeout=60
    ) as resp:
        assert resp.status_code == 200 and resp.headers["x-localroute-decision"] == "local"
        raw = "".join(resp.iter_text())
    assert time.monotonic() - t0 < 15
    events = _events(raw)
    text = "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in events
        if isinstance(e, dict) and e.get("choices")
    )
    # What the replica sent before it died reached the client: its two deltas, nothing more.
    assert text == "local: stream"
    assert events[-1] == "[DONE]"
    error = events[-2]["error"]
    assert error["type"] == "server_error" and "local model failed mid-stream" in error["message"]
    assert "replica_died" in error["message"]


def _counter(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_two_ingress_replicas_share_metrics_and_sessions(apps) -> None:
    import httpx2

    base = apps["url"] + "/multi"
    _wait_ok(base + "/readyz")
    replicas = set()
    for _ in range(60):  # both replicas are up and answering
        replicas.add(_wait_ok(base + "/healthz", AUTH).json()["replica"])
        if len(replicas) == 2:
            break
    assert len(replicas) == 2
    url = base + "/v1/chat/completions"
    last = 0.0
    n_ok = 0
    with httpx2.Client(timeout=30, headers=AUTH) as http:
        for i in range(8):  # a turn on the cloud, then the next turn forced local
            sid = {"x-session-id": f"multi-{i}"}
            turn1 = [{"role": "user", "content": f"turn one {i}"}]
            r1 = http.post(
                url, json={"model": "router-always-cloud-0.5", "messages": turn1}, headers=sid
            )
            reply = r1.json()["choices"][0]["message"]["content"]
            turn2 = [
                *turn1,
                {"role": "assistant", "content": reply},
                {"role": "user", "content": "and?"},
            ]
            r2 = http.post(
                url, json={"model": "router-always-local-0.5", "messages": turn2}, headers=sid
            )
            # Whichever replica served turn 1, the one serving turn 2 knows it ran in the cloud.
            assert r2.headers["x-localroute-switch"] == "true", i
            assert "switch from cloud" in r2.headers["x-localroute-reason"]
            n_ok += 2
            m = http.get(base + "/metrics")
            assert m.headers["x-localroute-metrics-scope"] == "all"
            now = _counter(m.text, "localroute_requests_total", route="chat", status="200")
            assert now >= last  # never backwards, whichever replica answers
            last = now

    def counted() -> float | None:  # the other replica ships its events within its flush interval
        text = httpx2.get(base + "/metrics").text
        n = _counter(text, "localroute_requests_total", route="chat", status="200")
        return n if n >= n_ok else None

    assert wait_until(counted, f"{n_ok} chat requests in the metrics", timeout_s=10) == n_ok


def test_a_conversation_beyond_the_local_window_goes_to_the_cloud(apps) -> None:
    import httpx2

    base = apps["url"] + "/multi"
    _wait_ok(base + "/readyz")
    health = httpx2.get(base + "/healthz", headers=AUTH).json()
    assert health["local_context_window"] == 256
    long = " ".join(f"w{i}" for i in range(300))
    r = httpx2.post(
        base + "/v1/chat/completions",
        json=_body("router-always-local-0.5", long),
        headers=AUTH,
        timeout=30,
    )
    assert r.status_code == 200
    h = r.headers
    assert h["x-localroute-chosen"] == "cloud" and h["x-localroute-decision"] == "cloud"
    assert "x-localroute-fallback" not in h  # no failed local attempt
    assert re.match(r"~\d+ tokens exceed the local context window of 256", h["x-localroute-reason"])
    short = httpx2.post(
        base + "/v1/chat/completions",
        json=_body("router-always-local-0.5", "short"),
        headers=AUTH,
        timeout=30,
    )
    assert short.headers["x-localroute-decision"] == "local"


def test_the_local_queue_adds_its_expected_wait_to_t_local(apps) -> None:
    import httpx2

    base = apps["url"] + "/busy"
    _wait_ok(base + "/readyz")
    url = base + "/v1/chat/completions"
    idle = httpx2.post(
        url, json=_body("router-random-0.5-alpha0.05", "probe"), headers=AUTH, timeout=30
    )
    assert float(idle.headers["x-localroute-local-wait"]) == 0.0

    def three_in_flight() -> bool:  # as the ingress itself counts them
        r = get_ok(base + "/healthz", AUTH)
        return r is not None and r.json()["local_queue"]["inflight"] == 3

    async def busy():
        async with httpx2.AsyncClient(timeout=60, headers=AUTH) as http:
            slow = [
                asyncio.create_task(http.post(url, json=_body("router-always-local-0.5", f"s{i}")))
                for i in range(3)
            ]
            # each takes 2 s locally: the probe goes while the ingress has all three in flight
            await asyncio.to_thread(wait_until, three_in_flight, "3 local requests in flight", 30)
            probe = await http.post(url, json=_body("router-random-0.5-alpha0.05", "probe"))
            return probe, await asyncio.gather(*slow)

    probe, slow = asyncio.run(busy())
    assert all(r.status_code == 200 for r in slow)
    wait = float(probe.headers["x-localroute-local-wait"])
    assert wait > 0  # 3 in flight on one slot: 3 requests' service time ahead of this one
    t_idle, t_busy = (float(r.headers["x-localroute-t-local"]) for r in (idle, probe))
    assert t_busy - t_idle == pytest.approx(wait, rel=1e-3)
    assert float(probe.headers["x-localroute-p-fused"]) > float(
        idle.headers["x-localroute-p-fused"]
    )
    assert "local wait" in probe.headers["x-localroute-reason"]


def test_liveness_comes_before_readiness(apps) -> None:
    import httpx2

    from serve.testing.echo_local import DIE_MID_STREAM

    base = apps["url"] + "/late"  # its local replica takes 8 s to start
    assert _wait_ok(base + "/readyz").json()["checks"] == {"local": "ok", "cloud": "ok"}
    # The local replica dies (the request falls back to the cloud); its replacement is slow.
    r = httpx2.post(
        base + "/v1/chat/completions",
        json=_body("router-always-local-0.5", DIE_MID_STREAM),
        headers=AUTH,
        timeout=30,
    )
    assert r.headers["x-localroute-fallback"] == "local->cloud; replica_died"
    alive = httpx2.get(base + "/healthz", timeout=5)
    assert alive.status_code == 200 and alive.json() == {"status": "ok"}  # alive (no key)
    r = httpx2.get(base + "/readyz", timeout=10)
    assert r.status_code == 503, r.text  # but not ready: the local side cannot answer
    assert r.json()["checks"]["local"].startswith("not ready")
    assert r.json()["checks"]["cloud"] == "ok"
    ready = _wait_ok(base + "/readyz").json()
    assert ready == {"status": "ready", "checks": {"local": "ok", "cloud": "ok"}}
    # Ready means the local model answers now.
    r = httpx2.post(
        base + "/v1/chat/completions",
        json=_body("router-always-local-0.5", "hi", max_tokens=2),
        headers=AUTH,
        timeout=10,
    )
    assert (
        r.headers["x-localroute-decision"] == "local" and "x-localroute-fallback" not in r.headers
    )


def test_openai_fields_the_router_cannot_honour_are_400(apps) -> None:
    import httpx2

    url = apps["url"] + "/multi/v1/chat/completions"
    base = _body("localroute", "x")
    for extra, param in [
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"max_completion_tokens": None, "max_tokens": -1}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"max_completion_tokens": 10**9}, "max_completion_tokens"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ]:
        r = httpx2.post(url, json={**base, **extra}, headers=AUTH, timeout=10)
        assert r.status_code == 400, (extra, r.text)
        error = r.json()["error"]
        assert error["param"] == param and error["type"] == "invalid_request_error"
        assert param.split(".")[-1] in error["message"]
    # A body that is not declared JSON is 415, OpenAI-shaped, before it is read.
    for media in ("text/plain", "application/x-www-form-urlencoded"):
        r = httpx2.post(
            url, content=json.dumps(base), headers={**AUTH, "Content-Type": media}, timeout=10
        )
        assert r.status_code == 415, (media, r.text)
        assert r.json()["error"]["code"] == "unsupported_media_type" and media in r.text
    ok = httpx2.post(
        url,
        json={**base, "n": 1, "max_completion_tokens": 3, "logprobs": False},
        headers={**AUTH, "Content-Type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 200


def test_the_model_field_is_the_configured_name_unary_and_streamed(apps) -> None:
    """The stand-in local deployment calls itself `echo-local`; responses say the configured
    name (local.model_name, cloud.model), unary and streamed alike."""
    import httpx2

    base = apps["url"] + "/late"
    _wait_ok(base + "/readyz")
    url = base + "/v1/chat/completions"
    for side, name in [("local", "local-tiny-qwen2"), ("cloud", "echo-large")]:
        model = f"router-always-{side}-0.5"
        unary = httpx2.post(url, json=_body(model, "which model?"), headers=AUTH, timeout=30)
        assert unary.headers["x-localroute-decision"] == side
        assert unary.json()["model"] == name
        body = _body(model, "which model?", stream=True)
        streamed = httpx2.post(url, json=body, headers=AUTH, timeout=30)
        assert streamed.headers["x-localroute-decision"] == side
        chunks = [e for e in _events(streamed.text) if isinstance(e, dict)]
        assert chunks and {c["model"] for c in chunks} == {name}, side
