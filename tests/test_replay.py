"""The vectorised sweep (localroute.replay) against brute-force eqs. 11-12, and its monotonicity."""

from __future__ import annotations

import numpy as np
import pytest

from localroute.core.accounting import SideOutcome, totals
from localroute.core.policy import decide, fused_score
from localroute.core.sides import LOCAL
from localroute.core.sweep import at_target, cut_thresholds, sweep, sweep_alpha

pytestmark = pytest.mark.timeout(60)


def _trace(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    p[:7] = 0.25  # ties
    gap = rng.normal(2.0, 3.0, n)
    q_l = (rng.random(n) < 0.6).astype(float)
    q_c = (rng.random(n) < 0.8).astype(float)
    lat_l, lat_c = rng.uniform(1, 5, n), rng.uniform(2, 8, n)
    return p, gap, {"quality": (q_l, q_c), "latency_s": (lat_l, lat_c)}


def _brute(p, gap, q, alpha, theta):
    d = decide(fused_score(p, alpha, 0.0, gap), theta)
    return {k: float(np.mean(np.where(d == LOCAL, loc, cld))) for k, (loc, cld) in q.items()}, d


def test_sweep_matches_brute_force_eq11_eq12() -> None:
    p, gap, q = _trace()
    alphas = [0.0, 0.02, 0.1]
    thetas = np.array([-np.inf, -0.5, 0.0, 0.25, 0.5, 0.9, 2.0, np.inf])
    curves = sweep(p, gap, q, alphas, thetas)
    for c in curves:
        for i, th in enumerate(thetas):
            want, d = _brute(p, gap, q, c.alpha, th)
            assert c.n_local[i] == int(np.sum(d == LOCAL))
            for k in q:
                assert c.means[k][i] == pytest.approx(want[k], abs=1e-12)


def test_every_reachable_threshold_and_ties() -> None:
    p, gap, q = _trace(100, seed=3)
    c = sweep_alpha(p, gap, q, 0.0)  # thetas = every distinct fused score
    assert c.theta[0] == -np.inf and c.n_local[0] == 0 and c.n_local[-1] == p.size
    # the 7 tied scores move together: no operating point splits them
    assert np.all(np.diff(c.n_local) >= 1)
    tie = np.flatnonzero(c.theta == 0.25)[0]
    assert c.n_local[tie] - c.n_local[tie - 1] == 7
    assert len(cut_thresholds(p)) == len(np.unique(p)) + 1


def test_sweep_monotone_in_theta_and_alpha() -> None:
    p, gap, q = _trace(500, seed=1)
    gap = np.abs(gap) + 0.1  # cloud slower everywhere: a larger alpha pulls queries local
    thetas = np.linspace(-1, 1.5, 40)
    curves = sweep(p, gap, q, np.linspace(0, 0.5, 6), thetas)
    for c in curves:
        assert np.all(np.diff(c.cloud_share) <= 0)  # higher theta: never more cloud
    shares = np.stack([c.cloud_share for c in curves])
    assert np.all(np.diff(shares, axis=0) <= 0)  # higher alpha: never more cloud


def test_nan_fused_goes_to_cloud_and_nan_quantity_poisons() -> None:
    p = np.array([0.1, np.nan, 0.3])
    q = {"quality": (np.array([1.0, 1.0, 1.0]), np.array([0.0, 0.0, 0.0]))}
    c = sweep_alpha(p, 0.0, q, 0.0, [np.inf, np.nan])
    assert c.n_local.tolist() == [2, 0]
    assert c.means["quality"][0] == pytest.approx(2 / 3)
    e = {"energy_j": (np.array([1.0, np.nan, 1.0]), np.array([2.0, 2.0, 2.0]))}
    c = sweep_alpha(np.array([0.1, 0.2, 0.3]), 0.0, e, 0.0, [0.15, 0.25])
    assert c.means["energy_j"][0] == pytest.approx(5 / 3)
    assert np.isnan(c.means["energy_j"][1])  # a query with unknown energy is now counted


def test_sweep_agrees_with_accounting_totals() -> None:
    p, gap, q = _trace(200, seed=5)
    n = p.size
    z = np.zeros(n)
    local = SideOutcome(q["quality"][0], q["latency_s"][0], z + 1, z + 2, z + 3, z, z)
    cloud = SideOutcome(q["quality"][1], q["latency_s"][1], z + 10, z + 20, z + 30, z, z)
    quantities = {k: (local.get(k), cloud.get(k)) for k in ("quality", "latency_s", "energy_j")}
    c = sweep_alpha(p, gap, quantities, 0.05, [0.4])
    d = decide(fused_score(p, 0.05, 0.0, gap), 0.4)
    t = totals(d, local, cloud)
    for k in quantities:
        assert c.means[k][0] == pytest.approx(t[k])
    assert c.cloud_share[0] == pytest.approx(t["cloud_share"])


def test_at_target_picks_the_least_cloud_share() -> None:
    p = np.array([0.9, 0.1, 0.5, 0.7])
    q = {"quality": (np.array([0.0, 1.0, 1.0, 0.0]), np.array([1.0, 1.0, 1.0, 1.0]))}
    c = sweep_alpha(p, 0.0, q, 0.0)
    pt = at_target(c, "quality", 1.0)
    assert pt is not None and pt["cloud_share"] == pytest.approx(0.5)
    assert at_target(c, "quality", 1.01) is None
    d = c.to_dict(max_points=3)
    assert len(d["theta"]) == 3 and d["theta"][0] is None  # -inf is not JSON: null


def test_grid_and_every_threshold_paths_agree() -> None:
    p, gap, q = _trace(300, seed=9)
    p[5] = np.nan  # never local on either path
    full = sweep_alpha(p, gap, q, 0.07)  # sorted path: every reachable threshold
    grid = sweep_alpha(p, gap, q, 0.07, full.theta[::-1])  # bucket path, unsorted grid
    np.testing.assert_array_equal(grid.n_local[::-1], full.n_local)
    for k in q:
        np.testing.assert_allclose(grid.means[k][::-1], full.means[k], rtol=1e-12, atol=1e-12)
    assert full.n_local[-1] == p.size - 1
