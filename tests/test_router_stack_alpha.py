"""The stacked router's artifact, alpha chosen on val and stored beside theta, and the
leave-one-source-out evaluation on the shipped build."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from test_router_robustness import ODD, synthetic

from localroute.routers import load_router, make_router
from localroute.routers.alpha import ALPHA_GRID, AlphaConfig, alpha_sweep, choose_alpha, side_times
from localroute.routers.config import RoutersConfig

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def split():
    train, val, test = synthetic(200, 0), synthetic(80, 1), synthetic(60, 2)
    for b, words in ((val, 40), (test, 40)):  # a spread of prompt lengths: a latency gap spread
        b["prompt_words"] = np.arange(len(b["text"])) % words + 5
    return train, val, test


def test_stack_round_trips_with_its_members(split, tmp_path):
    train, val, test = split
    members = [
        {"name": "gbt", "embedder": "static", "max_iter": 20, "min_samples_leaf": 10},
        {"name": "knn", "embedder": "static", "k": 10},
    ]
    router = make_router("stack", seed=3, members=members)
    router.fit(train, val)
    p = router.score(test)
    assert np.all(np.isfinite(p)) and p.shape == (60,)
    router.save(tmp_path / "s")
    state = json.loads((tmp_path / "s" / "stack.json").read_text())
    assert [m["router"] for m in state["members"]] == ["gbt", "knn"]
    again = load_router(tmp_path / "s")
    np.testing.assert_array_equal(again.score(test), p)
    odd = {"text": np.array(ODD, dtype=object)}
    assert np.all(np.isfinite(again.score(odd)))
    # a member swapped for another artifact is refused
    other = make_router("knn", embedder="static", k=5)
    other.fit(train, val)
    other.save(tmp_path / "s" / "members" / "1-knn")
    with pytest.raises(Exception, match="not the one the stack was fitted with|does not match"):
        load_router(tmp_path / "s")


def test_alpha_is_chosen_on_val_stored_and_reloaded(split, tmp_path):
    train, val, test = split
    router = make_router("gbt", embedder="static", max_iter=20, min_samples_leaf=10)
    router.info["source"] = "routellm_gsm8k"
    router.fit(train, val)
    info = choose_alpha(router, val, AlphaConfig(quality_target=0.5))
    assert router.alpha in ALPHA_GRID and info["alpha"] == router.alpha
    assert [row["alpha"] for row in info["sweep"]] == sorted(ALPHA_GRID)
    # the chosen (alpha, theta) reaches the quality target on val, through the policy module
    from localroute.core.policy import decide, fused_score

    t_local, t_cloud = side_times(val, "routellm_gsm8k", AlphaConfig())
    d = decide(fused_score(router.score(val), router.alpha, t_local, t_cloud), router.threshold)
    quality = np.where(d == 1, val["q_cloud"], val["q_local"]).mean()
    assert quality >= info["quality_target"] - 1e-9
    best = min(r["latency_s"] for r in info["sweep"] if "latency_s" in r)
    assert info["sweep"][sorted(ALPHA_GRID).index(router.alpha)]["latency_s"] <= best + 1e-3
    router.save(tmp_path / "g")
    spec = json.loads((tmp_path / "g" / "router.json").read_text())
    assert spec["alpha"] == router.alpha and spec["threshold"] == router.threshold
    again = load_router(tmp_path / "g")
    assert again.alpha == router.alpha and again.threshold == router.threshold
    # an artifact written before alpha existed reads as alpha 0
    del spec["alpha"]
    assert make_router("gbt").alpha == 0.0


def test_alpha_sweep_prefers_the_smaller_alpha_on_ties():
    n = 50
    p = np.linspace(0, 1, n)
    ql, qc = (p < 0.5).astype(float), np.ones(n)
    t = np.zeros(n)
    choice = alpha_sweep(p, ql, qc, t, t + 1.0, 0.5)  # a constant gap: alpha changes nothing
    assert choice.alpha == 0.0


@pytest.fixture(scope="module")
def shipped() -> Path:
    from localroute.data.paths import SHIPPED_DIR

    return SHIPPED_DIR


def test_holdout_source_trains_on_the_others(shipped, tmp_path):
    from pipelines.routers import evaluate_routers, splits_for

    rcfg = RoutersConfig(
        params={"gbt": {"embedder": "none", "max_iter": 15}}, alpha=AlphaConfig(grid=[0.0, 0.05])
    )
    s = splits_for(shipped, "routellm_gsm8k,llmrouter", "auto", rcfg, 0, "routellm_gsm8k")
    assert s.train_sources == ["llmrouter"] and set(s.test["source"]) == {"routellm_gsm8k"}
    assert not {str(t) for t in s.train["text"]} & {str(t) for t in s.test["text"]}
    # each training source's labels weigh half and half: the source itself predicts nothing
    w, y = s.train["weight"], s.train["label"]
    assert np.average(y, weights=w) == pytest.approx(0.5) and w.mean() == pytest.approx(1.0)
    cfg = SimpleNamespace(routers=rcfg, seed=0)
    result = evaluate_routers(
        cfg,
        "routellm_gsm8k,llmrouter",
        "auto",
        ["gbt"],
        shipped,
        tmp_path,
        holdout_source="routellm_gsm8k",
    )
    assert result["holdout_source"] == "routellm_gsm8k" and result["n_test"] == len(s.test["text"])
    for name in ("gbt", "task-prior", "oracle", "random"):
        m = result["routers"][name]
        assert {"auc", "apgr", "cpt50", "ece", "cloud50_fusion", "cloud80_fusion"} <= set(m)
    assert len(result["random_20_seeds"]["auc"]) == 2
    summary = (tmp_path / "summary.md").read_text()
    assert "Leave one source out" in summary and "random, 20 seeds" in summary
    # the reliability diagram: per bin of calibrated p, the observed rate, shares summing to 1
    bins = result["reliability"]["gbt"]
    assert bins and sum(b["share"] for b in bins) == pytest.approx(1.0)
    assert all(0 <= b["p"] <= 1 and 0 <= b["observed"] <= 1 for b in bins)
    assert sum(b["share"] * abs(b["p"] - b["observed"]) for b in bins) == pytest.approx(
        result["routers"]["gbt"]["ece"]
    )
    assert (tmp_path / "reliability.png").stat().st_size > 5_000


def test_evaluate_resolves_alpha_by_the_one_precedence(small_build, artifact):
    """Every router of a pair (baselines too) gets one alpha: the pair's configured alpha,
    else the artifact's (chosen on val), else Table I's; on the real evaluation context."""
    from pipelines.evaluate.config import EvaluateConfig, PairSpec
    from pipelines.evaluate.context import load_artifact, make_context
    from pipelines.evaluate.experiments import resolve_alpha

    art = load_artifact(artifact)
    art.router.alpha = 0.02  # as an artifact whose val split chose 0.02 would say
    ev = EvaluateConfig()
    ctx = make_context(ev, 7, small_build, None, lambda *_: None, artifact=art)
    unset = PairSpec("p", "routellm_gsm8k", "a", "b")
    assert resolve_alpha(ctx, unset) == (0.02, "router artifact (chosen on its validation split)")
    explicit = PairSpec("p", "routellm_gsm8k", "a", "b", 0.1)
    assert resolve_alpha(ctx, explicit) == (0.1, "config (the pair's alpha)")
    bare = make_context(ev, 7, small_build, None, lambda *_: None, artifact=None)
    assert resolve_alpha(bare, unset) == (0.05, "seed 001 Table I")  # GSM8K's Table I alpha
    assert resolve_alpha(bare, PairSpec("p", "routellm_mmlu", "a", "b")) == (
        0.03,
        "seed 001 Table I",
    )


def test_gbt_task_feature_round_trips_and_serves_without_a_task(split, tmp_path):
    train, val, test = split
    router = make_router(
        "gbt", embedder="static", max_iter=20, min_samples_leaf=10, task_feature=True
    )
    router.fit(train, val)
    p = router.score(test)
    router.save(tmp_path / "t")
    again = load_router(tmp_path / "t")
    np.testing.assert_array_equal(again.score(test), p)
    served = {k: v for k, v in test.items() if k != "task"}  # a served request names no task
    assert np.all(np.isfinite(again.score(served)))
    assert again.task_table.keys() == {"math", "chat"}
