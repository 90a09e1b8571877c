"""A decided request: what the rest of its path (dispatch, headers, metrics, sessions, shadow
labels) reads once the controller has decided it, typed instead of a dict of strings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localroute.core.controller import Routed
from localroute.core.policy import Decision


@dataclass(frozen=True)
class DecidedRequest:
    rid: str  # the response id (`chatcmpl-<x-request-id>`)
    req: Any  # serve.protocol.ChatRequest
    router: str  # the router the model name asked for
    slot: Any  # serve.served_router.Slot: the router and controller it began with
    routed: Routed  # the decision, its theta's source and the live figures it used
    feats: Any  # serve.decision.Features
    theta_headers: dict[str, str]
    t0: float  # when it arrived (perf_counter)
    headers: Any  # the HTTP request's headers
    session_id: str | None

    @property
    def decision(self) -> Decision:
        return self.routed.decision

    @property
    def by_served_router(self) -> bool:
        """Decided by the served router (not an untrained one a model name asked for)."""
        return self.router == self.slot.name
