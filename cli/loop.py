"""The retrain loop on published outcomes, through the real server: shared by the demo's last
stage and `benchmarks/bench_feedback.py`.

Stand-in local and cloud deployments answer each query of a public source with the *published*
outcome of a real pair (the right letter where that model was right, a wrong one elsewhere),
each request carries its reference, so serve's shadow grader labels it as the published outcomes
do. A router artifact is served from a watched directory (`serve.router.watch_s`); a retrain
(`train --data feedback:DIR[,PRIOR]`) is promoted into it only when it beats the served router on
held-out shadow labels, and the server adopts it without a restart. Figures are taken on a fixed
held-back slice of the source that is never sent.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

KEY = "sk-loop-" + "2c4e6a8b"
AUTH = {"Authorization": f"Bearer {KEY}"}


@dataclass
class Traffic:
    """A source's labelled queries for one pair, right/wrong as the stand-ins answer them."""

    ex: dict[str, np.ndarray]
    refs: list[str]
    held: np.ndarray  # never sent: where every router is measured
    pool: np.ndarray  # sent, in this order (cycled)
    local: str
    cloud: str

    def scripted(self, side: str) -> dict[str, str]:
        q = self.ex[f"q_{side}"]
        wrong = {r: ("B" if r != "B" else "C") for r in set(self.refs)}
        return {
            str(t): (r if q[i] >= 1 else wrong[r])
            for i, (t, r) in enumerate(zip(self.ex["text"], self.refs, strict=True))
        }


def published_traffic(
    data: Path, source: str, local: str, cloud: str, holdback: int, seed: int
) -> Traffic:
    """RouterDC-style published scores (the probability of the right letter) are right where
    >= 0.5; labels follow (the local answer not good enough: local wrong, cloud right)."""
    from localroute.data.build import read_table
    from localroute.routers.examples import pair_examples, to_batch

    ex = to_batch(pair_examples(data, source, local, cloud))
    q = read_table(data, "queries", [source]).select(["query_id", "reference"])
    ref = dict(zip(q["query_id"].to_pylist(), q["reference"].to_pylist(), strict=True))
    keep = np.array([ref.get(i) is not None for i in ex["query_id"]])
    ex = {k: v[keep] for k, v in ex.items()}
    for side in ("local", "cloud"):
        ex[f"q_{side}"] = (np.asarray(ex[f"q_{side}"], float) >= 0.5).astype(float)
    ex["label"] = (ex["q_local"] < ex["q_cloud"]).astype(np.int8)
    order = np.random.default_rng(seed).permutation(len(ex["text"]))
    refs = [ref[i] for i in ex["query_id"]]
    return Traffic(ex, refs, order[:holdback], order[holdback:], local, cloud)


def figures(router, t: Traffic, serve_cfg) -> dict[str, float]:
    """AUC, ECE and the deployed operating point (the server's controller, replayed) on the
    held-back slice."""
    from localroute.core.controller import RouteController, replay
    from localroute.core.operating_point import resolve_operating_point
    from localroute.metrics import roc_auc
    from localroute.routers.calibration import ece

    b = {k: v[t.held] for k, v in t.ex.items()}
    p = router.score(b)
    point = resolve_operating_point(router, alpha=serve_cfg.alpha, theta=serve_cfg.theta)
    prior = serve_cfg.deployment_latency().prior()
    r = replay(RouteController(point, prior), p, b["prompt_words"].astype(float))
    quality = np.where(r.decision == 1, b["q_cloud"], b["q_local"]).mean()
    return {
        "auc": float(roc_auc(b["label"], p)),
        "ece": float(ece(p, b["label"])),
        "deployed_cloud_share": r.cloud_share,
        "deployed_quality": float(quality),
    }


class LoopServer:
    """The real app in front of the published-outcome stand-ins, shadow-labelling its traffic."""

    def __init__(self, serve_cfg, t: Traffic, start_artifact: Path, work: Path, sample: float):
        from localroute.routers import load_router
        from serve.config import AuthConfig, LocalModelConfig, RouterSpec
        from serve.feedback import FeedbackConfig

        self.t, self.work = t, work
        self.watched, self.feedback = work / "router", work / "feedback"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(start_artifact, self.watched)
        start = load_router(self.watched)
        self.cfg = dataclasses.replace(
            serve_cfg,
            host="127.0.0.1",
            access_log=False,
            router=RouterSpec(
                artifact=str(self.watched),
                stand_ins={start.info["local"]: t.local, start.info["cloud"]: t.cloud},
                watch_s=0.5,
            ),
            auth=AuthConfig(api_keys=[KEY], api_keys_env="LR_LOOP_UNSET"),
            cloud=dataclasses.replace(serve_cfg.cloud, model=t.cloud, api_key_env="LR_LOOP_UNSET"),
            local=LocalModelConfig(model="tiny", model_name=t.local, concurrency=16),
            feedback=FeedbackConfig(
                enabled=True, sample=sample, out=str(self.feedback), flush_rows=50,
                max_per_minute=100_000, budget_tokens=None, queue=1024,
            ),
        )  # fmt: skip
        self.sent = self.failed = 0
        self._cursor = 0
        self._lock = threading.Lock()

    def __enter__(self) -> LoopServer:
        from serve.app import start
        from serve.testing.echo import EchoServer
        from serve.testing.echo_local import EchoLocal

        self.cloud = EchoServer(answers=self.t.scripted("cloud")).start()
        cloud_cfg = dataclasses.replace(self.cfg.cloud, base_url=self.cloud.base_url)
        self.cfg = dataclasses.replace(self.cfg, cloud=cloud_cfg)
        local = EchoLocal.options(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.2})
        self.url = start(self.cfg, port=0, local=local.bind(answers=self.t.scripted("local")))
        return self

    def __exit__(self, *exc: Any) -> None:
        from serve.app import stop

        stop()
        self.cloud.stop()

    def _metric(self, name: str) -> float:
        import httpx2

        text = httpx2.get(self.url + "/metrics", timeout=10).text
        return sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(name))

    def send_until(self, labels: int, clients: int = 8) -> None:
        """Traffic from `clients` until `labels` shadow labels are written."""
        import httpx2

        texts, refs, order = self.t.ex["text"], self.t.refs, self.t.pool
        done = threading.Event()

        def client() -> None:
            with httpx2.Client(timeout=60) as c:
                while not done.is_set():
                    with self._lock:
                        i = int(order[self._cursor % len(order)])
                        self._cursor += 1
                    r = c.post(
                        self.url + "/v1/chat/completions",
                        headers={
                            **AUTH,
                            "x-localroute-reference": refs[i],
                            "x-localroute-grading": "mc_letter",
                        },
                        json={
                            "model": "localroute",
                            "messages": [{"role": "user", "content": str(texts[i])}],
                            "max_tokens": 4,
                        },
                    )
                    with self._lock:
                        self.sent += 1
                        self.failed += r.status_code != 200

        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        for th in threads:
            th.start()
        while self._metric("localroute_feedback_written") < labels:
            time.sleep(0.3)
        done.set()
        for th in threads:
            th.join(timeout=60)

    def serving(self) -> str | None:
        import httpx2

        r = httpx2.get(self.url + "/v1/models", headers=AUTH, timeout=10)
        return r.json()["data"][0]["fingerprint"]

    def retrain(self, run_cfg, data: Path, prior: str | None, router: str = "gbt") -> dict:
        """`train --data feedback:DIR[,PRIOR] --promote-into <served dir>`; waits for the swap
        when promoted. Returns the promotion verdict and the new router."""
        from localroute.routers import load_router
        from pipelines.routers.train import train_one

        out = self.work / "retrained"
        shutil.rmtree(out, ignore_errors=True)
        spec = f"feedback:{self.feedback}" + (f",{prior}" if prior else "")
        pair = f"{self.t.local},{self.t.cloud}"
        m = train_one(run_cfg, router, spec, pair, data, out, promote_into=self.watched)
        fresh = load_router(out)
        if m["promotion"]["promoted"]:
            deadline = time.monotonic() + 60
            while self.serving() != fresh.fingerprint:
                if time.monotonic() > deadline:
                    raise TimeoutError("the promoted router was not adopted within 60 s")
                time.sleep(0.2)
        return {**m["promotion"], "router": fresh, "labels": fresh.info["labels"]["feedback"]}
