"""The real Serve application on 127.0.0.1, driven by the official `openai` client.

Three applications share one Serve instance on the session's Ray cluster:

* `/`       the router with a loopback OpenAI-compatible echo server as its cloud (key checked);
* `/down`   the same router whose cloud answers HTTP 500 to everything (a cloud that is down),
            with a one-slot ingress so a burst meets backpressure;
* `/stuck`  a router whose local model always times out (its cloud is the echo server), scoring
            with a task-prior artifact trained on the real RouteLLM GSM8K labels (the package's
            shipped build: no shared data needed, nothing skipped).

Each test makes the requests whose traces it checks; none relies on an earlier test's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import openai
import pytest

pytestmark = pytest.mark.timeout(300)

KEY = "sk-test-" + "a1b2c3d4"
CLOUD_KEY = "cloud-" + "e5f6a7b8"
TINY = dict(min_replicas=1, max_replicas=1, num_cpus=0.1)


def _cfg(cloud_url: str, tiny_dir: Path, **over):
    from serve.config import (
        AuthConfig,
        CloudModelConfig,
        DeploymentScaling,
        LimitsConfig,
        LocalModelConfig,
        RouterSpec,
        ServeConfig,
    )

    local = LocalModelConfig(
        tiny_dir=str(tiny_dir),
        max_new_tokens=6,
        deployment=DeploymentScaling(max_ongoing_requests=32, max_queued_requests=512, **TINY),
    )
    cloud = CloudModelConfig(
        base_url=cloud_url,
        model="echo-large",
        api_key_env="LR_TEST_CLOUD_KEY",
        timeout_s=5.0,
        retries=1,
        retry_backoff_s=0.05,
        deployment=DeploymentScaling(max_ongoing_requests=256, max_queued_requests=512, **TINY),
    )
    base = ServeConfig(
        router=RouterSpec(name="random"),
        auth=AuthConfig(api_keys=[KEY], api_keys_env="LR_TEST_UNSET_KEYS"),
        limits=LimitsConfig(max_body_bytes=65536),
        local=local,
        cloud=cloud,
        ingress=DeploymentScaling(max_ongoing_requests=256, max_queued_requests=1024, **TINY),
        access_log=False,
    )
    return dataclasses.replace(base, **over)


def _task_prior_artifact(out: Path) -> tuple[Path, dict]:
    """A task-prior artifact fitted on the shipped RouteLLM GSM8K train split, and its table."""
    from localroute.data.paths import SHIPPED_DIR
    from localroute.routers import make_router
    from localroute.routers.examples import pair_examples, split_of, to_batch

    ex = pair_examples(
        SHIPPED_DIR, "routellm_gsm8k", "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
    )
    router = make_router("task-prior")
    router.fit(to_batch(split_of(ex, "train")))
    assert router.table, "the shipped GSM8K split gave the task-prior router nothing to learn"
    router.save(out)
    return out, router.table


@pytest.fixture(scope="module")
def served(ray_cluster, tmp_path_factory):
    from ray import serve

    from serve.app import free_port, start, stop
    from serve.config import DeploymentScaling, LocalModelConfig
    from serve.testing.echo import EchoServer

    tmp = tmp_path_factory.mktemp("serve")
    echo = EchoServer(api_key=CLOUD_KEY).start()
    failing = EchoServer(mode="fail").start()
    env = {"LR_TEST_CLOUD_KEY": CLOUD_KEY}
    port = free_port()
    main = _cfg(echo.base_url, tmp / "tiny")
    artifact, table = _task_prior_artifact(tmp / "task-prior")
    try:
        url = start(main, port=port, environ=env)
        down = _cfg(
            failing.base_url,
            tmp / "tiny",
            app_name="down",
            route_prefix="/down",
            ingress=DeploymentScaling(max_ongoing_requests=1, max_queued_requests=1, **TINY),
        )
        start(down, port=port, environ=env)
        stuck_local = LocalModelConfig(
            tiny_dir=str(tmp / "tiny"), timeout_s=0.001, deployment=main.local.deployment
        )
        stuck = _cfg(echo.base_url, tmp / "tiny", app_name="stuck", route_prefix="/stuck")
        stuck = dataclasses.replace(stuck, local=stuck_local)
        start(stuck, port=port, environ=env, router_artifact=artifact)
        yield {
            "url": url,
            "echo": echo,
            "failing": failing,
            "table": table,
            "artifact": artifact,
        }
    finally:
        stop()
        echo.stop()
        failing.stop()
        assert not serve.status().applications


def client(url: str, key: str | None = KEY, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key or "none", max_retries=0, **kw)


def ask(c: openai.OpenAI, model: str, messages, **kw):
    raw = c.chat.completions.with_raw_response.create(model=model, messages=messages, **kw)
    return raw.headers, raw.parse()


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_unary_headers_follow_the_fusion(served) -> None:
    from localroute.routers import make_router

    c = client(served["url"])
    seen = set()
    texts = ["What is 2 + 2?", "Prove that there are infinitely many primes.", "Say hi."]
    asks = [("localroute", t) for t in texts]
    # With alpha 0 the router's p alone decides: some of these go to each side.
    asks += [("router-random-0.5-alpha0", f"Name a prime above {10 * i}.") for i in range(12)]
    for i, (model, text) in enumerate(asks):
        if i >= len(texts) and seen == {"local", "cloud"}:
            break
        h, r = ask(c, model, user(text), max_tokens=4)
        assert h.get_list("x-request-id") == [r.id.removeprefix("chatcmpl-")]
        p = float(h["x-localroute-p"])
        expect_p = make_router("random").score({"text": np.array([text], dtype=object)})[0]
        assert p == pytest.approx(expect_p, rel=1e-5)
        fused, theta = float(h["x-localroute-p-fused"]), float(h["x-localroute-theta"])
        gap = float(h["x-localroute-t-cloud"]) - float(h["x-localroute-t-local"])
        assert fused == pytest.approx(p - float(h["x-localroute-alpha"]) * gap, abs=1e-4)
        side = h["x-localroute-decision"]
        assert side == h["x-localroute-chosen"] == ("local" if fused <= theta else "cloud")
        assert "theta" in h["x-localroute-reason"] and "x-localroute-fallback" not in h
        assert r.model == {"local": "local-tiny-qwen2", "cloud": "echo-large"}[side]
        assert r.choices[0].message.role == "assistant"
        seen.add(side)
    assert seen == {"local", "cloud"}  # both sides answered, each as its headers say
    # Forcing each side through RouteLLM-style model names reaches both deployments.
    h, r = ask(c, "router-always-cloud-0.5", user("ping"))
    assert h["x-localroute-decision"] == "cloud" and r.choices[0].message.content == "echo: ping"
    assert r.usage.prompt_tokens == 1
    h, r = ask(c, "router-always-local-0.5", user("ping"), max_tokens=3)
    assert h["x-localroute-decision"] == "local" and r.usage.completion_tokens <= 3


def test_streaming_on_both_sides(served) -> None:
    c = client(served["url"])
    raw = c.chat.completions.with_raw_response.create(
        model="router-always-cloud-0.5",
        messages=user("stream me please"),
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["x-localroute-decision"] == "cloud"
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "echo: stream me please"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"

    stream = c.chat.completions.create(
        model="router-always-local-0.5", messages=user("hello"), stream=True, max_tokens=5
    )
    chunks = list(stream)
    assert all(ch.model == "local-tiny-qwen2" for ch in chunks)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert len({ch.id for ch in chunks}) == 1


def test_multi_turn_switch_by_session_header_and_by_prefix(served) -> None:
    c = client(served["url"])
    turn1 = user("Explain the Krebs cycle in three sentences.")
    h1, r1 = ask(c, "router-always-cloud-0.5", turn1, extra_headers={"x-session-id": "conv-1"})
    assert h1["x-localroute-decision"] == "cloud" and h1["x-localroute-switch"] == "false"
    reply = r1.choices[0].message.content
    turn2 = [*turn1, {"role": "assistant", "content": reply}, *user("Now summarise it.")]
    ctx_words = len(turn1[0]["content"].split()) + len(reply.split())
    for headers in ({"x-session-id": "conv-1"}, {}):  # by header, then by prefix hash
        h2, _ = ask(c, "router-always-local-0.5", turn2, extra_headers=headers, max_tokens=3)
        assert h2["x-localroute-decision"] == "local"
        assert h2["x-localroute-switch"] == "true"
        assert (
            f"switch from cloud: re-prefill {ctx_words} context words"
            in (h2["x-localroute-reason"])
        )
    # The same conversation never seen before: no previous side, no switch cost.
    h3, _ = ask(c, "router-always-local-0.5", turn2, extra_headers={"x-session-id": "other"})
    assert h3["x-localroute-switch"] == "false" and "switch" not in h3["x-localroute-reason"]
    # Same messages, same p: after a cloud turn the cloud holds the context (no re-prefill
    # there), after a local turn going to the cloud re-prefills it, so T_e and p~ are higher.
    ask(c, "router-always-cloud-0.5", turn1, extra_headers={"x-session-id": "conv-a"})
    ask(c, "router-always-local-0.5", turn1, extra_headers={"x-session-id": "conv-b"}, max_tokens=2)
    # (an explicit -alpha: a theta in the model name alone applies to p alone, as in RouteLLM)
    # (max_tokens bounds both answers, so a live answer-length estimate cannot differ between them)
    ha, _ = ask(
        c,
        "router-random-0.5-alpha0.05",
        turn2,
        extra_headers={"x-session-id": "conv-a"},
        max_tokens=2,
    )
    hb, _ = ask(
        c,
        "router-random-0.5-alpha0.05",
        turn2,
        extra_headers={"x-session-id": "conv-b"},
        max_tokens=2,
    )
    assert float(ha["x-localroute-p"]) == float(hb["x-localroute-p"])
    t_cloud_a, t_cloud_b = float(ha["x-localroute-t-cloud"]), float(hb["x-localroute-t-cloud"])
    assert t_cloud_b - t_cloud_a == pytest.approx(0.02 * ctx_words, rel=0.01)  # gamma_e * C_t
    assert float(ha["x-localroute-p-fused"]) > float(hb["x-localroute-p-fused"])


def test_theta_in_the_model_name_applies_to_p_alone(served) -> None:
    """RouteLLM's `router-<name>-<theta>`: theta on the calibrated p; with theta 0 every query
    goes to the cloud, even a short one the latency term would pull local. The latency term it
    did not apply is reported beside it."""
    c = client(served["url"])
    for text in ("hi", "Say hi."):
        h, _ = ask(c, "router-random-0.0", user(text), max_tokens=2)
        assert h["x-localroute-chosen"] == "cloud" and float(h["x-localroute-alpha"]) == 0.0
        assert float(h["x-localroute-p-fused"]) == pytest.approx(float(h["x-localroute-p"]))
        assert "not applied" in h["x-localroute-reason"]
    h, _ = ask(c, "localroute", user("hi"), max_tokens=2)  # the configured alpha still fuses
    assert float(h["x-localroute-alpha"]) > 0 and "not applied" not in h["x-localroute-reason"]


def _error_body(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"])
    assert "Traceback" not in response.text
    return body["error"]


def _error(exc: openai.APIStatusError) -> dict:
    return _error_body(exc.response)


def test_every_error_code_is_openai_shaped(served) -> None:
    import httpx2

    url = served["url"]
    with pytest.raises(openai.AuthenticationError) as e:
        client(url, key="wrong-key").chat.completions.create(model="localroute", messages=user("x"))
    assert e.value.status_code == 401 and _error(e.value)["code"] == "invalid_api_key"
    assert "wrong-key" not in e.value.response.text
    r = httpx2.post(f"{url}/v1/chat/completions", json={"model": "localroute"})
    assert r.status_code == 401  # no Authorization header at all
    with pytest.raises(openai.AuthenticationError):
        client(url, key="wrong-key").models.list()

    c = client(url)
    with pytest.raises(openai.NotFoundError) as e:
        c.chat.completions.create(model="gpt-5-ultra", messages=user("x"))
    assert _error(e.value)["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="localroute", messages=[])
    assert "messages" in _error(e.value)["message"]
    with pytest.raises(openai.APIStatusError) as e:
        c.chat.completions.create(model="localroute", messages=user("word " * 20000))
    assert e.value.status_code == 413 and _error(e.value)["code"] == "request_too_large"

    auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    for body, status in [
        (b"{broken", 400),
        (b'{"model": "localroute"}', 400),
        (b'{"model": "localroute", "messages": "hi"}', 400),
        (json.dumps({"model": "localroute", "messages": user("x"), "max_tokens": -1}), 400),
    ]:
        r = httpx2.post(f"{url}/v1/chat/completions", content=body, headers=auth)
        assert r.status_code == status, r.text
        assert r.json()["error"]["type"] == "invalid_request_error"
        assert len(r.headers.get_list("x-request-id")) == 1 and r.headers["x-request-id"]
    # A client's own request id comes back, once.
    bad = {"model": "localroute", "messages": user("x"), "n": 2}
    r = httpx2.post(
        f"{url}/v1/chat/completions", json=bad, headers={**auth, "x-request-id": "trace-42"}
    )
    assert r.status_code == 400 and r.headers.get_list("x-request-id") == ["trace-42"]
    r = httpx2.get(f"{url}/v1/nothing-here", headers=auth)
    assert r.status_code == 404 and "error" in r.json()


def test_models_health_and_metrics(served) -> None:
    import httpx2

    url = served["url"]
    c = client(url)
    ids = [m.id for m in c.models.list().data]
    assert ids[:2] == ["localroute", "router-random-0.5"]
    # What this test reads below: a local answer of several tokens (a decode time per token to
    # measure) and a decision for the cloud by the always-cloud router.
    h, r = ask(c, "router-always-local-0.5", user("Count to ten, please."), max_tokens=4)
    assert h["x-localroute-decision"] == "local" and r.usage.completion_tokens > 1
    h, _ = ask(c, "router-always-cloud-0.5", user("And the cloud?"))
    assert h["x-localroute-decision"] == "cloud"
    # Liveness without a key says only that; the details need the key, a wrong one is 401.
    alive = httpx2.get(url + "/healthz")
    assert alive.status_code == 200 and alive.json() == {"status": "ok"}
    wrong = httpx2.get(url + "/healthz", headers={"Authorization": "Bearer wrong-key"})
    assert wrong.status_code == 401 and _error_body(wrong)["code"] == "invalid_api_key"
    health = httpx2.get(url + "/healthz", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert health["status"] == "ok" and health["router"] == "random"
    assert {"replica", "estimates", "local_queue", "sessions", "models"} <= set(health)
    assert health["estimates"]["local_decode_s_per_token"] is not None  # measured just now
    text = httpx2.get(url + "/metrics").text
    assert (
        'localroute_decisions_total{decision="cloud",router="always-cloud",served_by="cloud"}'
        in (text)
    )
    assert "localroute_router_hop_seconds_bucket" in text
    assert KEY not in text


def test_cloud_down_falls_back_to_local(served) -> None:
    url = served["url"] + "/down"
    failing = served["failing"]
    c = client(url)
    before = failing.requests
    h, r = ask(c, "router-always-cloud-0.5", user("Is the cloud up?"), max_tokens=3)
    assert h["x-localroute-chosen"] == "cloud" and h["x-localroute-decision"] == "local"
    assert h["x-localroute-fallback"] == "cloud->local; http_500"
    assert h["x-localroute-reason"].startswith("fallback to local: cloud failed (http_500)")
    assert r.model == "local-tiny-qwen2"
    assert failing.requests - before == 2  # one try and one bounded retry, no more

    raw = c.chat.completions.with_raw_response.create(
        model="router-always-cloud-0.5", messages=user("stream anyway"), stream=True, max_tokens=3
    )
    assert raw.headers["x-localroute-fallback"] == "cloud->local; http_500"
    chunks = list(raw.parse())
    assert chunks and chunks[-1].choices[0].finish_reason in ("stop", "length")

    text = __import__("httpx2").get(served["url"] + "/down/metrics").text
    assert 'localroute_fallbacks_total{from_side="cloud",kind="http_500",to_side="local"}' in text


def test_backpressure_is_503_with_retry_after(served) -> None:
    import httpx2

    url = served["url"] + "/down/v1/chat/completions"
    body = {"model": "router-always-cloud-0.5", "messages": user("busy?"), "max_tokens": 2}

    async def burst():
        async with httpx2.AsyncClient(timeout=60) as http:
            tasks = [
                http.post(url, json=body, headers={"Authorization": f"Bearer {KEY}"})
                for _ in range(12)
            ]
            return await asyncio.gather(*tasks)

    responses = asyncio.run(burst())
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 503}, codes
    rejected = [r for r in responses if r.status_code == 503]
    assert rejected and all(r.headers.get("retry-after") == "1" for r in rejected)
    assert 200 in codes
    assert all("Traceback" not in r.text for r in rejected)


def test_local_failure_falls_back_to_cloud(served) -> None:
    c = client(served["url"] + "/stuck")
    h, r = ask(c, "router-always-local-0.5", user("local is stuck"))
    assert h["x-localroute-chosen"] == "local" and h["x-localroute-decision"] == "cloud"
    assert h["x-localroute-fallback"] == "local->cloud; timeout"
    assert r.choices[0].message.content == "echo: local is stuck"
    stream = c.chat.completions.create(
        model="router-always-local-0.5", messages=user("again"), stream=True
    )
    assert "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices) == (
        "echo: again"
    )


def test_trained_artifact_scores_requests(served) -> None:
    c = client(served["url"] + "/stuck")
    table = served["table"]
    task = sorted(table)[0]
    h, _ = ask(
        c, "localroute", user("Natalia sold clips."), extra_headers={"x-localroute-task": task}
    )
    assert h["x-localroute-router"] == "task-prior"
    assert float(h["x-localroute-p"]) == pytest.approx(table[task], rel=1e-5)
    ids = [m.id for m in c.models.list().data]
    assert ids[1].startswith("router-task-prior-")


def test_200_concurrent_requests_no_failures(served) -> None:
    url = served["url"] + "/v1"

    async def run():
        c = openai.AsyncOpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=120)

        async def one(i: int):
            raw = await c.chat.completions.with_raw_response.create(
                model="router-random-0.5-alpha0",
                messages=user(f"question number {i}: what is {i} squared?"),
                max_tokens=3,
            )
            raw.parse()
            return raw.headers["x-localroute-decision"]

        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(200)), return_exceptions=True)
        await c.close()
        return results, time.perf_counter() - t0

    results, elapsed = asyncio.run(run())
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures[:3]
    sides = {s: results.count(s) for s in ("local", "cloud")}
    assert sides["local"] > 40 and sides["cloud"] > 40, sides  # alpha 0: p ~ U(0,1) vs 0.5
    print(f"200 concurrent requests: 0 failures in {elapsed:.1f}s, {sides}")


def test_keys_never_reach_the_logs(served) -> None:
    """After errors, fallbacks and retries (made here, whatever ran before): no key in any Ray
    or Serve log."""
    import ray

    url = served["url"]
    with pytest.raises(openai.AuthenticationError):  # a wrong key, and the real one after it
        client(url, key=KEY + "x").chat.completions.create(model="localroute", messages=user("x"))
    # the cloud key sent upstream on a fallback, a streamed fallback, and a retried 500
    h, _ = ask(client(url + "/stuck"), "router-always-local-0.5", user("keys?"))
    assert h["x-localroute-fallback"] == "local->cloud; timeout"
    stream = client(url + "/stuck").chat.completions.create(
        model="router-always-local-0.5", messages=user("keys, streamed?"), stream=True
    )
    assert [ch for ch in stream]
    h, _ = ask(client(url + "/down"), "router-always-cloud-0.5", user("keys?"), max_tokens=2)
    assert h["x-localroute-fallback"] == "cloud->local; http_500"
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    files = [f for f in (session / "logs").rglob("*") if f.is_file()]
    assert any("serve" in str(f) for f in files)
    for f in files:
        text = f.read_bytes()
        assert KEY.encode() not in text and CLOUD_KEY.encode() not in text, f


def test_replica_ports_beyond_loopback_take_only_the_ray_token(served) -> None:
    """Ray Serve 2.60 binds every replica's inter-deployment gRPC server to `[::]:0` (hard-coded
    in its replica.py, no setting moves it), the only listeners of a served app beyond loopback:
    each belongs to a Serve replica and refuses a call without Ray's token."""
    import os

    import grpc
    from test_ray_security import _descendants, _is_loopback, _listening

    def cmdline(pid: int) -> bytes:
        return Path(f"/proc/{pid}/cmdline").read_bytes()

    sockets = _listening(_descendants(os.getpid()))
    assert any(cmdline(pid).startswith(b"ray::ServeReplica:") for _, _, pid, _ in sockets)
    for address, port, pid, _ in sockets:
        if _is_loopback(address):
            continue
        assert cmdline(pid).startswith(b"ray::ServeReplica:"), (address, port, cmdline(pid))
        call = "/ray.serve.ASGIService/HandleRequest"
        with (
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
            pytest.raises(grpc.RpcError) as refused,
        ):
            channel.unary_unary(call)(b"", timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, (port, refused.value)
