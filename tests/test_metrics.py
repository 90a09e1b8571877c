"""Hand-computed checks for localroute.metrics (expected numbers derived in comments)."""

import math

import numpy as np
import pytest

from localroute.metrics import (
    aiq,
    apgr,
    cpt,
    cpt_from_curve,
    pareto_front,
    pgr,
    pgr_curve,
    precision_recall_f1,
    quality_vs_cloud_share,
    roc_auc,
    router_report,
)

pytestmark = pytest.mark.timeout(60)


def _oracle_data(n: int = 10, n_needed: int = 2):
    """First n_needed queries: cloud right, local wrong; rest: both right. Oracle p."""
    q_local = np.array([0.0] * n_needed + [1.0] * (n - n_needed))
    q_cloud = np.ones(n)
    p = np.array([1.0] * n_needed + [0.0] * (n - n_needed))
    return p, q_local, q_cloud


# --------------------------------------------------------------------------- F1


def test_precision_recall_f1_asymmetric():
    # tp=1 (idx0), fp=2 (idx1,2), fn=1 (idx3): P=1/3, R=1/2, F1=2*(1/6)/(5/6)=0.4
    r = precision_recall_f1([1, 1, 1, 0], [1, 0, 0, 1])
    assert r["precision"] == pytest.approx(1 / 3)
    assert r["recall"] == pytest.approx(0.5)
    assert r["f1"] == pytest.approx(0.4)


def test_precision_recall_f1_symmetric_bool():
    # tp=2, fp=1, fn=1 -> all 2/3
    r = precision_recall_f1(
        np.array([True, True, False, False, True]), np.array([True, False, True, False, True])
    )
    assert r == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})


def test_precision_recall_f1_zero_division_returns_zero():
    assert precision_recall_f1([0, 0, 0], [1, 0, 1]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    # no true positives in data: recall 0, precision 0 (tp=0 of 1 predicted), f1 0
    assert precision_recall_f1([1, 0], [0, 0]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_precision_recall_f1_rejects_non_binary():
    with pytest.raises(ValueError, match="pred_local_suffices"):
        precision_recall_f1([0.5, 1], [1, 0])


# --------------------------------------------------------------------------- AUC


def test_roc_auc_hand_computed_with_ties():
    # pos scores {0.4, 0.8}, neg {0.1, 0.4}. Pairs: (0.4>0.1)=1, (0.4=0.4)=0.5,
    # (0.8>0.1)=1, (0.8>0.4)=1 -> 3.5/4 = 0.875. Ranks: 1, 2.5, 2.5, 4; U = 6.5 - 3 = 3.5.
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.4, 0.8]) == 0.875


def test_roc_auc_perfect_inverse_constant():
    assert roc_auc([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.7]) == 1.0
    assert roc_auc([0, 1, 0, 1], [0.9, 0.1, 0.7, 0.2]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3]) == 0.5


def test_roc_auc_single_class_is_nan():
    assert math.isnan(roc_auc([1, 1, 1], [0.1, 0.5, 0.9]))
    assert math.isnan(roc_auc([0, 0], [0.1, 0.5]))


def test_roc_auc_input_validation_names_argument():
    with pytest.raises(ValueError, match="y=3, score=2"):
        roc_auc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="score must not be empty"):
        roc_auc([0], [])
    with pytest.raises(ValueError, match="y must not be empty"):
        roc_auc([], [])


# --------------------------------------------------------------------------- quality curve


def test_quality_curve_hand_computed():
    # order by p desc: idx2 (0.9), idx0 (0.5), idx1 (0.1)
    p = [0.5, 0.1, 0.9]
    q_local = [1.0, 1.0, 0.0]
    q_cloud = [1.0, 0.0, 1.0]
    share, quality = quality_vs_cloud_share(p, q_local, q_cloud)
    np.testing.assert_allclose(share, [0, 1 / 3, 2 / 3, 1])
    # k=0: (1+1+0)/3; k=1: idx2->cloud (1+1+1)/3; k=2: same 3/3; k=3: (1+0+1)/3
    np.testing.assert_allclose(quality, [2 / 3, 1.0, 1.0, 2 / 3])


def test_quality_curve_constant_p_is_straight_line():
    rng = np.random.default_rng(0)
    q_local = rng.uniform(size=50)
    q_cloud = rng.uniform(size=50)
    share, quality = quality_vs_cloud_share(np.full(50, 0.3), q_local, q_cloud)
    expected = q_local.mean() + share * (q_cloud.mean() - q_local.mean())
    np.testing.assert_allclose(quality, expected, atol=1e-12)


def test_quality_curve_tie_group_interpolates_and_is_order_invariant():
    # p: [0.9, 0.5, 0.5]; gains (cloud - local): idx0 +0, idx1 +1, idx2 -1 (n=3).
    p = np.array([0.9, 0.5, 0.5])
    q_local = np.array([0.5, 0.0, 1.0])
    q_cloud = np.array([0.5, 1.0, 0.0])
    share, quality = quality_vs_cloud_share(p, q_local, q_cloud)
    # base 1.5/3 = 0.5; k=1 -> 0.5; tie group {1,2} total gain 0 -> k=2 midpoint 0.5; k=3 0.5
    np.testing.assert_allclose(quality, [0.5, 0.5, 0.5, 0.5])
    perm = [2, 1, 0]
    _, q2 = quality_vs_cloud_share(p[perm], q_local[perm], q_cloud[perm])
    np.testing.assert_array_equal(quality, q2)


def test_quality_curve_resampled_n_points():
    p, ql, qc = _oracle_data(10, 2)
    share, quality = quality_vs_cloud_share(p, ql, qc, n_points=6)
    np.testing.assert_allclose(share, [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(quality, [0.8, 1.0, 1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="n_points"):
        quality_vs_cloud_share(p, ql, qc, n_points=1)


def test_quality_curve_validation():
    with pytest.raises(ValueError, match="q_cloud=2"):
        quality_vs_cloud_share([0.1, 0.2, 0.3], [1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="p must not be empty"):
        quality_vs_cloud_share([], [], [])
    with pytest.raises(ValueError, match="q_local must contain only finite"):
        quality_vs_cloud_share([0.1], [np.nan], [1.0])


# --------------------------------------------------------------------------- RouteLLM metrics


def test_pgr_scalar_and_no_gap():
    assert pgr(0.75, 0.5, 1.0) == 0.5
    assert math.isnan(pgr(0.75, 0.6, 0.6))


def test_oracle_apgr_matches_analytic_value():
    # Oracle with fraction a=0.2 needing cloud: PGR rises 0->1 on [0, a], then stays 1.
    # APGR = a/2 + (1 - a) = 0.9 exactly.
    p, ql, qc = _oracle_data(10, 2)
    assert apgr(p, ql, qc) == pytest.approx(0.9, abs=1e-12)
    assert apgr(p, ql, qc, n_points=11) == pytest.approx(0.9, abs=1e-12)
    # CPT(50%) = a/2 = 0.1, CPT(80%) = 0.8a = 0.16
    assert cpt(p, ql, qc, 0.5) == pytest.approx(0.1)
    assert cpt(p, ql, qc, 0.8) == pytest.approx(0.16)


def test_oracle_apgr_large_random_sample():
    rng = np.random.default_rng(1)
    n = 1000
    needed = rng.uniform(size=n) < 0.3
    ql = np.where(needed, 0.0, 1.0)
    qc = np.ones(n)
    a = needed.mean()
    assert apgr(needed.astype(float), ql, qc) == pytest.approx(1 - a / 2, abs=1e-12)


def test_random_and_constant_router_apgr_is_half():
    rng = np.random.default_rng(2)
    ql = rng.uniform(size=200)
    qc = ql + rng.uniform(0, 0.5, size=200)
    assert apgr(np.full(200, 0.5), ql, qc) == pytest.approx(0.5, abs=1e-12)
    # Constant router on the linear curve: CPT(x) = x.
    assert cpt(np.zeros(200), ql, qc, 0.8) == pytest.approx(0.8, abs=1e-12)


def test_anti_oracle_apgr():
    # Routing the wrong queries first: PGR is 0 on [0, 1-a], then rises to 1 -> APGR = a/2.
    p, ql, qc = _oracle_data(10, 2)
    assert apgr(1 - p, ql, qc) == pytest.approx(0.1, abs=1e-12)


def test_apgr_and_cpt_nan_when_no_gap():
    q = np.array([1.0, 0.0, 1.0])
    assert math.isnan(apgr([0.1, 0.2, 0.3], q, q))
    assert math.isnan(cpt([0.1, 0.2, 0.3], q, q, 0.5))
    share, values = pgr_curve([0.1, 0.2, 0.3], q, q)
    assert np.isnan(values).all()


def test_cpt_from_hand_built_curve():
    share = [0.0, 0.25, 0.5, 0.75, 1.0]
    values = [0.0, 0.3, 0.6, 0.9, 1.0]
    # 0.5 lies between (0.25, 0.3) and (0.5, 0.6): 0.25 + (0.2/0.3)*0.25 = 5/12
    assert cpt_from_curve(share, values, 0.5) == pytest.approx(5 / 12)
    # 0.8 between (0.5, 0.6) and (0.75, 0.9): 0.5 + (0.2/0.3)*0.25 = 2/3
    assert cpt_from_curve(share, values, 0.8) == pytest.approx(2 / 3)
    assert cpt_from_curve(share, values, 0.3) == 0.25  # exact hit on a point
    assert cpt_from_curve(share, values, 0.0) == 0.0


def test_cpt_from_curve_first_crossing_and_never_reached():
    # Non-monotone curve: first crossing of 0.5 is between x=0 (0.0) and x=0.2 (0.6).
    assert cpt_from_curve([0.0, 0.2, 0.6, 1.0], [0.0, 0.6, 0.4, 1.0], 0.5) == pytest.approx(
        0.2 * 0.5 / 0.6
    )
    assert math.isnan(cpt_from_curve([0.0, 1.0], [0.0, 0.7], 0.8))


def test_cpt_from_curve_validation():
    with pytest.raises(ValueError, match="target"):
        cpt_from_curve([0.0, 1.0], [0.0, 1.0], 50)
    with pytest.raises(ValueError, match="cloud_share must be sorted"):
        cpt_from_curve([0.0, 1.0, 0.5], [0.0, 1.0, 0.5], 0.5)
    with pytest.raises(ValueError, match="pgr_values=1"):
        cpt_from_curve([0.0, 1.0], [0.0], 0.5)


# --------------------------------------------------------------------------- Pareto / AIQ


def test_pareto_front_tiny_set():
    costs = [1.0, 2.0, 3.0, 2.0, 0.5]
    quals = [0.5, 0.7, 0.6, 0.4, 0.3]
    # idx3 (2, .4) and idx2 (3, .6) are dominated by idx1 (2, .7)
    np.testing.assert_array_equal(pareto_front(costs, quals), [4, 0, 1])


def test_pareto_front_equal_cost_and_duplicates():
    # idx0/idx2 are exact duplicates (kept both); idx1 same cost lower quality (dominated);
    # idx3 same quality higher cost (dominated).
    costs = [1.0, 1.0, 1.0, 2.0, 3.0]
    quals = [0.5, 0.4, 0.5, 0.5, 0.9]
    np.testing.assert_array_equal(pareto_front(costs, quals), [0, 2, 4])


def test_pareto_front_validation():
    with pytest.raises(ValueError, match="costs=2, qualities=1"):
        pareto_front([1.0, 2.0], [0.5])
    with pytest.raises(ValueError, match="costs must not be empty"):
        pareto_front([], [])


def test_aiq_known_convex_set():
    # Hull: (0,.5)->(.5,.9)->(1,1). (.25,.6) lies below chord (value .7); (.5,.6) dominated.
    # Area = .5*(.5+.9)/2 + .5*(.9+1)/2 = .35 + .475 = .825
    costs = [0.0, 0.25, 0.5, 0.5, 1.0]
    quals = [0.5, 0.6, 0.9, 0.6, 1.0]
    assert aiq(costs, quals) == pytest.approx(0.825)


def test_aiq_convexifies_and_is_non_decreasing():
    # Non-concave middle point is lifted onto the chord: area of line (0,0)-(1,1) = 0.5.
    assert aiq([0.0, 0.5, 1.0], [0.0, 0.2, 1.0]) == pytest.approx(0.5)
    # Costs 0..2 normalise to 0..1; quality drops after cost 1 -> held flat at 1.
    # Area = .5*1/2 + .5*1 = 0.75
    assert aiq([0.0, 1.0, 2.0], [0.0, 1.0, 0.5]) == pytest.approx(0.75)
    # Normalisation: scaling/shifting costs does not change AIQ.
    assert aiq([10.0, 20.0, 30.0], [0.0, 1.0, 0.5]) == pytest.approx(0.75)


def test_aiq_degenerate_cost_range():
    assert aiq([1.0, 1.0], [0.3, 0.6]) == 0.6


def test_aiq_of_router_curves():
    p, ql, qc = _oracle_data(10, 2)
    # Oracle quality curve: 0.8 -> 1.0 on [0, .2], then 1.0: area = .2*.9 + .8 = 0.98
    assert aiq(*quality_vs_cloud_share(p, ql, qc)) == pytest.approx(0.98)
    # Anti-oracle: curve is convex-below, hull is the chord .8 -> 1.0: area 0.9
    assert aiq(*quality_vs_cloud_share(1 - p, ql, qc)) == pytest.approx(0.9)


# --------------------------------------------------------------------------- report


def test_router_report_hand_computed():
    # 4 queries; local suffices (q_local >= q_cloud) for idx0, idx1.
    p = np.array([0.2, 0.6, 0.7, 0.4])
    q_local = np.array([1.0, 1.0, 0.0, 0.0])
    q_cloud = np.array([1.0, 0.0, 1.0, 1.0])
    r = router_report(p, q_local, q_cloud)
    assert set(r) == {"auc", "f1", "apgr", "cpt50", "cpt80", "aiq", "n"}
    assert r["n"] == 4
    # AUC: pos (cloud needed) {0.7, 0.4} vs neg {0.2, 0.6}: 0.7>0.2, 0.7>0.6, 0.4>0.2,
    # 0.4<0.6 -> 3/4
    assert r["auc"] == pytest.approx(0.75)
    # pred local = p < .5 -> idx0, idx3; true local idx0, idx1: tp=1, P=R=F1=0.5
    assert r["f1"] == pytest.approx(0.5)
    # order idx2, idx1, idx3, idx0; gains +1, -1, +1, 0; q_weak=.5, q_strong=.75
    # quality: .5, .75, .5, .75, .75 -> PGR 0, 1, 0, 1, 1 at shares 0,.25,.5,.75,1
    # APGR = .25*(.5 + .5 + .5 + 1) = 0.625; CPT50 = .125, CPT80 = .2
    assert r["apgr"] == pytest.approx(0.625)
    assert r["cpt50"] == pytest.approx(0.125)
    assert r["cpt80"] == pytest.approx(0.2)
    # AIQ: hull (0,.5)->(.25,.75) then flat: .25*.625 + .75*.75 = 0.71875
    assert r["aiq"] == pytest.approx(0.71875)


def test_router_report_bar_rule_and_threshold():
    p = np.array([0.2, 0.6, 0.7, 0.4])
    q_local = np.array([0.9, 0.6, 0.2, 0.8])
    q_cloud = np.ones(4)
    # bar=.7: local suffices idx0, idx3. threshold .5 predicts idx0, idx3 -> F1 1, AUC 1.
    r = router_report(p, q_local, q_cloud, suffices_rule="bar", bar=0.7)
    assert r["f1"] == 1.0
    assert r["auc"] == 1.0
    # threshold .3 predicts only idx0: P=1, R=.5 -> F1 = 2/3
    r = router_report(p, q_local, q_cloud, suffices_rule="bar", bar=0.7, threshold=0.3)
    assert r["f1"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="bar"):
        router_report(p, q_local, q_cloud, suffices_rule="bar")
    with pytest.raises(ValueError, match="suffices_rule"):
        router_report(p, q_local, q_cloud, suffices_rule="gt")  # type: ignore[arg-type]


def test_router_report_validation():
    with pytest.raises(ValueError, match="q_local=3"):
        router_report([0.1, 0.2], [1.0, 0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="p must not be empty"):
        router_report([], [], [])
