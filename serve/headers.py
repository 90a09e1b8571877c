"""The `x-localroute-*` response headers: every term of the decision, and what happened to it.

`x-request-id` is not set here: Ray Serve's proxy sends exactly one (the client's own when it
sent one, else a fresh id), and the ingress reads it from the request to use as the response id.
"""

from __future__ import annotations

import math

from localroute.core.controller import Routed
from localroute.core.policy import Decision


def header_float(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.6g}"


def ascii_header(text: str) -> str:
    return text.encode("ascii", "replace").decode()


def decision_headers(
    d: Decision,
    served: str,
    router: str,
    failures: list[tuple[str, dict]],
    theta: dict[str, str] | None = None,
) -> dict[str, str]:
    """The decision's terms: p, p~, theta, alpha, T_s (with the local wait), T_e, the switch.

    `theta`: where theta came from (`x-localroute-theta-source`: tracker, config, artifact,
    default or model) and the target-share tracker's state (localroute.core.live)."""
    reason = d.reason
    h = {
        "x-localroute-served": served,  # the side that answered (after any fallback)
        "x-localroute-decision": served,  # its old name, kept one release (README)
        "x-localroute-chosen": d.side,
        "x-localroute-p": header_float(d.p),
        "x-localroute-p-fused": header_float(d.fused),
        "x-localroute-theta": header_float(d.theta),
        "x-localroute-alpha": header_float(d.alpha),
        "x-localroute-t-local": header_float(d.t_local),
        "x-localroute-t-cloud": header_float(d.t_cloud),
        "x-localroute-local-wait": header_float(d.local_wait_s),
        "x-localroute-router": router,
        "x-localroute-switch": "true" if (d.prev_side and d.prev_side != served) else "false",
        **(theta or {}),
    }
    if failures:
        side, err = failures[0]
        kind = err.get("kind", "error")
        h["x-localroute-fallback"] = f"{side}->{served}; {kind}"
        reason = f"fallback to {served}: {side} failed ({kind}); chosen by fusion: {reason}"
    h["x-localroute-reason"] = ascii_header(reason)
    return h


def controller_headers(routed: Routed, tracker=None) -> dict[str, str]:
    """Where theta came from, the live figures the decision used (the replay takes them back:
    localroute.core.live.EstimateSnapshot.from_header) and the target tracker's state."""
    h = {
        "x-localroute-theta-source": routed.theta_source,
        "x-localroute-estimates": routed.estimates.to_header(),
    }
    if tracker is not None:
        share = tracker.cloud_share()
        h["x-localroute-target-cloud-share"] = f"{tracker.target:.6g}"
        h["x-localroute-tracker-fill"] = f"{tracker.fill}/{tracker.window}"
        h["x-localroute-tracker-cloud-share"] = "nan" if share is None else f"{share:.6g}"
        if tracker.clipped:
            h["x-localroute-tracker-clipped"] = "true"
    return h
