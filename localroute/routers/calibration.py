"""Probability calibration: a router's raw score becomes a calibrated P(needs cloud).

A learned router's raw score ranks queries but its scale is arbitrary (a kNN vote, a class-
balanced sigmoid), while seed 001's fusion p~ = p - alpha (T_e - T_s) needs p to be a
probability. `fit_calibrator` fits one on held-out (validation) scores: Platt scaling (a
logistic regression on the logit of the raw score, the default: monotone, two numbers, robust on
small splits) or isotonic regression. The calibrator is stored in the artifact (router.json) as
a dict and applied inside `Router.score`, so evaluate and serve read the same calibrated p.

`brier` and `ece` (10 equal-width bins) measure calibration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from localroute.routers.errors import RouterError

# Raw scores are clipped to [EPS, 1 - EPS] before the logit: a unanimous kNN vote is no certainty.
EPS = 1e-2
METHODS = ("platt", "isotonic")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class Calibrator:
    """p = f(raw): identity, Platt (sigmoid(a logit(raw) + b)) or isotonic (piecewise linear)."""

    method: str = "identity"
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = ()  # isotonic knots (raw score) ...
    y: tuple[float, ...] = ()  # ... and their calibrated p

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, np.float64)
        if self.method == "identity":
            return raw
        if self.method == "platt":
            z = self.a * _logit(raw) + self.b
            return 0.5 * (1.0 + np.tanh(0.5 * z))  # the sigmoid, without overflow warnings
        if self.method == "isotonic":
            return np.interp(raw, self.x, self.y)
        raise RouterError(f"unknown calibrator {self.method!r}")

    def to_dict(self) -> dict[str, Any]:
        if self.method == "platt":
            return {"method": "platt", "a": self.a, "b": self.b}
        if self.method == "isotonic":
            return {"method": "isotonic", "x": list(self.x), "y": list(self.y)}
        return {"method": "identity"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibrator:
        method = d.get("method")
        if method == "platt":
            return cls("platt", a=float(d["a"]), b=float(d["b"]))
        if method == "isotonic":
            return cls("isotonic", x=tuple(map(float, d["x"])), y=tuple(map(float, d["y"])))
        if method == "identity":
            return cls()
        raise RouterError(f"unknown calibrator {method!r}")


IDENTITY = Calibrator()


def fit_calibrator(raw: np.ndarray, labels: np.ndarray, method: str = "platt") -> Calibrator:
    """A calibrator of `raw` scores for binary `labels` (held-out ones: not the training split).

    Platt's slope is kept >= 0, so calibration never reverses a router's ranking (a router that
    ranks worse than chance on the split gets its base rate).
    """
    raw = np.asarray(raw, np.float64)
    y = np.asarray(labels, np.float64)
    ok = np.isfinite(raw) & np.isfinite(y)
    raw, y = raw[ok], y[ok]
    if method not in METHODS:
        raise RouterError(f"unknown calibration method {method!r}; known: {', '.join(METHODS)}")
    if raw.size == 0 or len(np.unique(y)) < 2:
        raise RouterError("calibration needs held-out examples of both labels")
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y)
        return Calibrator(
            "isotonic",
            x=tuple(float(v) for v in iso.X_thresholds_),
            y=tuple(float(v) for v in iso.y_thresholds_),
        )
    from sklearn.linear_model import LogisticRegression

    z = _logit(raw)[:, None]
    lr = LogisticRegression(C=1e4, max_iter=1000).fit(z, y)
    a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    if a < 0:  # worse than chance on the split: the base rate, as a logit
        base = float(np.clip(y.mean(), EPS, 1 - EPS))
        a, b = 0.0, float(np.log(base) - np.log1p(-base))
    return Calibrator("platt", a=a, b=b)


def brier(p: np.ndarray, labels: np.ndarray) -> float:
    """Mean squared error of p against the 0/1 labels (lower is better; NaN on no rows)."""
    p, y = np.asarray(p, np.float64), np.asarray(labels, np.float64)
    return float(np.mean((p - y) ** 2)) if p.size else float("nan")


def reliability(p: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """The reliability diagram's points: per non-empty equal-width bin of p, the share of rows,
    the mean predicted p and the observed frequency of label 1."""
    p, y = np.asarray(p, np.float64), np.asarray(labels, np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    return [
        {"share": float(m.mean()), "p": float(p[m].mean()), "observed": float(y[m].mean())}
        for m in (which == b for b in range(bins))
        if m.any()
    ]


def ece(p: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: sum over equal-width bins of share x |mean p - mean label|."""
    if np.asarray(p).size == 0:
        return float("nan")
    return float(
        sum(b["share"] * abs(b["p"] - b["observed"]) for b in reliability(p, labels, bins))
    )


def calibration_report(raw: np.ndarray, p: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Brier and ECE of the raw and the calibrated scores on the split the calibrator saw."""
    return {
        "n": int(len(labels)),
        "brier_raw": brier(raw, labels),
        "brier": brier(p, labels),
        "ece_raw": ece(raw, labels),
        "ece": ece(p, labels),
    }


MIN_LABEL_ROWS = 10  # of each label, to tell a ranking from chance


def ranking_figures(p: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """How well p ranks and fits 0/1 labels: count, AUC (None without both labels), Brier score
    and the label rate (None on no rows): the drift figures serve exports and evaluate reports."""
    from localroute.metrics import roc_auc

    p, y = np.asarray(p, np.float64), np.asarray(labels, np.float64)
    if y.size == 0:
        return {"n": 0, "auc": None, "brier": None, "label_rate": None}
    auc = float(roc_auc(y, p)) if 0 < y.sum() < y.size else None
    return {"n": int(y.size), "auc": auc, "brier": brier(p, y), "label_rate": float(y.mean())}


def auc_with_se(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """(AUC, its Hanley-McNeil standard error); NaNs without both labels."""
    from localroute.metrics import roc_auc

    y = np.asarray(labels, np.float64)
    n1, n0 = int((y == 1).sum()), int((y == 0).sum())
    if not (n1 and n0):
        return float("nan"), float("nan")
    auc = float(roc_auc(y, scores))
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2)) / (n1 * n0)
    return auc, float(np.sqrt(max(var, 0.0)))


def flag_degenerate(router, raw: np.ndarray, labels: np.ndarray, on: str) -> str | None:
    """Flag (info["degenerate"]) a router whose held-out ranking does not beat random with
    confidence: AUC - 2 SE <= 0.5 (Hanley-McNeil SE), or < MIN_LABEL_ROWS of a label. Its p is
    then (nearly) a constant and the latency term alone decides: train warns, serve shows it."""
    y = np.asarray(labels, np.float64)
    n1, n0 = int((y == 1).sum()), int((y == 0).sum())
    auc, se = auc_with_se(y, raw)
    enough = min(n1, n0) >= MIN_LABEL_ROWS  # the SE is no guide on a handful of rows
    if enough and np.isfinite(auc) and auc - 2 * se > 0.5:
        router.info.pop("degenerate", None)
        return None
    why = (
        f"held-out AUC {auc:.3f} +/- {se:.3f} on {n1 + n0} rows of the {on} does not beat "
        "random (0.5) with confidence: its p carries (almost) no ranking, so the latency term "
        "alone decides"
    )
    router.info["degenerate"] = why
    return why
