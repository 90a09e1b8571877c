"""A target cloud share that holds on shifted traffic (localroute.core.live.QuantileTracker,
steered by localroute.core.controller.RouteController).

Unit tests of the quantile tracker (pure Python), then the real Serve application on 127.0.0.1
with the official `openai` client: a configured theta of 0.6 that sends ~0% of a shifted
workload (random-router scores concentrated in [0.2, 0.5]) to the cloud, and a 30% target that
makes it 30% once the tracker's window has filled.
"""

from __future__ import annotations

import math
import re

import numpy as np
import openai
import pytest
from conftest import get_ok, stand_in_app, wait_until

from localroute.config import bundled
from localroute.core.live import QuantileTracker
from localroute.core.profiles import load_latency_model

pytestmark = pytest.mark.timeout(240)
LINKS = bundled("links.yaml")

KEY = "sk-share-" + "9a8b7c6d"
ONE = dict(min_replicas=1, max_replicas=1, num_cpus=0.05)
TARGET, CONFIG_THETA, WINDOW, MIN_FILL, N = 0.3, 0.6, 100, 20, 240


# --------------------------------------------------------------------------- the tracker alone


def test_tracker_holds_the_target_on_a_shifted_stream() -> None:
    rng = np.random.default_rng(0)
    t = QuantileTracker(TARGET, (0.0, 1.0), window=WINDOW, min_fill=MIN_FILL)
    assert t.theta() is None and t.cloud_share() is None  # not ready: the base theta stands
    sides = []
    for i, score in enumerate(np.concatenate([rng.uniform(0, 0.2, 300), rng.beta(8, 2, 600)])):
        theta = t.theta()
        cloud = theta is not None and score > theta
        t.observe(float(score), cloud)
        if i >= 300 + WINDOW:  # the window holds only the new traffic
            sides.append(cloud)
    assert t.fill == WINDOW and t.n_seen == 900
    assert abs(np.mean(sides) - TARGET) < 0.06
    assert abs(t.cloud_share() - TARGET) < 0.12
    assert 0.6 < t.theta() < 0.95  # moved up with the traffic


def test_tracker_quantile_bounds_and_edges() -> None:
    t = QuantileTracker(0.3, (0.0, 1.0), window=10, min_fill=5)
    for x in range(4):
        t.observe(x / 10)
    assert not t.ready and t.theta() is None
    for x in range(4, 10):
        t.observe(x / 10)
    assert t.ready and t.fill == 10
    assert t.theta() == pytest.approx(0.6)  # 3 of 10 scores (0.7, 0.8, 0.9) above it
    t.observe(1.0)  # the oldest (0.0) leaves the window
    assert t.fill == 10 and t.theta() == pytest.approx(0.7)
    t.observe(math.nan)  # skipped
    assert t.fill == 10 and t.n_seen == 11
    clipped = QuantileTracker(0.3, (0.2, 0.5), window=10, min_fill=1)
    for x in range(10):
        clipped.observe(x / 10)
    assert clipped.theta() == 0.5 and clipped.clipped  # the bounds win, and it says so
    everything = QuantileTracker(1.0, None, window=4, min_fill=1)
    everything.observe(0.4)
    assert everything.theta() < 0.4  # a 100% target: p~ > theta for every score
    nothing = QuantileTracker(0.0, None, window=4, min_fill=1)
    for x in (0.1, 0.9):
        nothing.observe(x)
    assert nothing.theta() == 0.9  # 0%: no score strictly above
    with pytest.raises(ValueError):
        QuantileTracker(1.5)
    with pytest.raises(ValueError):
        QuantileTracker(0.3, (0.8, 0.2))


def test_theta_sources_and_what_the_tracker_observes() -> None:
    """Which theta a request gets (config, model name, tracker) and that the tracker sees the
    load-free p~ of steered requests only, through the controller the server runs."""
    from localroute.core.controller import RequestInputs, RouteController
    from localroute.core.live import LocalLoad
    from localroute.core.operating_point import TargetShare, resolve_operating_point
    from serve.headers import controller_headers

    prior = load_latency_model(LINKS, "paper-table1", "gsm8k")
    target = TargetShare(0.5, None, window=4, min_samples=2)
    point = resolve_operating_point(None, alpha=0.1, theta=0.6, target=target)
    assert (point.alpha_from, point.theta_from) == ("config", "config")
    load = LocalLoad(slots=1)
    ctl = RouteController(point, prior, load=load)
    first = ctl.decide(RequestInputs(0.1, 10))
    assert (first.decision.theta, first.theta_source) == (0.6, "config")
    named = ctl.decide(RequestInputs(0.9, 10), theta=0.2)  # RouteLLM's name: p alone
    assert named.theta_source == "model" and named.decision.alpha == 0.0
    assert named.decision.side == "cloud" and "not applied" in named.decision.reason
    ctl.decide(RequestInputs(0.9, 10), steer=False)  # another router: not observed
    assert ctl.tracker.fill == 1
    ctl.decide(RequestInputs(0.3, 10))
    theta, src = ctl.theta()
    assert src == "tracker" and theta == pytest.approx(first.decision.fused_load_free)
    # A busy local queue: p~ carries the wait, the tracker gets p~ without it.
    load.started()
    busy = ctl.decide(RequestInputs(0.5, 10))
    assert busy.decision.local_wait_s > 0
    assert busy.decision.fused == pytest.approx(
        busy.decision.fused_load_free + 0.1 * busy.decision.local_wait_s
    )
    assert busy.decision.fused_load_free in ctl.tracker._sorted
    h = controller_headers(busy, ctl.tracker)
    assert h["x-localroute-theta-source"] == "tracker"
    assert h["x-localroute-tracker-fill"] == "3/4"
    assert h["x-localroute-target-cloud-share"] == "0.5"


def test_config_fields_validate(tmp_path) -> None:
    from localroute.errors import ConfigError
    from serve.app import load_serve_section

    cfg = tmp_path / "c.yaml"
    cfg.write_text("serve:\n  target_cloud_share: 0.3\n  theta_bounds: [0.1, 0.9]\n")
    s = load_serve_section(cfg)
    assert s.target_cloud_share == 0.3 and s.theta_bounds == [0.1, 0.9]
    for text, field in [
        ("serve:\n  target_cloud_share: 1.5\n", "target_cloud_share"),
        ("serve:\n  theta_bounds: [0.9, 0.1]\n", "theta_bounds"),
        ("serve:\n  theta_bounds: [0.1]\n", "theta_bounds"),
        ("serve:\n  target_window: 5\n  target_min_samples: 10\n", "target_window"),
    ]:
        cfg.write_text(text)
        with pytest.raises(ConfigError, match=field):
            load_serve_section(cfg)


# --------------------------------------------------------------------------- served, end to end


def _workload(n: int) -> list[str]:
    """Short questions whose random-router p lies in [0.2, 0.5]: traffic unlike the source
    theta 0.6 was chosen on (it sends none of it to the cloud)."""
    from localroute.routers import make_router

    router = make_router("random")
    texts = [f"Question {i}: what is {i} plus {2 * i}?" for i in range(12 * n)]
    p = router.score({"text": np.array(texts, dtype=object)})
    picked = [t for t, s in zip(texts, p, strict=True) if 0.2 <= s <= 0.5][:n]
    assert len(picked) == n
    return picked


@pytest.fixture(scope="module")
def served(ray_cluster):
    from serve.config import DeploymentScaling, LocalModelConfig
    from serve.testing.echo_local import EchoLocal

    local = EchoLocal.options(max_ongoing_requests=32, ray_actor_options={"num_cpus": 0.05})
    with stand_in_app(
        "share",
        KEY,
        local.bind(),
        theta=CONFIG_THETA,
        alpha=0.0,  # p~ = p: the workload's scores as they are
        target_cloud_share=TARGET,
        theta_bounds=[0.05, 0.95],
        target_window=WINDOW,
        target_min_samples=MIN_FILL,
        local=LocalModelConfig(
            concurrency=8, deployment=DeploymentScaling(max_ongoing_requests=32, **ONE)
        ),
        ingress=DeploymentScaling(max_ongoing_requests=64, **ONE),
    ) as url:
        yield url


def test_a_target_share_holds_on_a_shifted_workload(served) -> None:
    import httpx2

    wait_until(lambda: get_ok(served + "/readyz"), "ready", 120)
    texts = _workload(N)
    c = openai.OpenAI(base_url=served + "/v1", api_key=KEY, max_retries=0, timeout=30)
    rows = []
    for text in texts:  # sequential: one ingress replica sees them in this order
        raw = c.chat.completions.with_raw_response.create(
            model="localroute", messages=[{"role": "user", "content": text}], max_tokens=4
        )
        h = raw.headers
        rows.append(
            (
                h["x-localroute-theta-source"],
                float(h["x-localroute-theta"]),
                float(h["x-localroute-p-fused"]),
                h["x-localroute-chosen"],
            )
        )
        assert raw.parse().choices[0].message.content
    sources = [r[0] for r in rows]
    # Before the window holds MIN_FILL scores, the configured theta: nothing goes to the cloud.
    assert sources[:MIN_FILL] == ["config"] * MIN_FILL
    assert all(r[3] == "local" for r in rows[:MIN_FILL])
    assert set(sources[MIN_FILL:]) == {"tracker"}
    for _, theta, fused, side in rows:
        assert side == ("cloud" if fused > theta else "local")
        assert 0.05 <= theta <= 0.95
    second = rows[N // 2 :]
    share = sum(r[3] == "cloud" for r in second) / len(second)
    print(f"cloud share over the second half: {share:.3f} (target {TARGET})")
    assert abs(share - TARGET) <= 0.10, share
    # The configured theta alone would have sent none of this traffic to the cloud.
    assert all(r[2] <= CONFIG_THETA for r in rows)
    # The same stream replayed through the tracker alone decides the same way.
    t = QuantileTracker(TARGET, (0.05, 0.95), WINDOW, MIN_FILL)
    for _, theta, fused, side in rows:
        expect = t.theta()
        assert (CONFIG_THETA if expect is None else expect) == pytest.approx(theta, abs=1e-5), (
            rows.index((_, theta, fused, side)),
            t.state(),
        )
        t.observe(fused, side == "cloud")

    # A theta in the model name still wins, and is reported as such.
    raw = c.chat.completions.with_raw_response.create(
        model="router-random-0.6", messages=[{"role": "user", "content": texts[0]}], max_tokens=4
    )
    assert raw.headers["x-localroute-theta-source"] == "model"
    assert float(raw.headers["x-localroute-theta"]) == 0.6
    assert raw.headers["x-localroute-decision"] == "local"
    assert raw.headers["x-localroute-tracker-fill"] == f"{WINDOW}/{WINDOW}"

    # The tracker's state in /metrics: theta, fill, observed share (one series per replica).
    text = httpx2.get(served + "/metrics", timeout=10).text

    def gauge(name: str) -> float:
        (value,) = re.findall(rf"^localroute_{name}\{{replica=\"[^\"]+\"\}} (\S+)$", text, re.M)
        return float(value)

    assert gauge("tracker_fill") == WINDOW
    assert gauge("tracker_target") == pytest.approx(TARGET)
    assert gauge("tracker_theta") == pytest.approx(t.theta(), abs=1e-6)
    assert abs(gauge("tracker_cloud_share") - TARGET) <= 0.10
