"""Seed 001's latency model (section II, eqs. 1-8): what each side costs a query in seconds.

A router that only scores quality sends easy queries to the cloud even when the round trip costs
more than it saves, and in a conversation it ignores that changing model forces the new side to
re-prefill the whole context. These equations price both. Each is written once and works on
plain floats (one request, no numpy overhead) and on numpy arrays (a whole corpus) alike.
Parameter values (Table I, links) live in ``configs/links.yaml`` (:mod:`localroute.core.profiles`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from localroute.core.sides import (
    FloatArray,
    LinkProfile,
    Provenance,
    SideLatency,
    UnknownProfileError,
    as_float,
    as_switch,
    check_provenance,
    check_value,
    nonneg,
)

Number = Any  # a float for one request, a float array for a batch


def _is_scalar(x: Any) -> bool:
    return type(x) is float or type(x) is int or type(x) is bool


def reprefill_tokens(context_tokens: ArrayLike, switch: ArrayLike) -> Number:
    """Delta C_t of eq. 1: the whole context C_t when this turn switches model, else 0.

    Staying on a model reuses its KV cache, so only the new prompt is prefilled; switching means
    the other model has never seen (this part of) the conversation.
    """
    ct = nonneg(context_tokens, "context_tokens")
    if _is_scalar(switch) and _is_scalar(ct):
        return ct if switch else 0.0
    return np.where(as_switch(switch), ct, 0.0)


def t_comp(s_per_token: ArrayLike, prompt_tokens: ArrayLike, reprefill: ArrayLike = 0.0) -> Number:
    """Eq. 1: T_comp^k = gamma_k (Delta C_t + L_p), prefill of the prompt plus any re-prefill."""
    gamma = s_per_token if _is_scalar(s_per_token) else as_float(s_per_token)
    return gamma * (nonneg(reprefill, "reprefill") + nonneg(prompt_tokens, "prompt"))


def t_comm_local(prompt_tokens: ArrayLike) -> Number:
    """Eq. 2: T_comm^s = 0; nothing leaves the device (shaped like ``prompt_tokens``)."""
    return 0.0 if _is_scalar(prompt_tokens) else np.zeros_like(as_float(prompt_tokens))


def t_comm_cloud(
    prompt_tokens: ArrayLike,
    context_tokens: ArrayLike,
    response_tokens: ArrayLike,
    link: LinkProfile,
) -> Number:
    """Eq. 3: T_comm^e = (C_t + L_p)/B + delta + L_r^e/B (upload, overhead, download).

    The whole context is uploaded every cloud turn (a stateless chat API), not only on a switch.
    """
    up = nonneg(context_tokens, "context_tokens") + nonneg(prompt_tokens, "prompt_tokens")
    down = nonneg(response_tokens, "response_tokens")
    return up / link.upload_tokens_s + link.overhead_s + down / link.bandwidth_tokens_s


def t_router(
    router_s_per_token: ArrayLike, prompt_tokens: ArrayLike, context_tokens: ArrayLike
) -> Number:
    """Eq. 4: T_router = tau_r (C_t + L_p); paid on both paths, so it cancels in T_e - T_s."""
    tau = router_s_per_token if _is_scalar(router_s_per_token) else as_float(router_s_per_token)
    return tau * (nonneg(context_tokens, "context_tokens") + nonneg(prompt_tokens, "prompt_tokens"))


def t_gen(s_per_token: ArrayLike, response_tokens: ArrayLike) -> Number:
    """Eq. 5: T_gen^k = gamma_k L_r^k, decode time of the response."""
    gamma = s_per_token if _is_scalar(s_per_token) else as_float(s_per_token)
    return gamma * nonneg(response_tokens, "response_tokens")


def t_total_local(
    side: SideLatency,
    prompt_tokens: ArrayLike,
    context_tokens: ArrayLike = 0.0,
    switch: ArrayLike = False,
    *,
    router_s_per_token: float = 0.0,
    reprefill: ArrayLike | None = None,
    response_tokens: ArrayLike | None = None,
) -> Number:
    """Eq. 6: T_total^s = T_comp^s + T_router + T_gen^s (no communication term).

    ``reprefill`` overrides Delta C_t (default: all of ``context_tokens`` where ``switch``);
    ``response_tokens`` overrides L_r bar (e.g. a measured per-query length).
    """
    dct = reprefill_tokens(context_tokens, switch) if reprefill is None else reprefill
    lr = side.mean_response_tokens if response_tokens is None else response_tokens
    return (
        t_comp(side.prefill, prompt_tokens, dct)
        + t_comm_local(prompt_tokens)
        + t_router(router_s_per_token, prompt_tokens, context_tokens)
        + t_gen(side.decode, lr)
    )


def t_total_cloud(
    side: SideLatency,
    link: LinkProfile,
    prompt_tokens: ArrayLike,
    context_tokens: ArrayLike = 0.0,
    switch: ArrayLike = False,
    *,
    router_s_per_token: float = 0.0,
    reprefill: ArrayLike | None = None,
    response_tokens: ArrayLike | None = None,
) -> Number:
    """Eq. 7: T_total^e = T_comp^e + T_comm^e + T_router + T_gen^e."""
    dct = reprefill_tokens(context_tokens, switch) if reprefill is None else reprefill
    lr = side.mean_response_tokens if response_tokens is None else response_tokens
    return (
        t_comp(side.prefill, prompt_tokens, dct)
        + t_comm_cloud(prompt_tokens, context_tokens, lr, link)
        + t_router(router_s_per_token, prompt_tokens, context_tokens)
        + t_gen(side.decode, lr)
    )


def realised_total(decision: ArrayLike, t_local: ArrayLike, t_cloud: ArrayLike) -> FloatArray:
    """Eq. 8: the latency of the side actually taken (decision 1 = cloud, 0 = local).

    Written as a selection rather than the paper's weighted sum so a NaN on the side not taken
    does not poison the result.
    """
    return np.where(as_switch(decision), as_float(t_cloud), as_float(t_local))


@dataclass(frozen=True)
class LatencyModel:
    """Both sides, the link and the router time: everything eqs. 1-8 need for one deployment."""

    local: SideLatency
    cloud: SideLatency
    link: LinkProfile
    router_s_per_token: float = 0.0
    router_provenance: Provenance = "estimated"

    def __post_init__(self) -> None:
        check_value(self.router_s_per_token, "router_s_per_token", strict=False)
        check_provenance(self.router_provenance, "router_provenance")

    def t_local(
        self,
        prompt_tokens: ArrayLike,
        context_tokens: ArrayLike = 0.0,
        switch: ArrayLike = False,
        *,
        reprefill: ArrayLike | None = None,
        response_tokens: ArrayLike | None = None,
    ) -> Number:
        """Eq. 6 with this model's parameters; ``switch`` = the previous turn ran in the cloud."""
        return t_total_local(
            self.local,
            prompt_tokens,
            context_tokens,
            switch,
            router_s_per_token=self.router_s_per_token,
            reprefill=reprefill,
            response_tokens=response_tokens,
        )

    def t_cloud(
        self,
        prompt_tokens: ArrayLike,
        context_tokens: ArrayLike = 0.0,
        switch: ArrayLike = False,
        *,
        reprefill: ArrayLike | None = None,
        response_tokens: ArrayLike | None = None,
    ) -> Number:
        """Eq. 7 with this model's parameters; ``switch`` = the previous turn ran locally."""
        return t_total_cloud(
            self.cloud,
            self.link,
            prompt_tokens,
            context_tokens,
            switch,
            router_s_per_token=self.router_s_per_token,
            reprefill=reprefill,
            response_tokens=response_tokens,
        )

    def gap(
        self,
        prompt_tokens: ArrayLike,
        context_tokens: ArrayLike = 0.0,
        switch_local: ArrayLike = False,
        switch_cloud: ArrayLike = False,
    ) -> Number:
        """T_total^e - T_total^s, the latency term that eq. 11 weighs by alpha."""
        return self.t_cloud(prompt_tokens, context_tokens, switch_cloud) - self.t_local(
            prompt_tokens, context_tokens, switch_local
        )


@dataclass(frozen=True)
class Workload:
    """Per-benchmark mean response lengths of each side, and the paper's alpha if it gave one."""

    local_response_tokens: float
    cloud_response_tokens: float
    alpha: float | None = None


@dataclass(frozen=True)
class LatencyPreset:
    """A named parameter set (e.g. the paper's Table I): sides, router time, link, workloads."""

    name: str
    link: str
    local: SideLatency
    cloud: SideLatency
    router_s_per_token: float
    router_provenance: Provenance
    workloads: Mapping[str, Workload] = field(default_factory=dict)
    workloads_provenance: Provenance = "published"
    router_source: str = ""
    workloads_source: str = ""
    notes: str = ""

    def model(self, workload: str, link: LinkProfile) -> LatencyModel:
        """The :class:`LatencyModel` for one workload's response lengths over ``link``."""
        wl = self.workload(workload)
        return LatencyModel(
            local=self.local.with_response(wl.local_response_tokens, self.workloads_provenance),
            cloud=self.cloud.with_response(wl.cloud_response_tokens, self.workloads_provenance),
            link=link,
            router_s_per_token=self.router_s_per_token,
            router_provenance=self.router_provenance,
        )

    def workload(self, name: str) -> Workload:
        """The workload called ``name``; an unknown name raises listing the known ones."""
        try:
            return self.workloads[name]
        except KeyError:
            known = ", ".join(sorted(self.workloads)) or "(none)"
            raise UnknownProfileError(
                f"latency_models.{self.name}: unknown workload {name!r}; known: {known}"
            ) from None
