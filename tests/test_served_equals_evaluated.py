"""One routing decision from evaluation to serving: a trained router artifact, served by Ray
Serve behind the real `openai` client with the default operating point (alpha and theta null:
the artifact's), decides every query exactly as the report's "as deployed" replay decides the
same text (pipelines.evaluate.deployed.deployed_replay: the server's own controller, the
deployed models' latency prior). With live estimates off the replay is the server's, row for
row; with them on, the replay is fed the live figures each response reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openai
import pytest
from conftest import train_artifact

pytestmark = pytest.mark.timeout(300)

KEY = "sk-test-" + "0f1e2d3c"
N = 24


@pytest.fixture(scope="module")
def gbt_artifact(small_build: Path, tmp_path_factory) -> Path:
    """A learned router (gradient boosting on embeddings), written by `localroute train`."""
    return train_artifact("gbt", small_build, tmp_path_factory.mktemp("gbt"))


def _serve_config(artifact: Path, tmp_path: Path, echo_url: str, live: bool):
    from serve.config import (
        AuthConfig,
        CloudModelConfig,
        DeploymentScaling,
        LatencySpec,
        LocalModelConfig,
        RouterSpec,
        ServeConfig,
    )

    tiny = dict(min_replicas=1, max_replicas=1, num_cpus=0.1)
    return ServeConfig(  # theta and alpha null: the artifact's operating point
        app_name="parity",
        router=RouterSpec(
            artifact=str(artifact),
            # trained on published Mixtral vs gpt-4-1106 outcomes, served in front of stand-ins
            stand_ins={
                "mistralai/Mixtral-8x7B-Instruct-v0.1": "tiny-qwen2-random",
                "gpt-4-1106-preview": "echo-large",
            },
        ),
        latency=LatencySpec(live=live, min_samples=1),
        auth=AuthConfig(api_keys=[KEY], api_keys_env="LR_TEST_UNSET_KEYS"),
        local=LocalModelConfig(
            tiny_dir=str(tmp_path / "tiny"), max_new_tokens=2, deployment=DeploymentScaling(**tiny)
        ),
        cloud=CloudModelConfig(
            base_url=echo_url,
            model="echo-large",
            api_key_env="LR_TEST_CLOUD_KEY",
            max_tokens=64,
            deployment=DeploymentScaling(**tiny),
        ),
        ingress=DeploymentScaling(**tiny),
        access_log=False,
    )


def _report_replay(small_build: Path, artifact: Path, serve_cfg):
    """The evaluation's own table for the artifact's pair, and the report's as-deployed replay."""
    from pipelines.evaluate.config import EvaluateConfig
    from pipelines.evaluate.context import load_artifact, make_context
    from pipelines.evaluate.deployed import DeployedSpec, deployed_replay
    from pipelines.evaluate.pairs import PairTables

    ev = EvaluateConfig(routers=["learned"], max_train_rows=200, max_test_rows=N)
    spec = next(s for s in ev.mmlu if s.source == "routellm_mmlu")
    art = load_artifact(artifact)
    deployed = DeployedSpec.from_serve(serve_cfg)
    ctx = make_context(ev, 7, small_build, None, lambda *_: None, artifact=art, deployed=deployed)
    table = PairTables(ctx).single_turn(spec, "fusion_mmlu")
    point, replay = deployed_replay(table, ctx)
    return table, point, replay, ctx


@pytest.mark.parametrize("live", [False, True], ids=["live-off", "live-on"])
def test_served_decisions_equal_the_reports_replay(
    ray_cluster, small_build, gbt_artifact, tmp_path, live
):
    from localroute.core.controller import RequestInputs, RouteController
    from localroute.core.live import EstimateSnapshot
    from localroute.core.sides import side_name
    from localroute.routers import load_router
    from serve.app import free_port, start, stop
    from serve.testing.echo import EchoServer

    echo = EchoServer(api_key="cloud-key").start()
    cfg = _serve_config(gbt_artifact, tmp_path, echo.base_url, live)
    table, point, replayed, ctx = _report_replay(small_build, gbt_artifact, cfg)
    router = load_router(gbt_artifact)
    assert (point.alpha_from, point.theta_from) == ("artifact", "artifact")
    assert (point.alpha, point.theta) == (router.alpha, router.threshold)
    assert table.n == N
    if not live:
        assert 0 < int(replayed.decision.sum()) < N  # both sides in the replay
    # the live-on replay: the same controller type, fed each response's live figures
    again = RouteController(point, ctx.deployed.latency.prior())
    try:
        url = start(cfg, port=free_port(), environ={"LR_TEST_CLOUD_KEY": "cloud-key"})
        client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        listed = client.models.list().data
        assert listed[0].model_extra["fingerprint"] == router.fingerprint
        assert listed[0].model_extra["artifact"] == str(gbt_artifact)
        assert listed[0].model_extra["pairing"]["stand_in"] is True
        for m in listed[1:]:  # every RouteLLM-style id listed resolves
            raw = client.chat.completions.with_raw_response.create(
                model=m.id, messages=[{"role": "user", "content": "hi"}]
            )
            assert raw.headers["x-localroute-theta-source"] == "model", m.id
        measured = 0
        for i, text in enumerate(table.batch["text"]):
            raw = client.chat.completions.with_raw_response.create(
                model="localroute", messages=[{"role": "user", "content": str(text)}]
            )
            h = raw.headers
            assert h["x-localroute-pairing"] == (
                "router trained for mistralai/Mixtral-8x7B-Instruct-v0.1 vs gpt-4-1106-preview, "
                "serving tiny-qwen2-random vs echo-large (declared stand-in)"
            )
            p = float(h["x-localroute-p"])
            assert p == pytest.approx(table.scores["learned"].p[i], abs=1e-6)
            assert float(h["x-localroute-theta"]) == pytest.approx(point.theta, abs=1e-6)
            assert float(h["x-localroute-local-wait"]) == 0.0  # one request at a time
            snap = EstimateSnapshot.from_header(h["x-localroute-estimates"])
            if not live:
                assert snap == EstimateSnapshot()  # the prior alone
                side, fused = replayed.decision[i], replayed.fused[i]
                t_local, t_cloud = replayed.t_local[i], replayed.t_cloud[i]
            else:
                measured += snap != EstimateSnapshot()
                d = again.decide(
                    RequestInputs(p, table.col("prompt_words")[i], 0.0), estimates=snap
                ).decision
                side, fused, t_local, t_cloud = d.side == "cloud", d.fused, d.t_local, d.t_cloud
            assert h["x-localroute-chosen"] == side_name(int(side)), (i, text[:80])
            assert h["x-localroute-served"] == h["x-localroute-decision"]  # the old name, kept
            assert float(h["x-localroute-p-fused"]) == pytest.approx(fused, rel=1e-5, abs=1e-6)
            assert float(h["x-localroute-t-local"]) == pytest.approx(t_local, rel=1e-5)
            assert float(h["x-localroute-t-cloud"]) == pytest.approx(t_cloud, rel=1e-5)
        if live:
            assert measured > N // 2  # the live figures were in force for most decisions
    finally:
        stop()
        echo.stop()
    assert np.isfinite(replayed.fused).all()
