"""The routing policy (seed 001, eqs. 11-12): the one place a score becomes a decision.

p~ = p - alpha (T_e - T_s + ...); go local when p~ <= theta. ``p`` is the router's calibrated
P(needs cloud); alpha (per second) says how much one second of latency gap is worth in
probability. Online, T_s also carries the local deployment's expected queueing wait, so a busy
local model pushes work to the cloud and a drained queue pulls it back.

Evaluation (vectorised :func:`route`, the multi-turn replay through :func:`fusion_policy`, the
threshold sweep through :func:`fused_score`) and serving (scalar :func:`decide_one`) all call
this module, so the decision a user is shown in the report is the one the server makes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from localroute.core.latency import LatencyModel, realised_total
from localroute.core.sides import CLOUD, LOCAL, FloatArray, as_float, side_name


def fused_score(p: ArrayLike, alpha: ArrayLike, t_local: ArrayLike, t_cloud: ArrayLike) -> Any:
    """Eq. 11: p~ = p - alpha (T_total^e - T_total^s).

    A slow cloud path (T_e > T_s) lowers the cloud score and pulls the query local. Floats in,
    a float out (one request); arrays in, an array out.
    """
    if all(type(x) is float or type(x) is int for x in (p, alpha, t_local, t_cloud)):
        return p - alpha * (t_cloud - t_local)
    return as_float(p) - as_float(alpha) * (as_float(t_cloud) - as_float(t_local))


def decide(fused: ArrayLike, theta: ArrayLike) -> NDArray[np.int8]:
    """Eq. 12: LOCAL (0) iff p~ <= theta, else CLOUD (1); a NaN p~ goes to the cloud, the side
    that keeps quality when nothing is known."""
    return np.where(as_float(fused) <= as_float(theta), LOCAL, CLOUD).astype(np.int8)


def goes_local(fused: float, theta: float) -> bool:
    """Eq. 12 for one request (NaN compares False: cloud)."""
    return fused <= theta


class RouteResult(NamedTuple):
    """One routing pass: the decision and every modelled quantity behind it."""

    decision: NDArray[np.int8]
    fused: FloatArray
    t_local: FloatArray
    t_cloud: FloatArray
    realised: FloatArray


def route(
    model: LatencyModel,
    p: ArrayLike,
    alpha: float,
    theta: float,
    prompt_tokens: ArrayLike,
    context_tokens: ArrayLike = 0.0,
    switch_local: ArrayLike = False,
    switch_cloud: ArrayLike = False,
    local_wait_s: ArrayLike = 0.0,
) -> RouteResult:
    """Eqs. 6-8 and 11-12 for a batch of independent queries."""
    tl = as_float(model.t_local(prompt_tokens, context_tokens, switch_local)) + as_float(
        local_wait_s
    )
    tc = as_float(model.t_cloud(prompt_tokens, context_tokens, switch_cloud))
    fused = fused_score(p, alpha, tl, tc)
    d = decide(fused, theta)
    return RouteResult(d, fused, tl, tc, realised_total(d, tl, tc))


def fusion_policy(p: ArrayLike, alpha: float, theta: float) -> Callable[[Any], NDArray[np.int8]]:
    """Eqs. 11-12 as a multi-turn replay policy over router scores ``p`` (one per replay row):
    each wave's view carries the rows and the T_s/T_e the decision should weigh."""
    scores = as_float(p)

    def policy(view: Any) -> NDArray[np.int8]:
        return decide(fused_score(scores[view.rows], alpha, view.t_local, view.t_cloud), theta)

    return policy


def theta_for_share(scores: ArrayLike, share: float, *, presorted: bool = False) -> float:
    """The one rule for "theta that sends ``share`` of these scores to the cloud", used by
    training (on validation scores) and by the online tracker (on a window of live ones).

    theta is the k-th smallest score, k = ceil((1 - share) n): at most ``share`` n scores lie
    strictly above it (cloud, since p~ <= theta goes local). share 1: just below the smallest."""
    s = scores if presorted else np.sort(as_float(scores)[~np.isnan(as_float(scores))])
    n = len(s)
    if n == 0:
        return math.nan
    k = math.ceil((1.0 - float(share)) * n - 1e-9)
    if k <= 0:
        return float(s[0]) - 1e-9
    return float(s[min(k, n) - 1])


def p_sensitivity(p: ArrayLike, alpha: float, gap: ArrayLike, theta: float) -> float:
    """The share of decisions that change when p is replaced by its mean at (alpha, theta): near
    0 means the latency term alone decides (the router's score does not matter there)."""
    p = as_float(p)
    if p.size == 0:
        return math.nan
    gap = as_float(gap)
    with_p = decide(p - alpha * gap, theta)
    without = decide(np.full_like(p, float(np.mean(p))) - alpha * gap, theta)
    return float(np.mean(with_p != without))


@dataclass(frozen=True)
class Decision:
    """One request's decision and every term behind it (the server's decision headers)."""

    side: str  # "local" | "cloud"
    p: float
    fused: float
    theta: float
    alpha: float
    t_local: float  # T_s including the local queue's wait
    t_cloud: float
    prev_side: str | None
    reason: str
    prompt_words: int = 0
    context_words: int = 0
    local_wait_s: float = 0.0
    fused_load_free: float = math.nan  # p~ without the queue's wait: what a target tracks
    fits_local: bool = True


def decide_one(
    p: float,
    theta: float,
    alpha: float,
    prompt_words: float,
    context_words: float,
    prev_side: str | None,
    model: LatencyModel,
    *,
    local_wait_s: float = 0.0,
    response_local: float | None = None,
    response_cloud: float | None = None,
    tokens_needed: int | None = None,
    local_window: int | None = None,
) -> Decision:
    """Eqs. 6-7 with the switch cost of eq. 1, the local queue wait and per-request answer
    lengths, then eqs. 11-12; a conversation whose ``tokens_needed`` (prompt, history and reply)
    exceed the local model's ``local_window`` goes to the cloud whatever p~ says: the context
    window is an input of the rule, reported in the reason.

    Going local after a cloud turn re-prefills the context locally (and vice versa): the side
    that did not answer the last turn holds none of its KV cache.
    """
    prompt, context = float(prompt_words), float(context_words)
    tl0 = model.t_local(prompt, context, prev_side == "cloud", response_tokens=response_local)
    tc = model.t_cloud(prompt, context, prev_side == "local", response_tokens=response_cloud)
    tl = tl0 + float(local_wait_s)
    fused = fused_score(float(p), float(alpha), tl, tc)
    load_free = fused_score(float(p), float(alpha), tl0, tc)
    fits_local = not (local_window and tokens_needed and tokens_needed > local_window)
    local = fits_local and goes_local(fused, theta)
    side = side_name(LOCAL if local else CLOUD)
    if math.isnan(fused):
        reason = "fused score unknown (NaN): cloud keeps quality"
    else:
        op = "<=" if goes_local(fused, theta) else ">"
        reason = f"p~ {fused:.3f} {op} theta {theta:.3f} (p {p:.3f}, T_e-T_s {tc - tl:+.3f}s"
        reason += f", local wait {local_wait_s:.3f}s)" if local_wait_s else ")"
    if not fits_local:
        reason = (
            f"~{tokens_needed} tokens exceed the local context window of {local_window}: "
            f"cloud, no local attempt (fusion: {reason})"
        )
    if prev_side is not None:
        if prev_side != side:
            reason += f"; switch from {prev_side}: re-prefill {context_words:g} context words"
        else:
            reason += f"; stays on {side}"
    return Decision(
        side=side,
        p=float(p),
        fused=float(fused),
        theta=float(theta),
        alpha=float(alpha),
        t_local=float(tl),
        t_cloud=float(tc),
        prev_side=prev_side,
        reason=reason,
        prompt_words=int(prompt_words),
        context_words=int(context_words),
        local_wait_s=float(local_wait_s),
        fused_load_free=float(load_free),
        fits_local=bool(fits_local),
    )
