"""One routing decision from evaluation to serving: a trained router artifact, served by Ray
Serve behind the real `openai` client, decides every query exactly as the evaluation that
reports on it decides the same text (same artifact, alpha, theta and latency model)."""

from __future__ import annotations

import dataclasses
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


def _evaluated_rows(small_build: Path, artifact: Path, latency):
    """The evaluation's own table for the pair the artifact was trained on, and its decisions."""
    from pipelines.evaluate.config import EvaluateConfig
    from pipelines.evaluate.context import load_artifact, make_context
    from pipelines.evaluate.pairs import PairTables

    ev = EvaluateConfig(routers=["learned"], max_train_rows=200, max_test_rows=N)
    spec = next(s for s in ev.mmlu if s.source == "routellm_mmlu")
    art = load_artifact(artifact)
    ctx = make_context(ev, 7, small_build, None, lambda *_: None, artifact=art)
    table = PairTables(ctx).single_turn(spec, "fusion_mmlu")
    router = art.router
    alpha = float(getattr(router, "alpha", None) or spec.alpha)
    decided = table.decisions("learned", alpha, router.threshold, latency)
    return table, decided, alpha, router.threshold


def test_served_decisions_equal_the_evaluation(ray_cluster, small_build, gbt_artifact, tmp_path):
    from localroute.core.profiles import load_latency_model
    from localroute.core.sides import CLOUD, side_name
    from serve.app import start, stop
    from serve.config import (
        AuthConfig,
        CloudModelConfig,
        DeploymentScaling,
        LatencySpec,
        LocalModelConfig,
        RouterSpec,
        ServeConfig,
    )
    from serve.echo import EchoServer, free_port

    spec = LatencySpec(preset="paper-table1", workload="mmlu", link="5g", live=False)
    latency = load_latency_model(spec.links_file, spec.preset, spec.workload, spec.link)
    table, decided, alpha, theta = _evaluated_rows(small_build, gbt_artifact, latency)
    assert table.n == N and 0 < int(np.sum(decided.decision == CLOUD)) < N  # both sides

    tiny = dict(min_replicas=1, max_replicas=1, num_cpus=0.1)
    echo = EchoServer(api_key="cloud-key").start()
    cfg = ServeConfig(
        router=RouterSpec(artifact=str(gbt_artifact)),
        theta=theta,
        alpha=alpha,
        latency=spec,
        auth=AuthConfig(api_keys=[KEY], api_keys_env="LR_TEST_UNSET_KEYS"),
        local=LocalModelConfig(
            tiny_dir=str(tmp_path / "tiny"),
            max_new_tokens=2,
            deployment=DeploymentScaling(**tiny),
        ),
        cloud=CloudModelConfig(
            base_url=echo.base_url,
            model="echo-large",
            api_key_env="LR_TEST_CLOUD_KEY",
            deployment=DeploymentScaling(**tiny),
        ),
        ingress=DeploymentScaling(**tiny),
        access_log=False,
    )
    try:
        url = start(
            dataclasses.replace(cfg, app_name="parity"),
            port=free_port(),
            environ={"LR_TEST_CLOUD_KEY": "cloud-key"},
        )
        client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        # the server names the artifact it serves: the one the evaluation reported on
        from localroute.routers import load_router

        listed = client.models.list().data[0].model_extra
        assert listed["fingerprint"] == load_router(gbt_artifact).fingerprint
        assert listed["artifact"] == str(gbt_artifact) and listed["router"] == "gbt"
        for i, text in enumerate(table.batch["text"]):
            raw = client.chat.completions.with_raw_response.create(
                model="localroute",
                messages=[{"role": "user", "content": str(text)}],
                max_tokens=2,
            )
            h = raw.headers
            assert h["x-localroute-chosen"] == side_name(decided.decision[i]), (i, text[:80])
            assert float(h["x-localroute-p"]) == pytest.approx(table.scores["learned"].p[i], 1e-5)
            assert float(h["x-localroute-p-fused"]) == pytest.approx(decided.fused[i], 1e-5)
            assert float(h["x-localroute-t-local"]) == pytest.approx(decided.t_local[i], 1e-5)
            assert float(h["x-localroute-t-cloud"]) == pytest.approx(decided.t_cloud[i], 1e-5)
            assert float(h["x-localroute-theta"]) == pytest.approx(theta, 1e-5)
    finally:
        stop()
        echo.stop()
