"""The serving decision without Ray: model names, request validation, live estimates, sessions,
the fusion with the switch cost, the config section, and the cloud forwarder's fault handling
against real loopback servers (echo, failing, hanging)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import pytest

from localroute.core.live import LiveEstimates, LocalLoad
from localroute.core.policy import decide_one
from localroute.core.profiles import load_latency_model
from localroute.errors import ConfigError
from serve.config import CloudModelConfig, ServeConfig
from serve.decision import (
    Route,
    SessionStore,
    continuation_key,
    features,
    prefix_key,
    resolve_model,
)
from serve.protocol import APIError, parse_chat_request

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[1]
LINKS = REPO / "configs" / "links.yaml"


@pytest.fixture(scope="module")
def prior():
    return load_latency_model(LINKS, "paper-table1", "gsm8k")


def test_model_names_follow_routellm() -> None:
    assert resolve_model("localroute", "mlp") == Route("mlp")
    assert resolve_model("router-mlp-0.42", "mlp") == Route("mlp", 0.42)
    assert resolve_model("router-task-prior-0.3", "task-prior") == Route("task-prior", 0.3)
    assert resolve_model("router-mlp-0.4-alpha0.1", "mlp") == Route("mlp", 0.4, 0.1)
    assert resolve_model("router-always-local-1", "mlp") == Route("always-local", 1.0)
    with pytest.raises(APIError) as err:
        resolve_model("router-mlp-1.5", "mlp")
    assert err.value.status == 400  # a RouteLLM-style name with a threshold outside [0, 1]
    for bad in ("gpt-4", "router-knn-0.5", "router-mlp", "router--0.5", "mlp"):
        with pytest.raises(APIError) as err:
            resolve_model(bad, "mlp")
        assert err.value.status == 404 and err.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "'model'"),
        (b'{"model": "localroute"}', "'messages' is required"),
        (b'{"model": "localroute", "messages": []}', "non-empty"),
        (b'{"model": "localroute", "messages": [{"role": "robot", "content": "x"}]}', "role"),
        (b'{"model": "localroute", "messages": [{"role": "assistant", "content": "x"}]}', "last"),
        (
            b'{"model": "localroute", "messages": [{"role": "user", "content": "x"}], '
            b'"max_tokens": 0}',
            "max_tokens",
        ),
        (
            b'{"model": "localroute", "messages": [{"role": "user", "content": "x"}], '
            b'"stream": "yes"}',
            "stream",
        ),
    ],
)
def test_bad_requests_are_400_naming_the_field(body: bytes, fragment: str) -> None:
    with pytest.raises(APIError) as err:
        parse_chat_request(body, max_messages=10, max_tokens_limit=100)
    assert err.value.status == 400
    assert fragment in err.value.message


USER_X = {"role": "user", "content": "x"}


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"messages": [{"role": "user", "content": None}]}, "messages[0].content", "not be null"),
        ({"messages": [{"role": "user"}]}, "messages[0].content", "is required"),
        (
            {"messages": [{"role": "system", "content": None}, USER_X]},
            "messages[0].content",
            "not be null",
        ),
        ({"messages": [USER_X, {"role": "user", "content": 3}]}, "messages[1].content", "string"),
        ({"messages": [USER_X], "logprobs": True}, "logprobs", "'logprobs' is not supported"),
        ({"messages": [USER_X], "top_logprobs": 3}, "top_logprobs", "'top_logprobs'"),
        ({"messages": [USER_X], "n": 2}, "n", "'n' must be 1"),
        ({"messages": [USER_X], "tools": [{"type": "function"}]}, "tools", "'tools'"),
    ],
)
def test_content_and_unhonoured_fields_are_400_with_their_param(body, param, fragment) -> None:
    import json

    with pytest.raises(APIError) as err:
        parse_chat_request(
            json.dumps({"model": "localroute", **body}).encode(),
            max_messages=10,
            max_tokens_limit=100,
        )
    e = err.value
    assert (e.status, e.param, e.type) == (400, param, "invalid_request_error")
    assert fragment in e.message
    assert e.body() == {
        "error": {
            "message": e.message,
            "type": "invalid_request_error",
            "param": param,
            "code": None,
        }
    }


def test_default_valued_fields_pass() -> None:
    """What asks for nothing the router cannot do is accepted: `logprobs: false`, `n: 1`."""
    req = parse_chat_request(
        b'{"model": "m", "messages": [{"role": "user", "content": ""}], "logprobs": false, '
        b'"top_logprobs": null, "n": 1, "tool_choice": "none"}',
        max_messages=10,
        max_tokens_limit=100,
    )
    assert req.messages == [{"role": "user", "content": ""}]


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", None),
        ("application/json; charset=utf-8", None),
        ("Application/JSON", None),
        ("application/vnd.api+json", None),
        (None, None),  # none declared: read as JSON
        ("text/plain", 415),
        ("text/plain; charset=utf-8", 415),
        ("application/x-www-form-urlencoded", 415),
        ("multipart/form-data; boundary=x", 415),
        ("", 415),
    ],
)
def test_a_body_not_declared_json_is_415(content_type, status) -> None:
    from starlette.requests import Request

    from serve.guard import check_json_type

    headers = [] if content_type is None else [(b"content-type", content_type.encode())]
    request = Request({"type": "http", "method": "POST", "path": "/", "headers": headers})
    if status is None:
        check_json_type(request)
        return
    with pytest.raises(APIError) as err:
        check_json_type(request)
    assert err.value.status == 415 and err.value.code == "unsupported_media_type"
    assert repr(content_type.split(";")[0].strip().lower()) in err.value.message


def test_text_parts_are_joined() -> None:
    req = parse_chat_request(
        b'{"model": "m", "messages": [{"role": "user", "content": '
        b'[{"type": "text", "text": "a "}, {"type": "text", "text": "b"}]}], "stream": true}',
        max_messages=10,
        max_tokens_limit=100,
    )
    assert req.messages == [{"role": "user", "content": "a b"}] and req.stream


def test_features_match_router_training_text() -> None:
    from localroute.routers.features import request_batch, split_conversation
    from serve.decision import router_batch

    msgs = [
        {"role": "user", "content": "one two three"},
        {"role": "assistant", "content": "four five"},
        {"role": "user", "content": "six seven"},
    ]
    f = features(msgs)
    assert (f.prompt_words, f.context_words, f.n_user_turns) == (2, 5, 2)
    # The prompt and its history apart, exactly as the routers' training examples are built.
    assert f.text == "six seven" == split_conversation(msgs, 2).prompt
    served, trained = router_batch(f, "t"), request_batch(msgs, "t")
    assert served.keys() == trained.keys()
    for k in trained:
        assert served[k].tolist() == trained[k].tolist(), k
    assert served["context"][0] == "user: one two three\n\nassistant: four five"
    single = features(msgs[:1])
    assert single.text == "one two three" and single.context_words == 0


def test_fusion_matches_eq11_and_switch_cost(prior) -> None:
    # Single turn: p~ = p - alpha (T_e - T_s), local when p~ <= theta.
    d = decide_one(0.6, 0.5, 0.05, 10, 0, None, prior)
    assert d.t_local == pytest.approx(0.04 * 10 + 0.04 * 136.3)
    # Table I's GSM8K, 5G-free preset link: T_e = 0.02 (10 + 460.1) + (10 + 460.1) / 2e7 + 0.02
    t_e = 0.02 * (10 + 460.1) + (10 + 460.1) / 2e7 + 0.02
    assert d.t_cloud == pytest.approx(t_e)
    assert d.fused == pytest.approx(0.6 - 0.05 * (t_e - (0.4 + 0.04 * 136.3)))
    assert d.fused == pytest.approx(0.6 - 0.05 * (9.422 - 5.852), abs=1e-3)  # 0.4215
    assert d.side == "local"  # 0.4215 <= 0.5
    # After a cloud turn, going local re-prefills the context: T_s grows by gamma_s * C_t.
    stay = decide_one(0.6, 0.5, 0.05, 10, 500, "local", prior)
    switch = decide_one(0.6, 0.5, 0.05, 10, 500, "cloud", prior)
    assert switch.t_local - stay.t_local == pytest.approx(0.04 * 500)
    assert switch.fused > stay.fused  # the switch cost pulls towards staying in the cloud
    assert switch.side == "cloud" and switch.reason.endswith("; stays on cloud")
    assert stay.side == "local" and stay.reason.endswith("; stays on local")
    moved = decide_one(0.0, 0.5, 0.0, 10, 500, "cloud", prior)  # p 0: local despite the switch
    assert (
        moved.side == "local" and "switch from cloud: re-prefill 500 context words" in moved.reason
    )
    # alpha = 0: the router alone decides.
    assert decide_one(0.51, 0.5, 0.0, 10, 0, None, prior).side == "cloud"
    assert decide_one(0.49, 0.5, 0.0, 10, 0, None, prior).side == "local"


@pytest.mark.parametrize("link", [None, "5g", "lte"])
def test_scalar_path_equals_the_vectorised_cost_model(link) -> None:
    """The server's one-request decision is the report's vectorised one, row for row."""
    from localroute.core.policy import decide, fused_score

    model = load_latency_model(LINKS, "paper-table1", "mmlu", link)
    rng = np.random.default_rng(0)
    for _ in range(50):
        lp, ct = float(rng.integers(1, 500)), float(rng.integers(0, 3000))
        prev = [None, "local", "cloud"][int(rng.integers(3))]
        p, alpha, wait = float(rng.random()), 0.03, float(rng.random())
        d = decide_one(p, 0.5, alpha, int(lp), int(ct), prev, model, local_wait_s=wait)
        tl = model.t_local(np.array([lp]), np.array([ct]), np.array([prev == "cloud"])) + wait
        tc = model.t_cloud(np.array([lp]), np.array([ct]), np.array([prev == "local"]))
        assert d.t_local == pytest.approx(float(tl[0]), rel=1e-12)
        assert d.t_cloud == pytest.approx(float(tc[0]), rel=1e-12)
        fused = fused_score(np.array([p]), alpha, tl, tc)
        assert d.fused == pytest.approx(float(fused[0]))
        assert d.side == ("cloud" if decide(fused, 0.5)[0] else "local")


def test_nan_fused_goes_to_cloud(prior) -> None:
    d = decide_one(math.nan, 0.5, 0.05, 10, 0, None, prior)
    assert d.side == "cloud" and "NaN" in d.reason


def test_sessions_by_prefix_hash_and_lru() -> None:
    msgs = [{"role": "user", "content": "hi"}]
    store = SessionStore(max_sessions=2, ttl_s=60)
    store.put(continuation_key(msgs, " hello "), "cloud", 3)
    turn2 = [*msgs, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "more"}]
    assert store.get(prefix_key(turn2)).side == "cloud"
    edited = [*msgs, {"role": "assistant", "content": "HELLO"}, {"role": "user", "content": "more"}]
    assert store.get(prefix_key(edited)) is None
    store.put("a", "local", 1)
    store.put("b", "local", 1)
    assert len(store) == 2 and store.get(prefix_key(turn2)) is None  # evicted, oldest first


def test_serve_section_validates(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("serve:\n  router: {name: random}\n  theta: 0.3\n  cloud: {retries: 2}\n")
    from serve.app import load_serve_section

    s = load_serve_section(cfg)
    assert isinstance(s, ServeConfig) and s.theta == 0.3 and s.cloud.retries == 2
    assert s.local.deployment.max_ongoing_requests == 16  # explicit, not Serve's default of 5
    for text, field in [
        ("serve:\n  theta: .nan\n", "serve.theta"),
        ("serve:\n  router: {name: random, artifact: x}\n", "serve.router"),
        ("serve:\n  cloud: {base_url: ftp://x}\n", "serve.cloud.base_url"),
        ("serve:\n  backpressure: {status_code: 500}\n", "serve.backpressure.status_code"),
        ("serve:\n  ingress: {max_replicas: 0}\n", "serve.ingress.max_replicas"),
        ("serve:\n  bogus: 1\n", "bogus"),
    ]:
        cfg.write_text(text)
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            load_serve_section(cfg)
    # The run config as the CLI reads it carries the same section.
    from cli.config import load_config

    shipped = REPO / "configs" / "local.yaml"
    assert load_config(shipped).serve == load_serve_section(shipped)


def test_a_router_by_name_weighs_latency_with_its_workloads_alpha(tmp_path: Path) -> None:
    """No artifact chose alpha: the latency preset's workload gives it (Table I), the config's
    overrides it, and a workload without one is a ConfigError naming serve.alpha."""
    import dataclasses

    from serve.app import workload_alpha
    from serve.config import LatencySpec

    def cfg(workload: str, alpha: float | None = None) -> ServeConfig:
        return dataclasses.replace(ServeConfig(latency=LatencySpec(workload=workload)), alpha=alpha)

    assert workload_alpha(cfg("mmlu"), tmp_path) == 0.03
    assert workload_alpha(cfg("gsm8k"), tmp_path) == 0.05
    # the config's alpha takes precedence (core.operating_point): no workload alpha is needed
    assert workload_alpha(cfg("mt-bench-101", alpha=0.2), tmp_path) is None
    from localroute.core.operating_point import resolve_operating_point

    point = resolve_operating_point(None, alpha=0.2, workload_alpha=0.05)
    assert (point.alpha, point.alpha_from) == (0.2, "config")
    point = resolve_operating_point(None, workload_alpha=0.05)
    assert (point.alpha, point.alpha_from) == (0.05, "latency preset workload")
    with pytest.raises(ConfigError, match=r"serve\.alpha: workload 'mt-bench-101'"):
        workload_alpha(cfg("mt-bench-101"), tmp_path)


def test_no_api_key_refuses_to_start(tmp_path: Path) -> None:
    from serve.app import api_key_hashes

    with pytest.raises(ConfigError, match="no API key"):
        api_key_hashes(ServeConfig(), environ={})
    hashes = api_key_hashes(ServeConfig(), environ={"LOCALROUTE_API_KEYS": "k1, k2"})
    assert len(hashes) == 2 and all("k1" not in h for h in hashes)


# --------------------------------------------------------------------------- cloud forwarder


def _cloud(base_url: str, **kw):
    """The CloudModel deployment's class, run in-process against a real loopback server."""
    from serve.testing.cloud_model import CloudModel, Secret

    cfg = CloudModelConfig(base_url=base_url, api_key_env="LR_UNSET_VAR_FOR_TEST", **kw)
    return CloudModel.func_or_class(cfg, Secret("cloud-key"))


def _run(coro):
    return asyncio.run(coro)


def test_cloud_forwards_with_key_and_streams() -> None:
    from serve.testing.echo import EchoServer

    payload = {"messages": [{"role": "user", "content": "ping pong"}], "max_tokens": 5}

    async def scenario(base_url: str):
        cloud = _cloud(base_url)
        out = await cloud.generate(payload)
        items = [item async for item in cloud.stream(payload)]
        rtt = await cloud.probe()
        wrong = _cloud(base_url)
        wrong.client.headers["Authorization"] = "Bearer nope"
        return out, items, rtt, await wrong.generate(payload)

    with EchoServer(api_key="cloud-key") as echo:
        out, items, rtt, unauthorized = _run(scenario(echo.base_url))
        assert echo.requests == 3  # a 401 is not retried
    assert out["text"] == "echo: ping pong" and out["tokens_out"] == 3
    assert "".join(i.get("delta", "") for i in items) == "echo: ping pong"
    assert items[-1]["done"] and items[-1]["tokens_in"] == 2
    assert rtt is not None and rtt > 0
    assert unauthorized["error"]["kind"] == "http_401"


def test_cloud_faults_are_bounded_and_classified() -> None:
    from serve.app import free_port
    from serve.testing.echo import EchoServer

    payload = {"messages": [{"role": "user", "content": "x"}]}
    with EchoServer(mode="fail") as failing:
        out = _run(_cloud(failing.base_url, retries=2, retry_backoff_s=0.01).generate(payload))
        assert out["error"]["kind"] == "http_500" and "3 tries" in out["error"]["message"]
        assert failing.requests == 3

        async def stream():
            cloud = _cloud(failing.base_url, retries=1, retry_backoff_s=0.01)
            return [item async for item in cloud.stream(payload)]

        items = _run(stream())
        assert len(items) == 1 and items[0]["error"]["kind"] == "http_500"
        assert failing.requests == 5
    with EchoServer(mode="hang", hang_s=30) as hanging:
        cloud = _cloud(hanging.base_url, timeout_s=0.3, retries=1, retry_backoff_s=0.01)
        out = _run(cloud.generate(payload))
        assert out["error"]["kind"] == "timeout" and hanging.requests == 2

    async def dead_calls():
        dead = _cloud(f"http://127.0.0.1:{free_port()}/v1", retries=0)
        return await dead.generate(payload), await dead.probe()

    out, rtt = _run(dead_calls())
    assert out["error"]["kind"] == "unreachable" and rtt is None


def test_vllm_engine_without_vllm_is_a_config_error() -> None:
    try:
        import ray.serve.llm.openai_api_models  # noqa: F401  (needs vLLM or SGLang)
    except ImportError:
        pass
    else:
        pytest.skip("ray.serve.llm has an engine here")
    from serve.app import build_app
    from serve.config import LocalModelConfig, VLLMSpec

    local = LocalModelConfig(engine="vllm", vllm=VLLMSpec(model_source="Qwen/Qwen2.5-0.5B"))
    with pytest.raises(ConfigError, match="serve.local.engine: vllm needs vLLM"):
        build_app(ServeConfig(local=local), environ={"LOCALROUTE_API_KEYS": "k"})


def test_cloud_deadline_covers_the_whole_request() -> None:
    """A hung, trickling or dropping API costs at most `timeout_s` in all (retries included)."""
    import time

    from serve.cloud_client import CloudClient
    from serve.testing.echo import EchoServer

    payload = {"messages": [{"role": "user", "content": "x"}]}
    cfg = dict(timeout_s=1.0, retries=1, retry_backoff_s=0.01, api_key_env="LR_UNSET_VAR")

    async def both(client):
        t0 = time.monotonic()
        out = await client.generate(payload)
        t1 = time.monotonic()
        items = [item async for item in client.stream(payload)]
        return out, items, t1 - t0, time.monotonic() - t1

    # The servers would answer (hang: an echo) or end (trickle: one byte each 0.3 s, which no
    # per-read timeout cuts) only after 30 s: a timeout error means the request's deadline, not
    # the server, ended each call, whatever the machine's load. No upper bound on the time.
    for mode, kind in [("hang", "timeout"), ("trickle", "timeout"), ("drop", "unreachable")]:
        with EchoServer(mode=mode, hang_s=30, trickle_s=0.3) as server:
            client = CloudClient(CloudModelConfig(base_url=server.base_url, **cfg))
            out, items, t_unary, t_stream = _run(both(client))
        assert out["error"]["kind"] == kind and items == [{"error": out["error"]}], mode
        if mode == "hang":  # each try had its share of the deadline: the retry happened
            assert server.requests == 4 and out["error"]["message"].endswith("(after 2 tries)")
            # and the deadline was used, not cut short (a lower bound: load only adds to it)
            assert t_unary >= 0.9 and t_stream >= 0.9, (t_unary, t_stream)
        if mode == "trickle":  # the first byte came at once: no time was left for a retry
            assert server.requests == 2 and out["error"]["message"].endswith("(after 1 tries)")


def test_local_queue_wait_and_estimates_floor() -> None:
    from serve.decision import estimated_tokens

    load = LocalLoad(slots=2, weight=0.5, min_samples=2)
    assert load.wait_s(4.0) == 0.0
    load.started()
    assert load.wait_s(4.0) == 0.0  # one in flight, a slot free
    load.started()
    load.started()
    assert load.wait_s(4.0) == pytest.approx(2 / 2 * 4.0)  # prior service time until measured
    load.finished(1.0)
    load.finished(1.0)
    assert load.inflight == 1 and load.wait_s(4.0) == 0.0
    load.started()
    load.started()
    assert load.wait_s(4.0) == pytest.approx(2 / 2 * 1.0)  # measured service time now
    est = LiveEstimates(weight=0.5, min_transfer_bytes=1, min_samples=3, decay_half_life_s=None)
    est.observe_rtt(0.5)
    est.observe_rtt(0.5)
    assert est.snapshot(PRIOR()).apply(PRIOR()) is PRIOR_MODEL  # below the floor: the prior
    est.observe_rtt(0.5)
    assert est.snapshot(PRIOR()).apply(PRIOR()).link.overhead_s == pytest.approx(0.5)
    msgs = [{"role": "user", "content": "w " * 300}]
    assert estimated_tokens(msgs, 10) >= 400 + 10  # 4/3 tokens per word at least


PRIOR_MODEL = load_latency_model(LINKS, "paper-table1", "gsm8k")


def PRIOR():
    return PRIOR_MODEL


def test_metrics_replay_sums_replicas() -> None:
    from serve.metrics import Metrics

    a, b, store = Metrics(export_ray=False, share=True), Metrics(export_ray=False, share=True), None
    store = Metrics(export_ray=False)
    for m in (a, b):
        m.request("chat", 200)
        m.observe_hop(0.002)
    a.decision("local", "local", "random")
    store.replay(a.take())
    store.replay(b.take())
    assert a.take() == []  # taken once
    text = store.render().decode()
    assert 'localroute_requests_total{route="chat",status="200"} 2.0' in text
    assert "localroute_router_hop_seconds_count 2.0" in text
    assert (
        'localroute_decisions_total{decision="local",router="random",served_by="local"} 1.0' in text
    )


def test_grafana_dashboard_reads_the_metrics_the_router_exports() -> None:
    import json
    import re

    from serve.metrics import Metrics

    dash = json.loads((REPO / "cluster" / "grafana" / "localroute-router.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {
        re.sub(r"_(bucket|total)$", "", m) for e in exprs for m in re.findall(r"localroute_\w+", e)
    }
    text = Metrics(export_ray=False).render().decode()
    types = re.findall(r"^# TYPE (localroute_\w+) ", text, flags=re.M)
    exported = {re.sub(r"_total$", "", m) for m in types}
    assert used and used <= exported, used - exported


def test_throughput_optimized_is_ray_environment() -> None:
    from serve.app import ray_env

    assert ray_env(ServeConfig()) == {}
    env = ray_env(ServeConfig(throughput_optimized=True))
    assert env == {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1"}
