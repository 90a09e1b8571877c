"""Vectorised traffic replay: a threshold x alpha sweep of seed 001's fusion rule over a trace.

For one alpha, eq. 11 gives every query a fused score ``p~ = p - alpha (T_e - T_s)`` and eq. 12
keeps it local iff ``p~ <= theta``. Sorting the trace by ``p~`` once turns every threshold into a
prefix: the queries kept local at ``theta`` are the first ``k(theta)`` of the sorted order. Each
accounted quantity (quality, latency, energy, FLOPs, dollars) is then

    total(theta) = sum(cloud) + cumsum(local - cloud)[k(theta)]

so the curve through every reachable threshold costs one sort per alpha plus one cumulative sum
per quantity. A given grid of thresholds needs no sort at all: each query falls in the bucket of
the first threshold that keeps it local (a ``searchsorted`` into the grid), and a weighted
``bincount`` plus a cumulative sum over the grid give every threshold's totals. A 1M-query trace
and a 10 x 10 grid take well under a second on two cores (``benchmarks/bench_replay.py``).

NaN handling follows :mod:`localroute.core.policy`: a NaN fused score never satisfies
``p~ <= theta`` and sorts last, so it always goes to the cloud; a NaN in an accounted quantity
makes every total that includes that query NaN (unknown, never 0).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from localroute.core.policy import fused_score

__all__ = ["SweepCurve", "at_target", "cut_thresholds", "sweep", "sweep_alpha"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class SweepCurve:
    """One alpha's sweep: per threshold, the cloud share and the mean of each quantity."""

    alpha: float
    theta: FloatArray  # (T,)
    n_local: NDArray[np.int64]  # (T,) queries kept local
    n: int
    means: dict[str, FloatArray] = field(default_factory=dict)  # name -> (T,) mean per query

    @property
    def cloud_share(self) -> FloatArray:
        return 1.0 - self.n_local / self.n if self.n else np.full(self.theta.shape, np.nan)

    def point(self, i: int) -> dict[str, float]:
        out = {"alpha": self.alpha, "theta": float(self.theta[i])}
        out["cloud_share"] = float(self.cloud_share[i])
        out.update({k: float(v[i]) for k, v in self.means.items()})
        return out

    def to_dict(self, max_points: int | None = None) -> dict[str, list[float] | float]:
        """JSON-ready columns, thinned to at most ``max_points`` evenly spaced points."""
        idx = np.arange(self.theta.size)
        if max_points is not None and idx.size > max_points:
            idx = np.unique(np.linspace(0, idx.size - 1, max_points).round().astype(int))
        cols: dict[str, list[float] | float] = {"alpha": self.alpha}
        cols["theta"] = _floats(self.theta[idx])
        cols["cloud_share"] = _floats(self.cloud_share[idx])
        for k, v in self.means.items():
            cols[k] = _floats(v[idx])
        return cols


def _floats(a: np.ndarray) -> list[float | None]:
    """JSON floats with NaN/inf as null (an absent figure, never 0)."""
    return [float(x) if np.isfinite(x) else None for x in np.asarray(a, dtype=np.float64)]


def _prep(
    p: ArrayLike, gap: ArrayLike, quantities: Mapping[str, tuple[ArrayLike, ArrayLike]]
) -> tuple[FloatArray, FloatArray, dict[str, tuple[FloatArray, FloatArray]]]:
    pa_ = np.asarray(p, dtype=np.float64)
    ga = np.broadcast_to(np.asarray(gap, dtype=np.float64), pa_.shape)
    if pa_.ndim != 1:
        raise ValueError(f"p must be 1-D, got shape {pa_.shape}")
    q = {}
    for name, (loc, cld) in quantities.items():
        la = np.broadcast_to(np.asarray(loc, dtype=np.float64), pa_.shape)
        ca = np.broadcast_to(np.asarray(cld, dtype=np.float64), pa_.shape)
        q[name] = (la, ca)
    return pa_, ga, q


def cut_thresholds(fused: ArrayLike) -> FloatArray:
    """Every reachable operating point of one alpha: -inf (all cloud) and each distinct finite
    fused score (keeping it and everything below it local)."""
    f = np.asarray(fused, dtype=np.float64)
    return np.r_[-np.inf, np.unique(f[np.isfinite(f)])]


def sweep_alpha(
    p: ArrayLike,
    gap: ArrayLike,
    quantities: Mapping[str, tuple[ArrayLike, ArrayLike]],
    alpha: float,
    thetas: ArrayLike | None = None,
) -> SweepCurve:
    """One alpha: eqs. 11-12 at every threshold in ``thetas`` (default: every reachable one).

    ``quantities`` maps a name to (value if local, value if cloud), per query (or a scalar).
    """
    pa_, ga, q = _prep(p, gap, quantities)
    return _sweep_one(pa_, ga, q, float(alpha), thetas)


def _sweep_one(
    p: FloatArray,
    gap: FloatArray,
    q: Mapping[str, tuple[FloatArray, FloatArray]],
    alpha: float,
    thetas: ArrayLike | None,
    diffs: Mapping[str, FloatArray] | None = None,
) -> SweepCurve:
    n = p.size
    fused = fused_score(p, alpha, 0.0, gap) if alpha != 0 else p
    if diffs is None:
        diffs = {name: loc - cld for name, (loc, cld) in q.items()}
    bases = {name: float(np.sum(cld)) for name, (_, cld) in q.items()}
    if thetas is None:
        return _sweep_sorted(fused, diffs, bases, alpha, n)
    th = np.asarray(thetas, dtype=np.float64).reshape(-1)
    # A given grid needs no sort: bucket each query by the first threshold that keeps it local
    # (searchsorted into the sorted grid), then a weighted bincount and a cumulative sum give
    # every threshold's totals. NaN fused scores land past the last bucket: never local.
    valid = ~np.isnan(th)
    order_t = np.argsort(th[valid], kind="stable")
    grid = th[valid][order_t]
    bucket = np.searchsorted(grid, fused, side="left")
    m = grid.size
    k_sorted = np.cumsum(np.bincount(bucket, minlength=m + 1)[:m])
    k = np.zeros(th.size, dtype=np.int64)
    k_valid = np.empty(m, dtype=np.int64)
    k_valid[order_t] = k_sorted
    k[valid] = k_valid
    means = {}
    for name, diff in diffs.items():
        s_sorted = np.cumsum(np.bincount(bucket, weights=diff, minlength=m + 1)[:m])
        tot = np.full(th.size, bases[name])
        s_valid = np.empty(m)
        s_valid[order_t] = s_sorted
        tot[valid] += s_valid
        means[name] = tot / n if n else np.full(th.shape, np.nan)
    return SweepCurve(alpha=alpha, theta=th, n_local=k, n=n, means=means)


def _sweep_sorted(
    fused: FloatArray,
    diffs: Mapping[str, FloatArray],
    bases: Mapping[str, float],
    alpha: float,
    n: int,
) -> SweepCurve:
    """Every reachable threshold: sort once, read each prefix off a cumulative sum."""
    order = np.argsort(fused, kind="stable")  # NaN sorts last: never local
    fs = fused[order]
    th = cut_thresholds(fs)
    k = np.searchsorted(fs, th, side="right")  # first k sorted queries have p~ <= theta
    k = np.minimum(k, int(np.count_nonzero(~np.isnan(fs))))
    means = {}
    for name, diff in diffs.items():
        cum = np.empty(n + 1)
        cum[0] = 0.0
        np.cumsum(diff[order], out=cum[1:])
        means[name] = (bases[name] + cum[k]) / n if n else np.full(th.shape, np.nan)
    return SweepCurve(alpha=alpha, theta=th, n_local=k.astype(np.int64), n=n, means=means)


def sweep(
    p: ArrayLike,
    gap: ArrayLike,
    quantities: Mapping[str, tuple[ArrayLike, ArrayLike]],
    alphas: Sequence[float],
    thetas: ArrayLike | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[SweepCurve]:
    """The threshold x alpha grid: one :class:`SweepCurve` per alpha.

    ``thetas`` is shared by every alpha (e.g. ``np.linspace(-1, 1, 10)``); ``None`` gives each
    alpha its every reachable threshold. ``progress(done, total)`` is called after each alpha.
    """
    pa_, ga, q = _prep(p, gap, quantities)
    diffs = {name: loc - cld for name, (loc, cld) in q.items()}  # shared by every alpha
    out = []
    for i, alpha in enumerate(alphas):
        out.append(_sweep_one(pa_, ga, q, float(alpha), thetas, diffs))
        if progress is not None:
            progress(i + 1, len(alphas))
    return out


def at_target(
    curve: SweepCurve, quality: str, target: float, minimise: str = "cloud_share"
) -> dict[str, float] | None:
    """The operating point with the least ``minimise`` among those whose mean ``quality`` reaches
    ``target`` (ties: the higher quality); None when no threshold reaches it."""
    qv = curve.means[quality]
    ok = np.flatnonzero(qv >= target - 1e-12)
    if ok.size == 0:
        return None
    cost = curve.cloud_share if minimise == "cloud_share" else curve.means[minimise]
    c = cost[ok]
    if np.all(np.isnan(c)):
        return None
    best = np.nanmin(c)
    cand = ok[c <= best]
    i = int(cand[np.argmax(qv[cand])])
    return curve.point(i)
