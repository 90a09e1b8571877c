"""Prometheus metrics of the router ingress: requests, decisions, fallbacks, latency histograms.

Every observation is one event `(metric, tags, value)`, recorded three ways: in a
`prometheus_client` registry of the replica; in `pending`, which the ingress ships in batches to
the application's `RouterState` deployment (serve/state.py), where the same events are replayed
into one registry for all replicas, so `GET /metrics` is monotonic whichever replica answers;
and through `ray.util.metrics`, which Ray exports on every node's metrics endpoint (scrape that
in a cluster; the Grafana dashboard in cluster/grafana/ reads either).

Gauges (the target-share tracker's theta, window fill and observed cloud share,
localroute.core.live) are set, not summed: they carry a `replica` label, one series per replica.
"""

from __future__ import annotations

import contextlib

FEEDBACK_GAUGES = {  # shadow labels (serve/feedback.py), per ingress replica
    "feedback_labelled": "Requests shadow-labelled (both sides answered and graded)",
    "feedback_written": "Shadow labels written to serve.feedback.out",
    "feedback_dropped": "Shadow jobs dropped (queue full, per-minute cap, spend budget)",
    "feedback_failed": "Shadow jobs that left no row (a failed call, an ungraded answer)",
    "feedback_shadow_tokens": "Tokens spent on shadow calls and the judge (usage counts)",
    "feedback_shadow_usd": "Dollars of the cloud shadow and judge tokens (NaN: unpriced)",
    "feedback_drift_auc": "Rolling AUC of the served p on the latest shadow labels",
    "feedback_drift_brier": "Rolling Brier score of the served p on the latest shadow labels",
    "feedback_drift_labels": "Shadow labels in the rolling drift window",
}
GAUGES = (
    "tracker_theta",
    "tracker_fill",
    "tracker_cloud_share",
    "tracker_target",
    *FEEDBACK_GAUGES,
)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self, export_ray: bool = True, share: bool = False) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "localroute_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.decisions = Counter(
            "localroute_decisions",
            "Routing decisions: the side chosen and the side that answered",
            ["decision", "served_by", "router"],
            registry=r,
        )
        self.fallbacks = Counter(
            "localroute_fallbacks",
            "Answers served by the other side after a failure",
            ["from_side", "to_side", "kind"],
            registry=r,
        )
        self.latency = Histogram(
            "localroute_request_latency_seconds",
            "End-to-end latency in the ingress (stream: until the last chunk)",
            ["served_by", "stream"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.hop = Histogram(
            "localroute_router_hop_seconds",
            "Time from request arrival to the model call (auth, parsing, scoring, fusion)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "localroute_ttft_seconds",
            "Time to the first streamed chunk, in the ingress",
            ["served_by"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        gauge_help = {
            "tracker_theta": "Theta the target-share tracker sets (the base theta until ready)",
            "tracker_fill": "Scores in the target-share tracker's window",
            "tracker_cloud_share": "Cloud share of the decisions in the tracker's window",
            "tracker_target": "The configured target cloud share",
            **FEEDBACK_GAUGES,
        }
        gauges = {
            g: Gauge(f"localroute_{g}", gauge_help[g], ["replica"], registry=r) for g in GAUGES
        }
        self._local = {
            **gauges,
            "requests": self.requests,
            "decisions": self.decisions,
            "fallbacks": self.fallbacks,
            "latency": self.latency,
            "hop": self.hop,
            "ttft": self.ttft,
        }
        self.pending: list[tuple[str, dict[str, str], float | None]] | None = [] if share else None
        self._ray = None
        if not export_ray:
            return
        with contextlib.suppress(Exception):  # outside a Ray worker there is nothing to export to
            from ray.util import metrics as rm

            self._ray = {
                "requests": rm.Counter(
                    "localroute_requests", "HTTP requests", tag_keys=("route", "status")
                ),
                "decisions": rm.Counter(
                    "localroute_decisions",
                    "Routing decisions",
                    tag_keys=("decision", "served_by", "router"),
                ),
                "fallbacks": rm.Counter(
                    "localroute_fallbacks",
                    "Fallbacks",
                    tag_keys=("from_side", "to_side", "kind"),
                ),
                "latency": rm.Histogram(
                    "localroute_request_latency_seconds",
                    "End-to-end latency",
                    boundaries=list(LATENCY_BUCKETS),
                    tag_keys=("served_by", "stream"),
                ),
                "hop": rm.Histogram(
                    "localroute_router_hop_seconds",
                    "Router hop",
                    boundaries=list(LATENCY_BUCKETS),
                ),
                "ttft": rm.Histogram(
                    "localroute_ttft_seconds",
                    "Time to the first streamed chunk",
                    boundaries=list(LATENCY_BUCKETS),
                    tag_keys=("served_by",),
                ),
            }
            for g in GAUGES:
                self._ray[g] = rm.Gauge(f"localroute_{g}", gauge_help[g], tag_keys=("replica",))

    def record(self, name: str, tags: dict[str, str], value: float | None = None) -> None:
        """One event: a counter increment (value None), a histogram observation, a gauge's value."""
        m = self._local[name]
        m = m.labels(**tags) if tags else m
        if name in GAUGES:
            m.set(value)
        elif value is None:
            m.inc()
        else:
            m.observe(value)
        if self.pending is not None:
            self.pending.append((name, tags, value))
        self._ray_inc(name, tags, value)

    def take(self) -> list[tuple[str, dict[str, str], float | None]]:
        """The events recorded since the last take (to ship to the shared store)."""
        out = self.pending or []
        if self.pending is not None:
            self.pending = []
        return out

    def replay(self, events) -> None:
        """Record events shipped by `take()` elsewhere (the shared store's side)."""
        for name, tags, value in events:
            if name in self._local:
                self.record(name, dict(tags), value)

    def _ray_inc(self, name: str, tags: dict[str, str], value: float | None = None) -> None:
        if self._ray is None:
            return
        with contextlib.suppress(Exception):
            m = self._ray[name]
            if name in GAUGES:
                m.set(value, tags=tags)
            elif value is None:
                m.inc(1, tags=tags)
            else:
                m.observe(value, tags=tags or None)

    def request(self, route: str, status: int) -> None:
        self.record("requests", {"route": route, "status": str(status)})

    def decision(self, decision: str, served_by: str, router: str) -> None:
        self.record("decisions", {"decision": decision, "served_by": served_by, "router": router})

    def fallback(self, from_side: str, to_side: str, kind: str) -> None:
        self.record("fallbacks", {"from_side": from_side, "to_side": to_side, "kind": kind})

    def observe_latency(self, served_by: str, stream: bool, seconds: float) -> None:
        self.record("latency", {"served_by": served_by, "stream": str(stream).lower()}, seconds)

    def observe_hop(self, seconds: float) -> None:
        self.record("hop", {}, seconds)

    def observe_ttft(self, served_by: str, seconds: float) -> None:
        self.record("ttft", {"served_by": served_by}, seconds)

    def tracker_state(
        self, replica: str, theta: float, fill: int, cloud_share: float, target: float
    ) -> None:
        tags = {"replica": replica}
        for name, value in (
            ("tracker_theta", theta),
            ("tracker_fill", fill),
            ("tracker_cloud_share", cloud_share),
            ("tracker_target", target),
        ):
            self.record(name, tags, float(value))

    def feedback_state(self, replica: str, st: dict) -> None:
        """The shadow labeller's counts, spend and drift (NaN where not yet known)."""
        import math

        drift = st["drift"]
        dropped = st["dropped_full"] + st["dropped_rate"] + st["dropped_budget"]
        for name, value in (
            ("feedback_labelled", st["labelled"]),
            ("feedback_written", st["written"]),
            ("feedback_dropped", dropped),
            ("feedback_failed", st["failed"] + st["write_failed"]),
            ("feedback_shadow_tokens", st["shadow_tokens"]),
            ("feedback_shadow_usd", st["shadow_usd"]),
            ("feedback_drift_auc", drift["auc"]),
            ("feedback_drift_brier", drift["brier"]),
            ("feedback_drift_labels", drift["n"]),
        ):
            self.record(name, {"replica": replica}, math.nan if value is None else float(value))

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
