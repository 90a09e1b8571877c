"""Router-evaluation metrics (vectorised numpy, no sklearn).

Conventions used throughout:

* A router outputs ``p`` = P(the cloud model is needed); higher ``p`` routes to cloud.
* ``y_cloud_needed`` is 1 when the local model does *not* suffice.
* ``q_local`` / ``q_cloud`` are per-query qualities of each side (scores or 0/1 correctness,
  typically in [0, 1]; the range is not enforced because every metric here is either
  scale-free or reported on the caller's quality scale).

Routing curves are built by sending the ``k`` highest-``p`` queries to cloud, ``k = 0..n``.
Queries with exactly equal ``p`` cannot be ordered by the router, so within a tie group the
curve is the *expected* quality under a uniformly random order of that group, i.e. a straight
line between the group's boundaries. This makes every curve deterministic and independent of
input order, and a constant router traces the exact random-routing diagonal.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "RouterCurve",
    "aiq",
    "apgr",
    "cpt",
    "cpt_from_curve",
    "pareto_front",
    "pgr",
    "pgr_curve",
    "precision_recall_f1",
    "quality_vs_cloud_share",
    "roc_auc",
    "router_report",
]

FloatArray = NDArray[np.float64]


class RouterCurve(NamedTuple):
    """An operating curve: x = share of queries sent to cloud, y = quality or PGR."""

    cloud_share: FloatArray
    value: FloatArray


# --------------------------------------------------------------------------- validation


def _as_1d(x: ArrayLike, name: str) -> FloatArray:
    """Coerce to a finite, non-empty 1-D float array; errors name the argument."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values")
    return arr


def _as_binary(x: ArrayLike, name: str) -> NDArray[np.bool_]:
    """Coerce a 0/1 (or bool) vector to bool; anything else is a caller bug."""
    arr = _as_1d(x, name)
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} must contain only 0/1 (or boolean) values")
    return arr.astype(bool)


def _same_length(**arrays: np.ndarray) -> None:
    """Raise if the named arrays differ in length, naming every argument involved."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise ValueError(f"length mismatch: {desc}")


def _check_curve(
    x: ArrayLike, y: ArrayLike, x_name: str, y_name: str
) -> tuple[FloatArray, FloatArray]:
    """Validate a (x, y) curve with non-decreasing x, as needed for area/interpolation."""
    xa, ya = _as_1d(x, x_name), np.asarray(y, dtype=np.float64)
    if ya.ndim != 1 or ya.size == 0:
        raise ValueError(f"{y_name} must be a non-empty 1-D array")
    _same_length(**{x_name: xa, y_name: ya})
    if np.any(np.diff(xa) < 0):
        raise ValueError(f"{x_name} must be sorted in non-decreasing order")
    return xa, ya


def _trapezoid(x: FloatArray, y: FloatArray) -> float:
    """Trapezoid rule (kept local so the numpy version does not matter)."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) * 0.5))


# --------------------------------------------------------------------------- classification


def precision_recall_f1(
    pred_local_suffices: ArrayLike, true_local_suffices: ArrayLike
) -> dict[str, float]:
    """Precision, recall and F1 for the positive class "local suffices".

    "Local suffices" is the positive class because a false positive (keeping a query local
    that needed cloud) is the costly quality error a router must avoid.

    Zero division returns 0.0 for the affected metric: precision when nothing is predicted
    positive, recall when there are no true positives in the data, F1 when
    precision + recall == 0. This keeps reports numeric and penalises degenerate routers.
    """
    pred = _as_binary(pred_local_suffices, "pred_local_suffices")
    true = _as_binary(true_local_suffices, "true_local_suffices")
    _same_length(pred_local_suffices=pred, true_local_suffices=true)
    tp = float(np.sum(pred & true))
    n_pred, n_true = float(pred.sum()), float(true.sum())
    precision = tp / n_pred if n_pred > 0 else 0.0
    recall = tp / n_true if n_true > 0 else 0.0
    denom = precision + recall
    f1 = 2.0 * precision * recall / denom if denom > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _average_ranks(x: FloatArray) -> FloatArray:
    """1-based ranks with ties given their average rank (needed for Mann-Whitney)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts  # 0-based first position of each tie group
    avg = starts + (counts + 1) / 2.0
    return avg[inverse]


def roc_auc(y: ArrayLike, score: ArrayLike) -> float:
    """ROC AUC via the Mann-Whitney U statistic with average ranks for ties.

    Equals P(score_pos > score_neg) + 0.5 * P(tie), so tied scores count as half-correct.
    ``y`` is 1 for the positive class (typically ``y_cloud_needed`` with ``score = p``).
    Returns nan, not an error, when only one class is present: AUC is undefined there and
    batch evaluation over many slices should not crash on one degenerate slice.
    """
    ya = _as_binary(y, "y")
    s = _as_1d(score, "score")
    _same_length(y=ya, score=s)
    n_pos = int(ya.sum())
    n_neg = ya.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    u = ranks[ya].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


# --------------------------------------------------------------------------- routing curves


def quality_vs_cloud_share(
    p: ArrayLike,
    q_local: ArrayLike,
    q_cloud: ArrayLike,
    n_points: int | None = None,
) -> RouterCurve:
    """Mean quality when the top-k fraction of queries by ``p`` is routed to cloud.

    Returns ``RouterCurve(cloud_share, value)`` where ``value`` is mean quality.
    With ``n_points=None`` the curve has the exact ``n + 1`` points ``k/n``, ``k = 0..n``;
    its endpoints are exactly the all-local and all-cloud mean qualities.

    Ties: within a group of exactly equal ``p`` the quality is the expectation over a random
    order of the group, i.e. linear interpolation between the group boundaries (see module
    docstring). A constant ``p`` therefore yields the straight random-routing line.

    With an integer ``n_points >= 2`` the exact curve is linearly interpolated onto
    ``linspace(0, 1, n_points)``; linear interpolation is itself achievable by randomly mixing
    the two neighbouring cut-offs, so resampled values are still attainable qualities.
    """
    pa = _as_1d(p, "p")
    ql = _as_1d(q_local, "q_local")
    qc = _as_1d(q_cloud, "q_cloud")
    _same_length(p=pa, q_local=ql, q_cloud=qc)
    n = pa.size

    order = np.argsort(-pa, kind="stable")
    ps = pa[order]
    # Cumulative sums of each side in routing order; quality(k) = cloud[:k] + local[k:].
    cum_cloud = np.concatenate(([0.0], np.cumsum(qc[order])))
    cum_local = np.concatenate(([0.0], np.cumsum(ql[order])))

    # Knots: k values at tie-group boundaries (always includes 0 and n).
    inner = np.flatnonzero(ps[1:] != ps[:-1]) + 1
    knots = np.concatenate(([0], inner, [n]))
    k = np.arange(n + 1, dtype=np.float64)
    cc = np.interp(k, knots, cum_cloud[knots])
    cl = np.interp(k, knots, cum_local[knots])
    quality = (cc + (cum_local[n] - cl)) / n
    share = k / n

    if n_points is not None:
        if int(n_points) != n_points or n_points < 2:
            raise ValueError(f"n_points must be an integer >= 2 or None, got {n_points!r}")
        grid = np.linspace(0.0, 1.0, int(n_points))
        return RouterCurve(grid, np.interp(grid, share, quality))
    return RouterCurve(share, quality)


def pgr(quality: ArrayLike | float, q_weak: float, q_strong: float) -> FloatArray | float:
    """Performance Gap Recovered (RouteLLM): (quality - q_weak) / (q_strong - q_weak).

    0 means all-local quality, 1 means all-cloud quality. Returns nan when
    ``q_strong == q_weak`` because there is no gap to recover.
    """
    q = np.asarray(quality, dtype=np.float64)
    gap = float(q_strong) - float(q_weak)
    out = np.full_like(q, np.nan) if gap == 0 else (q - float(q_weak)) / gap
    return float(out) if out.ndim == 0 else out


def pgr_curve(
    p: ArrayLike,
    q_local: ArrayLike,
    q_cloud: ArrayLike,
    n_points: int | None = None,
) -> RouterCurve:
    """PGR vs cloud share; q_weak/q_strong are the all-local/all-cloud mean qualities.

    The values are all nan when all-local and all-cloud quality are equal.
    """
    share, quality = quality_vs_cloud_share(p, q_local, q_cloud, n_points=n_points)
    # The curve endpoints are the all-local/all-cloud means, computed from the same sums as
    # the interior points, so PGR is exactly 0 and 1 there (no float drift at the ends).
    q_weak, q_strong = float(quality[0]), float(quality[-1])
    return RouterCurve(share, np.asarray(pgr(quality, q_weak, q_strong), dtype=np.float64))


def apgr(
    p: ArrayLike,
    q_local: ArrayLike,
    q_cloud: ArrayLike,
    n_points: int | None = None,
) -> float:
    """Average PGR (RouteLLM): trapezoid area under PGR vs cloud share over [0, 1].

    A random (or constant) router scores 0.5; higher is better. ``n_points=None`` integrates
    the exact piecewise-linear curve; RouteLLM's paper quantises to 10 cost intervals, which
    corresponds to ``n_points=11``. Returns nan when all-local and all-cloud quality are equal.
    """
    share, values = pgr_curve(p, q_local, q_cloud, n_points=n_points)
    if np.isnan(values).any():
        return float("nan")
    return _trapezoid(share, values)


def cpt_from_curve(cloud_share: ArrayLike, pgr_values: ArrayLike, target: float) -> float:
    """Call-Performance Threshold on a given curve: minimum cloud share with PGR >= target.

    ``target`` is a fraction (0.5 for CPT(50%)), not a percentage. The curve is treated as
    piecewise linear, so the crossing is linearly interpolated between the last point below
    the target and the first point at or above it. Returns nan if the target is never
    reached or the curve contains nan (no gap to recover).
    """
    if not np.isfinite(target) or not 0.0 <= target <= 1.0:
        raise ValueError(f"target must be a fraction in [0, 1] (e.g. 0.5), got {target!r}")
    x, y = _check_curve(cloud_share, pgr_values, "cloud_share", "pgr_values")
    if np.isnan(y).any():
        return float("nan")
    hit = np.flatnonzero(y >= target)
    if hit.size == 0:
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return float(x[0])
    x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
    return float(x0 + (target - y0) / (y1 - y0) * (x1 - x0))


def cpt(p: ArrayLike, q_local: ArrayLike, q_cloud: ArrayLike, target: float) -> float:
    """CPT(target) of a router: minimum cloud-call share reaching PGR >= target.

    E.g. ``cpt(p, ql, qc, 0.8)`` is RouteLLM's CPT(80%). nan if never reached or no gap.
    """
    share, values = pgr_curve(p, q_local, q_cloud)
    return cpt_from_curve(share, values, target)


# --------------------------------------------------------------------------- cost/quality


def pareto_front(costs: ArrayLike, qualities: ArrayLike) -> NDArray[np.intp]:
    """Indices of non-dominated (lower cost, higher quality) points, sorted by cost.

    A point is dominated if another has cost <= and quality >= with at least one strict.
    Exact duplicates do not dominate each other, so all copies of a front point are kept
    (ordered by original index) to stay faithful to the strict definition.
    """
    c = _as_1d(costs, "costs")
    q = _as_1d(qualities, "qualities")
    _same_length(costs=c, qualities=q)
    order = np.lexsort((-q, c))  # cost asc, then quality desc; stable => index asc on ties
    cs, qs = c[order], q[order]
    # Runs of exact duplicates share one verdict, decided at the run start.
    run_start = np.ones(cs.size, dtype=bool)
    run_start[1:] = (cs[1:] != cs[:-1]) | (qs[1:] != qs[:-1])
    prev_best = np.concatenate(([-np.inf], np.maximum.accumulate(qs)[:-1]))
    keep_start = qs[run_start] > prev_best[run_start]
    keep = keep_start[np.cumsum(run_start) - 1]
    return order[keep]


def _upper_hull(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Upper convex hull of points sorted by strictly increasing x (monotone chain)."""
    hx: list[float] = []
    hy: list[float] = []
    for xi, yi in zip(x.tolist(), y.tolist(), strict=True):
        # Pop the last vertex while it lies on or below the chord to the new point.
        while len(hx) >= 2 and (
            (hx[-1] - hx[-2]) * (yi - hy[-2]) - (hy[-1] - hy[-2]) * (xi - hx[-2]) >= 0
        ):
            hx.pop()
            hy.pop()
        hx.append(xi)
        hy.append(yi)
    return np.asarray(hx), np.asarray(hy)


def aiq(costs: ArrayLike, qualities: ArrayLike) -> float:
    """Average Improvement in Quality (RouterBench, Hu et al. 2024).

    Area under the non-decreasing upper convex hull of a router's (cost, quality) operating
    points, with cost normalised to [0, 1] over [min(costs), max(costs)]. The hull is used
    because any point on a chord is attainable by randomly mixing two operating points, and
    it is made non-decreasing (flat after the best quality) because paying more never forces
    lower quality. For a router curve pass ``cloud_share`` as cost (``router_report`` does);
    constant per-call prices give the same AIQ since normalisation removes affine cost maps.

    If all costs are equal the normalised range is degenerate and the best quality is
    returned (the limit of the normalised area of a flat hull).
    """
    c = _as_1d(costs, "costs")
    q = _as_1d(qualities, "qualities")
    _same_length(costs=c, qualities=q)
    c_min, c_max = float(c.min()), float(c.max())
    if c_max == c_min:
        return float(q.max())
    front = pareto_front(c, q)
    fx, fy = c[front], q[front]
    distinct = np.concatenate(([True], fx[1:] != fx[:-1]))  # drop exact duplicates
    hx, hy = _upper_hull(fx[distinct], fy[distinct])
    if hx[-1] < c_max:  # extend flat to the most expensive operating point
        hx, hy = np.append(hx, c_max), np.append(hy, hy[-1])
    return _trapezoid((hx - c_min) / (c_max - c_min), hy)


# --------------------------------------------------------------------------- report


def router_report(
    p: ArrayLike,
    q_local: ArrayLike,
    q_cloud: ArrayLike,
    suffices_rule: Literal["ge", "bar"] = "ge",
    bar: float | None = None,
    threshold: float = 0.5,
) -> dict[str, float | int]:
    """One-call summary of a router: {auc, f1, apgr, cpt50, cpt80, aiq, n}.

    Label "local suffices" is ``q_local >= q_cloud`` (``suffices_rule="ge"``) or
    ``q_local >= bar`` (``suffices_rule="bar"``, ``bar`` required). AUC scores ``p`` against
    ``y_cloud_needed = not local_suffices``; F1 is for "local suffices" predicted as
    ``p <= threshold``. APGR/CPT use the exact PGR curve; AIQ uses cloud share as cost on the
    quality curve. ``n`` is the number of queries.
    """
    pa = _as_1d(p, "p")
    ql = _as_1d(q_local, "q_local")
    qc = _as_1d(q_cloud, "q_cloud")
    _same_length(p=pa, q_local=ql, q_cloud=qc)
    if suffices_rule == "ge":
        local_suffices = ql >= qc
    elif suffices_rule == "bar":
        if bar is None:
            raise ValueError("bar must be given when suffices_rule='bar'")
        local_suffices = ql >= float(bar)
    else:
        raise ValueError(f"suffices_rule must be 'ge' or 'bar', got {suffices_rule!r}")

    prf = precision_recall_f1(pa <= threshold, local_suffices)  # local iff p <= theta (eq. 12)
    share, quality = quality_vs_cloud_share(pa, ql, qc)
    pgr_share, pgr_values = pgr_curve(pa, ql, qc)
    has_gap = not np.isnan(pgr_values).any()
    return {
        "auc": roc_auc(~local_suffices, pa),
        "f1": prf["f1"],
        "apgr": _trapezoid(pgr_share, pgr_values) if has_gap else float("nan"),
        "cpt50": cpt_from_curve(pgr_share, pgr_values, 0.5),
        "cpt80": cpt_from_curve(pgr_share, pgr_values, 0.8),
        "aiq": aiq(share, quality),
        "n": int(pa.size),
    }
