"""Prometheus metrics of the router ingress: requests, decisions, fallbacks, latency histograms.

Each metric is recorded twice: in a per-replica `prometheus_client` registry served at
`GET /metrics` on the ingress (what one replica saw; readable without a Ray metrics agent), and
through `ray.util.metrics`, which Ray exports on every node's metrics endpoint and aggregates
across replicas (scrape that in a cluster).
"""

from __future__ import annotations

import contextlib

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

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
        self._ray = None
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
            }

    def _ray_inc(self, name: str, tags: dict[str, str], value: float | None = None) -> None:
        if self._ray is None:
            return
        with contextlib.suppress(Exception):
            m = self._ray[name]
            if value is None:
                m.inc(1, tags=tags)
            else:
                m.observe(value, tags=tags or None)

    def request(self, route: str, status: int) -> None:
        tags = {"route": route, "status": str(status)}
        self.requests.labels(**tags).inc()
        self._ray_inc("requests", tags)

    def decision(self, decision: str, served_by: str, router: str) -> None:
        tags = {"decision": decision, "served_by": served_by, "router": router}
        self.decisions.labels(**tags).inc()
        self._ray_inc("decisions", tags)

    def fallback(self, from_side: str, to_side: str, kind: str) -> None:
        tags = {"from_side": from_side, "to_side": to_side, "kind": kind}
        self.fallbacks.labels(**tags).inc()
        self._ray_inc("fallbacks", tags)

    def observe_latency(self, served_by: str, stream: bool, seconds: float) -> None:
        tags = {"served_by": served_by, "stream": str(stream).lower()}
        self.latency.labels(**tags).observe(seconds)
        self._ray_inc("latency", tags, seconds)

    def observe_hop(self, seconds: float) -> None:
        self.hop.observe(seconds)
        self._ray_inc("hop", {}, seconds)

    def observe_ttft(self, served_by: str, seconds: float) -> None:
        self.ttft.labels(served_by=served_by).observe(seconds)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
