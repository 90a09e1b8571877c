"""The route controller: one deployment's decision maker, shared by the server and the report.

It holds the operating point, the latency prior of the deployed models and the live state (live
estimates, the local queue, the target-share tracker) and turns one request's calibrated p and
lengths into a :class:`~localroute.core.policy.Decision` through
:func:`~localroute.core.policy.decide_one`. The ingress calls :meth:`RouteController.decide` per
request; ``localroute evaluate`` replays test traffic through :func:`replay` in arrival order
with the same controller type, so the report's first rows are what the server would have done.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from localroute.core.latency import LatencyModel
from localroute.core.live import EstimateSnapshot, LiveEstimates, LocalLoad, QuantileTracker
from localroute.core.operating_point import OperatingPoint, response_tokens
from localroute.core.policy import Decision, decide_one

NO_ESTIMATES = EstimateSnapshot()


@dataclass(frozen=True)
class RequestInputs:
    """What the controller reads of one request (lengths in whitespace words, as routers are
    trained); ``tokens_needed`` against ``local_window``: whether the conversation and its
    reply fit the local model's context window (None: unknown, assumed to fit)."""

    p: float
    prompt_words: float
    context_words: float = 0.0
    prev_side: str | None = None
    max_tokens: int | None = None
    tokens_needed: int | None = None
    local_window: int | None = None


@dataclass(frozen=True)
class Routed:
    """A decision with where its theta came from and the live figures it used."""

    decision: Decision
    theta_source: str  # model | tracker | config | artifact | default
    estimates: EstimateSnapshot


class RouteController:
    """Operating point + latency prior + live state -> one decision per request.

    ``estimates`` None: live estimates off (the prior alone); ``load`` None: no queue wait."""

    def __init__(
        self,
        point: OperatingPoint,
        prior: LatencyModel,
        *,
        estimates: LiveEstimates | None = None,
        load: LocalLoad | None = None,
    ) -> None:
        self.point, self.prior = point, prior
        self.estimates, self.load = estimates, load
        t = point.target
        self.tracker = (
            QuantileTracker(t.share, t.bounds, t.window, t.min_samples) if t is not None else None
        )

    def theta(self) -> tuple[float, str]:
        """The theta in force for a steered request, and its source."""
        if self.tracker is not None:
            q = self.tracker.theta()
            if q is not None:
                return q, "tracker"
        return self.point.theta, self.point.theta_from

    def current_estimates(self) -> EstimateSnapshot:
        return self.estimates.snapshot(self.prior) if self.estimates is not None else NO_ESTIMATES

    def decide(
        self,
        req: RequestInputs,
        *,
        theta: float | None = None,
        alpha: float | None = None,
        estimates: EstimateSnapshot | None = None,
        steer: bool = True,
    ) -> Routed:
        """Decide one request. ``theta``/``alpha``: per-request overrides (RouteLLM's
        ``router-<name>-<theta>[-alpha<a>]``: a theta alone applies to p alone). ``estimates``:
        the live figures to use (the replay of a served request); default: the current ones.
        ``steer`` False: a request the target tracker neither steers nor observes."""
        snap = self.current_estimates() if estimates is None else estimates
        model = snap.apply(self.prior)
        lr_local = response_tokens(model.local.mean_response_tokens, req.max_tokens)
        lr_cloud = response_tokens(model.cloud.mean_response_tokens, req.max_tokens)
        wait = 0.0
        if self.load is not None:
            service = model.t_local(float(req.prompt_words), response_tokens=lr_local)
            wait = self.load.wait_s(service)
        named = theta is not None and alpha is None
        a = 0.0 if named else (self.point.alpha if alpha is None else float(alpha))
        if theta is not None:
            th, src = float(theta), "model"
        elif steer:
            th, src = self.theta()
        else:
            th, src = self.point.theta, self.point.theta_from
        d = decide_one(
            req.p,
            th,
            a,
            req.prompt_words,
            req.context_words,
            req.prev_side,
            model,
            local_wait_s=wait,
            response_local=lr_local,
            response_cloud=lr_cloud,
            tokens_needed=req.tokens_needed,
            local_window=req.local_window,
        )
        if named:
            shift = self.point.alpha * (d.t_cloud - d.t_local)
            d = dataclasses.replace(
                d,
                reason=f"{d.reason}; theta from the model name applies to p alone "
                f"(latency term alpha (T_e-T_s) = {shift:+.3f} not applied)",
            )
        if steer and theta is None and self.tracker is not None:
            self.tracker.observe(d.fused_load_free, d.side == "cloud")
        return Routed(d, src, snap)

    def state(self) -> dict[str, Any]:
        """The operating point and the tracker's state (for /healthz and the report)."""
        th, src = self.theta()
        return {
            "operating_point": self.point.to_dict(),
            "theta": th,
            "theta_source": src,
            "tracker": self.tracker.state() if self.tracker is not None else None,
        }


@dataclass(frozen=True)
class Replay:
    """Per row, in arrival order: the side (1 = cloud), p~, theta and T_s/T_e used."""

    decision: np.ndarray
    fused: np.ndarray
    theta: np.ndarray
    t_local: np.ndarray
    t_cloud: np.ndarray

    @property
    def cloud_share(self) -> float:
        return float(self.decision.mean()) if self.decision.size else math.nan


def replay(
    controller: RouteController,
    p: np.ndarray,
    prompt_words: np.ndarray,
    context_words: np.ndarray | None = None,
    max_tokens: int | None = None,
) -> Replay:
    """Every row through :meth:`RouteController.decide`, in order (the tracker updates online,
    as in the server; no live latency estimates and no queue: the prior's figures)."""
    n = len(p)
    ct = np.zeros(n) if context_words is None else np.asarray(context_words, float)
    out = np.zeros((5, n))
    for i in range(n):
        r = controller.decide(
            RequestInputs(float(p[i]), float(prompt_words[i]), float(ct[i]), max_tokens=max_tokens)
        )
        d = r.decision
        out[:, i] = (d.side == "cloud", d.fused, d.theta, d.t_local, d.t_cloud)
    return Replay(out[0].astype(np.int8), out[1], out[2], out[3], out[4])
