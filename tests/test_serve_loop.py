"""TrafficBench's loop through the real server: shadow labels from live traffic (serve.feedback),
a router retrained from them (`localroute train --data feedback:DIR`), and a new artifact
adopted without a restart under concurrent load (serve.router.watch_s), an artifact for other
models refused while the old one keeps serving.

The real Serve application on 127.0.0.1 with a scripted local stand-in (`local: <prompt>`) and
an echo cloud (`echo: <prompt>`); each request carries its reference answer in a header, so the
grader (the project's `normalised` grading) labels it: even requests expect the local answer,
odd ones the cloud's.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import httpx2
import pytest
from conftest import EVAL_PAIR, get_ok, metric_sum, stand_in_app, wait_until

from cli.main import main
from serve.config import RouterSpec

pytestmark = pytest.mark.timeout(300)

KEY = "sk-loop-" + "5a6b7c8d"
AUTH = {"Authorization": f"Bearer {KEY}"}
ONE = dict(min_replicas=1, max_replicas=1, num_cpus=0.05)
MIXTRAL, GPT4 = EVAL_PAIR.split(",")
STAND_INS = {MIXTRAL: "tiny-qwen2-random", GPT4: "echo-large"}
N = 150


@pytest.fixture(scope="module")
def served(ray_cluster, artifact: Path, tmp_path_factory):
    from serve.config import DeploymentScaling, LocalModelConfig
    from serve.feedback import FeedbackConfig
    from serve.testing.echo_local import EchoLocal

    tmp = tmp_path_factory.mktemp("loop")
    watched = tmp / "router"
    shutil.copytree(artifact, watched)
    local = EchoLocal.options(max_ongoing_requests=32, ray_actor_options={"num_cpus": 0.05})
    with stand_in_app(
        "loop",
        KEY,
        local.bind(),
        router=RouterSpec(artifact=str(watched), stand_ins=STAND_INS, watch_s=0.2),
        feedback=FeedbackConfig(
            enabled=True,
            sample=1.0,
            out=str(tmp / "feedback"),
            flush_rows=10,
            max_per_minute=10_000,
        ),
        local=LocalModelConfig(
            concurrency=8, deployment=DeploymentScaling(max_ongoing_requests=32, **ONE)
        ),
        ingress=DeploymentScaling(max_ongoing_requests=64, **ONE),
    ) as url:
        wait_until(lambda: get_ok(url + "/readyz"), "the app ready")
        yield {"url": url, "watched": watched, "feedback": tmp / "feedback", "tmp": tmp}


def test_shadow_labels_from_live_traffic_train_a_router(served, small_build, capsys) -> None:
    from localroute.data.build import read_table

    url = served["url"]
    with httpx2.Client(timeout=60) as c:
        for i in range(N):
            text = f"question {i}: what is {i} times {i + 3}?"
            want = f"local: {text}" if i % 2 == 0 else f"echo: {text}"
            body = {"model": "localroute", "messages": [{"role": "user", "content": text}]}
            if i % 10 == 0:
                body["stream"] = True  # a streamed answer is offered once its last chunk is out
            r = c.post(
                url + "/v1/chat/completions",
                json=body,
                headers={**AUTH, "x-localroute-reference": want},
            )
            assert r.status_code == 200, r.text
    wait_until(
        lambda: metric_sum(url, "localroute_feedback_labelled") >= N, "every shadow label", 60
    )
    assert metric_sum(url, "localroute_feedback_dropped") == 0
    assert metric_sum(url, "localroute_feedback_failed") == 0
    assert metric_sum(url, "localroute_feedback_drift_labels") == N
    assert metric_sum(url, "localroute_feedback_shadow_tokens") > 0
    spend = httpx2.get(url + "/healthz", headers=AUTH, timeout=10).json()["feedback"]
    # echo-large has no price in configs/prices.yaml: dollars null, never 0; joules null
    assert spend["shadow_usd"] is None and spend["shadow_usd_provenance"] == "absent"
    assert spend["shadow_joules"] is None and spend["shadow_tokens"] > 0
    # task-prior scores every request alike: its rolling AUC on the shadow labels is chance
    assert metric_sum(url, "localroute_feedback_drift_auc") == pytest.approx(0.5)
    written = metric_sum(url, "localroute_feedback_written")
    assert written == N - N % 10  # whole batches of 10 so far; the rest waits for the next
    queries = read_table(served["feedback"], "queries")
    outcomes = read_table(served["feedback"], "outcomes")
    assert queries.num_rows == written and outcomes.num_rows == 2 * written
    assert set(outcomes["provenance"].to_pylist()) == {"feedback"}
    by_model = {m: [] for m in ("local-tiny-qwen2", "echo-large")}
    for row in outcomes.to_pylist():
        by_model[row["model"]].append((row["query_id"], row["score"]))
    for model, rows in by_model.items():  # the local answer right on even requests only
        assert len(rows) == written, model
    labels = {}
    for q in queries.to_pylist():
        i = int(q["turns"][-1]["content"].split()[1].rstrip(":"))
        labels[q["query_id"]] = i % 2
    local_scores = dict(by_model["local-tiny-qwen2"])
    assert all(local_scores[q] == float(labels[q] == 0) for q in labels)
    assert not list(served["feedback"].rglob("*.tmp"))  # nothing half-written

    # Retrain from them: the artifact says its labels are shadow labels of the deployed pair.
    cfg = served["tmp"] / "train.yaml"
    cfg.write_text(f"data:\n  out: {small_build}\n")
    out = served["tmp"] / "retrained"
    argv = ["train", "--config", str(cfg), "--router", "task-prior", "--out", str(out)]
    pair = "local-tiny-qwen2,echo-large"
    rc = main([*argv, "--data", f"feedback:{served['feedback']}", "--pair", pair])
    assert rc == 0, capsys.readouterr().err
    info = json.loads((out / "router.json").read_text())["info"]
    assert info["labels"]["feedback"] == info["n_train"] + info["calibration"]["n_val"]
    assert {c["labels"].split(" ")[0] for c in info["candidates"]} == {"feedback"}
    # ... and in union with a public source as a prior: trained for the deployed pair still,
    # calibrated on the shadow labels alone, the public rows weighted as much as the live ones
    rc = main([*argv, "--data", f"feedback:{served['feedback']},routellm_mmlu", "--pair", pair])
    assert rc == 0, capsys.readouterr().err
    union = json.loads((out / "router.json").read_text())["info"]
    assert [c["model"] for c in union["candidates"]] == ["local-tiny-qwen2", "echo-large"]
    assert union["labels"]["feedback"] == info["labels"]["feedback"]
    assert union["labels"]["published"] > 0 and union["n_train"] > info["n_train"]
    assert union["calibration"]["n_val"] == info["calibration"]["n_val"]

    # Drift you can see: the artifact scored on the shadow labels batch by batch, then a corrupt
    # file is one clear error.
    report = served["tmp"] / "drift"
    fb = f"feedback:{served['feedback']}"
    ev = ["evaluate", "--config", str(cfg), "--router-artifact", str(out), "--out", str(report)]
    assert main([*ev, "--data", fb]) == 0, capsys.readouterr().err
    d = json.loads((report / "metrics.json").read_text())["drift"]
    assert len(d["batches"]) == written // 10 and d["all"]["n"] == written
    assert d["batches"][-1]["labels_so_far"] == written
    assert d["all"]["label_rate"] == pytest.approx(0.5, abs=0.05)  # odd requests need the cloud
    assert "Drift on shadow labels" in (report / "report.html").read_text()
    bad = served["feedback"] / "outcomes" / "feedback-zz-1.parquet"
    bad.write_bytes(b"not parquet")
    try:
        assert main([*ev, "--data", fb]) == 2
        err = capsys.readouterr().err
        assert err.count("error:") == 1 and "feedback-zz-1.parquet" in err
    finally:
        bad.unlink()


def test_a_new_artifact_is_adopted_under_load_without_a_failed_request(
    served, small_build, tmp_path_factory
) -> None:
    from conftest import train_artifact

    from localroute.routers import load_router

    url, watched = served["url"], served["watched"]
    old = load_router(watched).fingerprint
    new_dir = train_artifact(
        "task-prior", small_build, tmp_path_factory.mktemp("b"), "routellm_gsm8k"
    )
    new = load_router(new_dir)
    assert new.fingerprint != old
    rows: list[tuple[int, str]] = []
    stop = threading.Event()

    def client() -> None:
        with httpx2.Client(timeout=60) as c:
            while not stop.is_set():
                r = c.post(
                    url + "/v1/chat/completions",
                    json={"model": "localroute", "messages": [{"role": "user", "content": "hi"}]},
                    headers=AUTH,
                )
                rows.append((r.status_code, r.headers.get("x-localroute-router-fingerprint")))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(32)]
    for t in threads:
        t.start()
    try:
        while len(rows) < 50:
            time.sleep(0.05)
        new.save(watched)  # weights, then router.json: what `localroute train --out` does
        wait_until(lambda: any(fp == new.fingerprint for _, fp in rows[-5:]), "the swap", 30)
        n = len(rows)
        while len(rows) < n + 50:
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert all(status == 200 for status, _ in rows), [r for r in rows if r[0] != 200][:3]
    fps = [fp for _, fp in rows]
    assert set(fps) == {old, new.fingerprint}
    first_new = fps.index(new.fingerprint)
    assert fps[:first_new].count(new.fingerprint) == 0 and first_new > 0
    listed = httpx2.get(url + "/v1/models", headers=AUTH, timeout=10).json()["data"][0]
    assert listed["fingerprint"] == new.fingerprint

    # An artifact for other models is refused; the adopted one keeps serving.
    foreign = load_router(new_dir)
    foreign.info["candidates"] = [
        {"role": "local", "model": "llama-3.1-8b-instruct", "labels": "published"},
        {"role": "cloud", "model": "llama-3.1-nemotron-51b-instruct", "labels": "published"},
    ]
    foreign.save(watched)

    def refused() -> bool:
        return httpx2.get(url + "/healthz", headers=AUTH, timeout=10).json().get("refused", 0) >= 1

    wait_until(refused, "the foreign artifact refused", 30)
    r = httpx2.post(
        url + "/v1/chat/completions",
        json={"model": "localroute", "messages": [{"role": "user", "content": "hi"}]},
        headers=AUTH,
        timeout=30,
    )
    assert r.status_code == 200 and r.headers["x-localroute-router-fingerprint"] == new.fingerprint


def test_shadow_spend_is_priced_from_the_price_table() -> None:
    """A priced cloud model's shadow tokens become dollars with the price's provenance."""
    from serve.feedback import FeedbackConfig, ShadowLabeller

    priced = ShadowLabeller(FeedbackConfig(), None, None, {"local": "l", "cloud": GPT4}, "r")
    priced._spend({"tokens_in": 1000, "tokens_out": 2000}, cloud=True)
    priced._spend({"tokens_in": 500, "tokens_out": 500}, cloud=False)  # the local side: free
    st = priced.state()
    assert st["shadow_tokens"] == 4000
    assert st["shadow_usd"] == pytest.approx((1000 * 10.0 + 2000 * 30.0) / 1e6)  # prices.yaml
    assert st["shadow_usd_provenance"] == "published"
