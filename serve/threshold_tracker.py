"""A threshold that holds a target cloud share on the traffic the router actually sees.

A threshold calibrated on one source sends 0% or 100% to the cloud when live traffic scores
differently. With `serve.target_cloud_share` set, :class:`QuantileTracker` keeps the last
`target_window` fused scores p~ and sets theta to their (1 - target) quantile, clipped to
`serve.theta_bounds`, so that a share `target` of the recent traffic lies above it (cloud).
Until `target_min_samples` scores are in the window the configured (or artifact) theta stands.

The tracker observes p~ *without* the local queue's wait term: a burst that fills the local
queue still pushes work to the cloud beyond the target (the load-aware part of the policy),
instead of the tracker raising theta to cancel it. Requests whose theta comes from the model
name (`router-<name>-<theta>`) or that name another router are neither steered nor observed.

Its state is per ingress replica (each replica sees a share of the same traffic, so each
converges to the same quantile); :class:`ThetaControl` reports it in the decision headers and
as per-replica gauges in `/metrics`. Pure Python, no Ray.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import Any

from localroute.core.policy import Decision


class QuantileTracker:
    """The (1 - target) quantile of a sliding window of scores, clipped to [lo, hi]."""

    def __init__(
        self, target: float, lo: float = 0.0, hi: float = 1.0, window: int = 200, min_fill: int = 20
    ) -> None:
        if not 0.0 <= target <= 1.0:
            raise ValueError(f"target cloud share must be in [0, 1], got {target}")
        if lo > hi:
            raise ValueError(f"theta bounds [{lo}, {hi}] are reversed")
        self.target, self.lo, self.hi = float(target), float(lo), float(hi)
        self.window = max(1, int(window))
        self.min_fill = max(1, min(int(min_fill), self.window))
        self._order: deque[float] = deque()  # arrival order, to evict the oldest
        self._sorted: list[float] = []
        self._sides: deque[bool] = deque(maxlen=self.window)  # True: cloud
        self.n_seen = 0

    @property
    def fill(self) -> int:
        return len(self._sorted)

    @property
    def ready(self) -> bool:
        return self.fill >= self.min_fill

    def observe(self, score: float, cloud: bool | None = None) -> None:
        """One request's score (NaN scores are skipped) and, if known, whether it went to cloud."""
        if cloud is not None:
            self._sides.append(bool(cloud))
        if math.isnan(score):
            return
        self.n_seen += 1
        self._order.append(score)
        bisect.insort(self._sorted, score)
        if len(self._order) > self.window:
            old = self._order.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]

    def theta(self) -> float | None:
        """The score above which a share `target` of the window lies; None until ready.

        theta is the k-th smallest score, k = ceil((1 - target) n), so that n - k scores
        (about target n) are strictly above it (p~ > theta goes to the cloud)."""
        if not self.ready:
            return None
        n = len(self._sorted)
        k = math.ceil((1.0 - self.target) * n)
        # k = 0 (target 1): just below the smallest score, everything to the cloud
        q = self._sorted[min(k, n) - 1] if k > 0 else self._sorted[0] - 1e-9
        return min(self.hi, max(self.lo, q))

    def cloud_share(self) -> float | None:
        """The share of the window's decisions that went to the cloud (None: none yet)."""
        return sum(self._sides) / len(self._sides) if self._sides else None

    def snapshot(self) -> dict[str, Any]:
        return {
            "target_cloud_share": self.target,
            "theta": self.theta(),
            "bounds": [self.lo, self.hi],
            "window": self.window,
            "fill": self.fill,
            "min_fill": self.min_fill,
            "observed_cloud_share": self.cloud_share(),
            "seen": self.n_seen,
        }


def _replica_id() -> str:
    try:
        from ray import serve

        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # outside a Serve replica (unit tests)
        return "local"


class ThetaControl:
    """Which theta a request gets, and from where: `model` (the name's theta), `tracker`
    (the target share's quantile, once its window has `min_fill` scores), else `base`:
    `config` (serve.theta), `artifact` (the trained router's calibrated threshold) or
    `default` (an untrained router's own threshold)."""

    def __init__(
        self, theta: float, source: str, router: str, tracker: QuantileTracker | None = None
    ) -> None:
        self.base, self.base_source, self.router = float(theta), source, router
        self.tracker = tracker
        self.replica = _replica_id()

    @classmethod
    def from_config(cls, cfg, theta: float, router: str, source: dict) -> ThetaControl:
        """`source`: the ingress's router source (`artifact` or `name`)."""
        artifact = bool(source.get("artifact"))
        base = "config" if cfg.theta is not None else ("artifact" if artifact else "default")
        tracker = None
        if cfg.target_cloud_share is not None:
            lo, hi = cfg.theta_bounds
            tracker = QuantileTracker(
                cfg.target_cloud_share, lo, hi, cfg.target_window, cfg.target_min_samples
            )
        return cls(theta, base, router, tracker)

    def _steered(self, route) -> bool:
        return route.theta is None and route.router == self.router

    def theta(self, route) -> tuple[float, str]:
        """(theta, source) for a request routed as `route` (serve.decision.Route)."""
        if route.theta is not None:
            return float(route.theta), "model"
        if self.tracker is not None and self._steered(route):
            q = self.tracker.theta()
            if q is not None:
                return q, "tracker"
        return self.base, self.base_source

    def observe(self, route, d: Decision, source: str, metrics=None) -> dict[str, str]:
        """Feed the decision's load-free p~ to the tracker; the headers that describe it."""
        h = {"x-localroute-theta-source": source}
        t = self.tracker
        if t is None:
            return h
        if self._steered(route):
            fused = d.fused - d.alpha * d.local_wait_s  # p~ without the queue's wait
            t.observe(fused, d.side == "cloud")
            if metrics is not None:
                self.export(metrics)
        share = t.cloud_share()
        h["x-localroute-target-cloud-share"] = f"{t.target:.6g}"
        h["x-localroute-tracker-fill"] = f"{t.fill}/{t.window}"
        h["x-localroute-tracker-cloud-share"] = "nan" if share is None else f"{share:.6g}"
        return h

    def export(self, metrics) -> None:
        t = self.tracker
        if t is None:
            return
        q, share = t.theta(), t.cloud_share()
        metrics.tracker_state(
            self.replica,
            q if q is not None else self.base,
            t.fill,
            share if share is not None else math.nan,
            t.target,
        )
