"""The deployment's decision maker without Ray: one operating point, latency inputs of the
deployed models, live estimates that decay instead of locking a side out, one quantile rule,
a router flagged when its p carries no ranking, and the trained-for check of an artifact."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from localroute.config import bundled
from localroute.core.controller import RequestInputs, RouteController, replay
from localroute.core.live import EstimateSnapshot, LiveEstimates, QuantileTracker
from localroute.core.operating_point import (
    DeploymentLatency,
    TargetShare,
    resolve_operating_point,
    response_tokens,
)
from localroute.core.policy import theta_for_share
from localroute.errors import ConfigError

pytestmark = pytest.mark.timeout(60)

LINKS = str(bundled("links.yaml"))


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_the_deployment_latency_model_uses_the_deployed_caps_not_a_papers_means() -> None:
    dep = DeploymentLatency(LINKS, "paper-table1", "5g", local_max_tokens=32, cloud_max_tokens=256)
    prior = dep.prior()
    assert prior.local.mean_response_tokens == 32 and prior.cloud.mean_response_tokens == 256
    assert prior.local.response_provenance == "estimated"  # a cap: an upper bound
    # Table I's gamma_s 0.04 s/token over 32 tokens and a 10-word prompt: 1.68 s, not 50 s
    assert float(prior.t_local(10.0)) == pytest.approx(0.04 * (10 + 32))
    assert response_tokens(32.0, 8) == 8.0 and response_tokens(32.0, None) == 32.0
    ctl = RouteController(resolve_operating_point(None, alpha=0.1, theta=0.5), prior)
    short = ctl.decide(RequestInputs(0.5, 10, max_tokens=8)).decision
    assert short.t_local == pytest.approx(0.04 * (10 + 8))  # bounded by the request
    assert short.t_cloud < float(prior.t_cloud(10.0))


def test_measured_per_token_times_of_the_deployed_model(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = {
        "model": ["SmolLM2-135M-Instruct"] * 3,
        "hardware": ["cpu"] * 3,
        "tpot_s": [0.03, 0.03, 0.05],
        "ttft_s": [0.2, 0.2, 0.2],
        "tokens_in": [100, 100, 100],
        "tokens_out": [16, 16, 16],
        "provenance": ["measured"] * 3,
    }
    pq.write_table(pa.table(rows), tmp_path / "rows.parquet")
    prior = DeploymentLatency(LINKS, measured=str(tmp_path)).prior()
    assert prior.local.provenance == "measured"
    assert prior.local.decode == pytest.approx(0.03) and prior.local.prefill == pytest.approx(0.002)
    assert "SmolLM2" in prior.local.name


def test_one_precedence_for_the_operating_point(artifact: Path) -> None:
    from localroute.routers import load_router

    trained = load_router(artifact)
    p = resolve_operating_point(trained)
    assert (p.alpha, p.alpha_from) == (trained.alpha, "artifact")
    assert (p.theta, p.theta_from) == (trained.threshold, "artifact")
    p = resolve_operating_point(trained, alpha=0.2, theta=-1.0, workload_alpha=0.05)
    assert (p.alpha_from, p.theta_from, p.alpha, p.theta) == ("config", "config", 0.2, -1.0)
    p = resolve_operating_point(None, workload_alpha=0.05)
    assert (p.alpha, p.alpha_from, p.theta_from) == (0.05, "latency preset workload", "default")
    assert resolve_operating_point(None).alpha_from == "none (no fusion)"


def test_live_estimates_replace_the_prior_then_decay_back() -> None:
    prior = DeploymentLatency(LINKS, "paper-table1", "5g").prior()
    clock = Clock()
    est = LiveEstimates(
        0.5, min_transfer_bytes=100, min_samples=2, decay_half_life_s=60, clock=clock
    )
    assert est.snapshot(prior) == EstimateSnapshot()  # nothing measured: the prior
    est.observe_local(tokens_in=100, ttft_s=0.1, tokens_out=11, decode_s=2.0)
    assert est.snapshot(prior).local_decode_s is None  # one sample: below the floor
    est.observe_local(tokens_in=100, ttft_s=0.1, tokens_out=11, decode_s=2.0)
    snap = est.snapshot(prior)
    assert snap.local_decode_s == pytest.approx(0.2) and snap.local_prefill_s == pytest.approx(
        0.001
    )
    assert snap.local_response_tokens == pytest.approx(11.0)
    live = snap.apply(prior)
    assert live.local.decode == pytest.approx(0.2) and live.cloud == prior.cloud
    assert EstimateSnapshot.from_header(snap.to_header()) == snap  # what headers carry back
    clock.t += 60  # one half-life without a local answer: halfway back to the prior
    assert est.snapshot(prior).local_decode_s == pytest.approx(0.5 * (0.2 + prior.local.decode))
    clock.t += 6000
    assert est.snapshot(prior).local_decode_s == pytest.approx(prior.local.decode, rel=1e-6)


def test_a_side_that_stops_being_chosen_is_not_locked_out() -> None:
    """A slow spell measured on the local side pushes traffic to the cloud; with no local answer
    to correct it, the estimate decays back to the prior and the local side is chosen again."""
    prior = DeploymentLatency(LINKS, "paper-table1", "5g", cloud_max_tokens=64).prior()
    clock = Clock()
    est = LiveEstimates(1.0, min_samples=1, decay_half_life_s=30, clock=clock)
    ctl = RouteController(
        resolve_operating_point(None, alpha=0.1, theta=0.35), prior, estimates=est
    )
    ask = RequestInputs(0.3, 10)
    assert ctl.decide(ask).decision.side == "local"  # idle prior: local is worth it
    est.observe_local(tokens_in=10, ttft_s=0.1, tokens_out=33, decode_s=32 * 1.0)  # 1 s/token
    assert ctl.decide(ask).decision.side == "cloud"  # locked out, while the spell is fresh
    clock.t += 600  # twenty half-lives, no local answer since
    back = ctl.decide(ask)
    assert back.decision.side == "local"
    assert back.estimates.local_decode_s == pytest.approx(prior.local.decode, rel=1e-2)


def test_one_quantile_rule_for_training_and_the_tracker() -> None:
    from localroute.routers.threshold import threshold_for_cloud_share

    rng = np.random.default_rng(1)
    scores = rng.normal(size=157)
    for share in (0.0, 0.1, 0.3, 0.5, 1.0):
        theta = theta_for_share(scores, share)
        assert threshold_for_cloud_share(scores, share) == theta
        assert np.mean(scores > theta) <= share + 1e-12  # at most the share above it
        assert np.mean(scores > theta) > share - 1.0 / len(scores) - 1e-12
        t = QuantileTracker(share, None, window=len(scores), min_fill=1)
        for s in scores:
            t.observe(float(s))
        assert t.theta() == theta  # the tracker's window, the same rule
    assert math.isnan(theta_for_share([], 0.3))


def test_the_target_share_holds_on_a_replayed_shifted_stream() -> None:
    """Through the controller, with the default (unbounded) bounds: p~ here lives far outside
    [0, 1] (alpha 0.1 x a 20 s gap), where the old [0, 1] bounds pinned theta."""
    prior = DeploymentLatency(LINKS, "paper-table1", "5g").prior()
    point = resolve_operating_point(None, alpha=0.1, theta=0.5, target=TargetShare(0.3))
    rng = np.random.default_rng(2)
    p = np.concatenate([rng.beta(2, 8, 400), rng.beta(6, 3, 600)])  # a shift half-way
    lp = rng.integers(5, 400, p.size).astype(float)
    r = replay(RouteController(point, prior), p, lp)
    assert np.all(r.fused < 0)  # nothing near [0, 1]
    assert abs(r.decision[20:400].mean() - 0.3) <= 0.03
    assert abs(r.decision[600:].mean() - 0.3) <= 0.03
    assert r.theta[-1] < -0.5


def test_a_router_whose_ranking_does_not_beat_random_is_flagged() -> None:
    from localroute.routers import make_router
    from localroute.routers.calibration import flag_degenerate

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400).astype(float)
    router = make_router("random")
    why = flag_degenerate(router, rng.random(400), y, "validation split")
    assert why is not None and "does not beat random (0.5) with confidence" in why
    assert router.info["degenerate"] == why
    informative = np.clip(y * 0.3 + rng.random(400) * 0.7, 0, 1)
    assert flag_degenerate(router, informative, y, "validation split") is None
    assert "degenerate" not in router.info
    few = flag_degenerate(router, informative[:12], y[:12], "validation split")
    assert few is not None and "on 12 rows" in few  # too few rows to tell


def test_an_artifact_for_other_models_is_refused_unless_declared(artifact: Path, tmp_path) -> None:
    from serve.app import router_source
    from serve.config import RouterSpec, ServeConfig

    cfg = ServeConfig(router=RouterSpec(artifact=str(artifact)))  # tiny local, gpt-4o-mini cloud
    with pytest.raises(ConfigError) as err:
        router_source(cfg, tmp_path)
    msg = str(err.value)
    assert "mistralai/Mixtral-8x7B-Instruct-v0.1 (local)" in msg and "gpt-4o-mini (cloud)" in msg
    assert "tiny-qwen2-random (local)" in msg and "stand_ins" in msg
    declared = ServeConfig(
        router=RouterSpec(
            artifact=str(artifact),
            stand_ins={
                "mistralai/Mixtral-8x7B-Instruct-v0.1": "tiny-qwen2-random",
                "gpt-4-1106-preview": "gpt-4o-mini",
            },
        )
    )
    src = router_source(declared, tmp_path)
    assert src["pairing"]["stand_in"] is True
    assert src["pairing_line"] == (
        "router trained for mistralai/Mixtral-8x7B-Instruct-v0.1 vs gpt-4-1106-preview, "
        "serving tiny-qwen2-random vs gpt-4o-mini (declared stand-in)"
    )


def test_model_name_ids_resolve_and_do_not_repeat() -> None:
    """`/v1/models`' RouteLLM-style ids: each once, theta in [0, 1], each one resolving."""
    from localroute.routers import make_router
    from serve.decision import UNTRAINED, model_name_ids, resolve_model

    random = make_router("random")
    ids = model_name_ids(random, UNTRAINED)
    assert ids == ["router-random-0.5", "router-always-local-0.5", "router-always-cloud-0.5"]
    for i in ids:
        assert resolve_model(i, "random").theta == 0.5
