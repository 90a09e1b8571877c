"""The shadow labeller's judge path through the real app (its own module: Serve runs one HTTP
proxy a session, so an app of another module's fixture must be gone before this one starts)."""

from __future__ import annotations

import httpx2
import pytest
from conftest import get_ok, metric_sum, stand_in_app, wait_until

from serve.config import RouterSpec

pytestmark = pytest.mark.timeout(120)

KEY = "sk-judge-" + "3e4f5a6b"
AUTH = {"Authorization": f"Bearer {KEY}"}
ONE = dict(min_replicas=1, max_replicas=1, num_cpus=0.05)


def test_unreferenced_requests_are_graded_by_the_judge_and_garbage_leaves_no_row(
    ray_cluster, tmp_path
) -> None:
    """No reference: both answers go to the judge (MT-Bench's prompt through the cloud API);
    its 1-10 ratings make the label. A judge that answers garbage: counted, no row written."""
    from localroute.grading.judge import PROMPT
    from serve.config import DeploymentScaling, LocalModelConfig
    from serve.feedback import FeedbackConfig
    from serve.testing.echo_local import EchoLocal

    def judged(question: str, answer: str) -> str:
        return PROMPT.format(question=question, answer=answer)

    ratings = {
        judged("rate me", "local: rate me"): "Solid. Rating: [[9]]",
        judged("rate me", "echo: rate me"): "Weak. Rating: [[3]]",
        judged("garbage", "local: garbage"): "I would rather not say.",
        judged("garbage", "echo: garbage"): "No.",
    }
    local = EchoLocal.options(ray_actor_options={"num_cpus": 0.05})
    with stand_in_app(
        "judge",
        KEY,
        local.bind(),
        cloud_answers=ratings,
        router=RouterSpec(name="always-local"),
        feedback=FeedbackConfig(enabled=True, sample=1.0, out=str(tmp_path / "fb"), flush_rows=1),
        local=LocalModelConfig(deployment=DeploymentScaling(**ONE)),
        ingress=DeploymentScaling(**ONE),
    ) as url:
        wait_until(lambda: get_ok(url + "/readyz"), "the app ready")
        for text in ("rate me", "garbage"):
            body = {"model": "localroute", "messages": [{"role": "user", "content": text}]}
            r = httpx2.post(url + "/v1/chat/completions", json=body, headers=AUTH, timeout=30)
            assert r.status_code == 200 and r.headers["x-localroute-decision"] == "local"
        wait_until(
            lambda: (
                metric_sum(url, "localroute_feedback_labelled")
                + metric_sum(url, "localroute_feedback_failed")
                >= 2
            ),
            "both shadow jobs done",
            60,
        )
        assert metric_sum(url, "localroute_feedback_labelled") == 1
        assert metric_sum(url, "localroute_feedback_failed") == 1  # the garbage judge: no row
    from localroute.data.build import read_table

    rows = {r["model"]: r for r in read_table(tmp_path / "fb", "outcomes").to_pylist()}
    assert rows["local-tiny-qwen2"]["score"] == pytest.approx((9 - 1) / 9)
    assert rows["echo-large"]["score"] == pytest.approx((3 - 1) / 9)
    (query,) = read_table(tmp_path / "fb", "queries").to_pylist()
    assert query["grading"] == "judge" and query["reference"] is None
