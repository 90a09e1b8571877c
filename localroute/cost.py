"""Seed 001's latency cost model (section II, eqs. 1-12), its fusion rule, and per-query accounting.

Why this module exists: a router that only scores quality sends easy queries to the cloud even
when the round trip costs more than it saves, and in a conversation it ignores that changing
model forces the new side to re-prefill the whole context. The paper's cost model prices both;
here it is vectorised over numpy arrays so the same code replays a whole corpus offline and
prices one request online.

Conventions (as in the paper, and in :mod:`localroute.metrics`):

* ``p`` = P(the query needs the cloud model); a higher ``p`` leans to the cloud.
* A decision ``d`` is ``LOCAL = 1`` (the small on-device model, the paper's *s*) or ``CLOUD = 0``
  (the large edge/cloud model, the paper's *e*), exactly as ``d_t`` in eq. 8 and eq. 12.
* Token counts are floats (the paper approximates tokens by whitespace words, so they need not
  be integers). Times are seconds. Link bandwidth is in tokens/s (see :func:`mbit_s_to_tokens_s`).
* A missing figure is NaN (``None`` becomes NaN on input), never 0, and NaN propagates through
  every formula. A NaN fused score never satisfies ``p~ <= theta``, so it routes to the cloud,
  the side that keeps quality when nothing is known.
* Parameter values (Table I, network links) live in ``configs/links.yaml`` as named profiles,
  not as constants in code, each with its source and provenance.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import yaml
from numpy.typing import ArrayLike, NDArray

from localroute.errors import ConfigError

__all__ = [
    "CLOUD",
    "DEFAULT_BYTES_PER_TOKEN",
    "LOCAL",
    "PROVENANCES",
    "CostConfigError",
    "LatencyModel",
    "LatencyPreset",
    "LinkProfile",
    "Policy",
    "ReplayResult",
    "RouteResult",
    "SideLatency",
    "TurnView",
    "UnknownProfileError",
    "Workload",
    "conversation_context",
    "decide",
    "dollar_cost",
    "flops",
    "fused_score",
    "fusion_policy",
    "get_link",
    "get_preset",
    "load_latency_model",
    "load_latency_presets",
    "load_link_profiles",
    "mbit_s_to_tokens_s",
    "realised_total",
    "replay_conversations",
    "reprefill_tokens",
    "t_comm_cloud",
    "t_comm_local",
    "t_comp",
    "t_gen",
    "t_router",
    "t_total_cloud",
    "t_total_local",
    "tokens_s_to_mbit_s",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

LOCAL = 1
"""Decision value for the small local model (the paper's d_t = 1, side *s*)."""
CLOUD = 0
"""Decision value for the large cloud/edge model (the paper's d_t = 0, side *e*)."""

Provenance = Literal["published", "estimated", "measured", "calibrated"]
PROVENANCES: tuple[str, ...] = ("published", "estimated", "measured", "calibrated")
"""published: taken from a cited source; estimated: an assumption or judgement; measured: our own
measurement; calibrated: derived from published measurements of a stand-in (e.g. ML.ENERGY)."""

DEFAULT_BYTES_PER_TOKEN = 4.0
"""Bytes on the wire per token. English BPE tokens average about 4 characters (OpenAI's rule of
thumb: 1 token ~ 4 characters of English), and ASCII text is 1 byte per character in UTF-8, so
a prompt sent as a JSON string costs ~4 bytes/token. JSON/HTTP framing, TLS records and non-ASCII
text raise it; streamed (SSE) responses carry a JSON envelope per chunk and can cost 100+ bytes
per token. It is a parameter everywhere because it moves B by that factor."""


class CostConfigError(ConfigError, ValueError):
    """A cost-model value or YAML profile is invalid; the message names the profile and field."""


class UnknownProfileError(CostConfigError, KeyError):
    """A named profile does not exist; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the message; show it as written
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------- small helpers


def _f(x: ArrayLike | None) -> FloatArray:
    """Float array view; ``None`` (also inside lists) becomes NaN so missing never reads as 0."""
    return np.asarray(x, dtype=np.float64)


def _switch(x: ArrayLike) -> BoolArray:
    """Coerce a switch flag (bool or 0/1) to bool; any other value is a caller bug."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_:
        return arr
    num = np.asarray(arr, dtype=np.float64)
    if not np.all((num == 0) | (num == 1)):
        raise ValueError("switch flags must be boolean or 0/1")
    return num == 1


def _nonneg(x: ArrayLike | None, name: str) -> FloatArray:
    """Float array that may hold NaN but no negative number (a negative count is a bug)."""
    arr = _f(x)
    if np.any(arr < 0):  # NaN compares False, so missing values pass through
        raise ValueError(f"{name} must be >= 0 (or NaN when unknown)")
    return arr


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_value(value: Any, where: str, *, strict: bool, allow_nan: bool = False) -> float:
    """Validate one scalar parameter; ``strict`` means > 0, else >= 0. Errors name ``where``."""
    if not _is_number(value):
        raise CostConfigError(f"{where} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    if math.isnan(v):
        if allow_nan:
            return v
        raise CostConfigError(f"{where} must be a number, got NaN")
    if math.isinf(v):
        raise CostConfigError(f"{where} must be finite, got {value!r}")
    if strict and v <= 0:
        raise CostConfigError(f"{where} must be > 0, got {value!r}")
    if not strict and v < 0:
        raise CostConfigError(f"{where} must be >= 0, got {value!r}")
    return v


def _check_provenance(value: Any, where: str) -> None:
    if value not in PROVENANCES:
        raise CostConfigError(f"{where} must be one of {', '.join(PROVENANCES)}; got {value!r}")


# --------------------------------------------------------------------------- units


def mbit_s_to_tokens_s(
    mbit_s: ArrayLike, bytes_per_token: float = DEFAULT_BYTES_PER_TOKEN
) -> FloatArray:
    """Link rate in Mbit/s (SI: 1e6 bit/s, as speed tests report) to tokens/s.

    The paper measures B in tokens/s "by assuming an average number of bits per token"; this is
    that conversion: tokens/s = Mbit/s * 1e6 / (8 * bytes_per_token). It ignores protocol
    overhead beyond what ``bytes_per_token`` absorbs.
    """
    if not bytes_per_token > 0:
        raise ValueError(f"bytes_per_token must be > 0, got {bytes_per_token!r}")
    return _f(mbit_s) * 1e6 / (8.0 * bytes_per_token)


def tokens_s_to_mbit_s(
    tokens_s: ArrayLike, bytes_per_token: float = DEFAULT_BYTES_PER_TOKEN
) -> FloatArray:
    """Inverse of :func:`mbit_s_to_tokens_s`, to show a tokens/s figure as a familiar link rate."""
    if not bytes_per_token > 0:
        raise ValueError(f"bytes_per_token must be > 0, got {bytes_per_token!r}")
    return _f(tokens_s) * 8.0 * bytes_per_token / 1e6


# --------------------------------------------------------------------------- parameter records


@dataclass(frozen=True)
class LinkProfile:
    """One device-to-cloud link: bandwidth B (tokens/s) and fixed overhead delta (s), eq. 3.

    ``bandwidth_tokens_s`` is the download rate (the paper's single B). ``uplink_tokens_s``, when
    set, prices the upload of prompt and context instead: real access links are asymmetric (5G
    uplink is ~10x slower than downlink) and the upload term grows with the context. Left unset,
    eq. 3 is exactly the paper's. ``overhead_s`` stands for message-size-independent delay
    (propagation, handshakes); the profiles in ``configs/links.yaml`` set it to one median RTT,
    i.e. a warm connection (a fresh TLS connection costs 1-2 more RTTs).
    """

    name: str
    bandwidth_tokens_s: float
    overhead_s: float
    source: str = ""
    provenance: Provenance = "estimated"
    uplink_tokens_s: float | None = None
    rtt_s: float | None = None
    bytes_per_token: float | None = None
    bandwidth_mbit_s: float | None = None
    uplink_mbit_s: float | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        where = f"links.{self.name}"
        _check_value(self.bandwidth_tokens_s, f"{where}.bandwidth_tokens_s", strict=True)
        _check_value(self.overhead_s, f"{where}.overhead_s", strict=False)
        for name in ("uplink_tokens_s", "bytes_per_token", "bandwidth_mbit_s", "uplink_mbit_s"):
            value = getattr(self, name)
            if value is not None:
                _check_value(value, f"{where}.{name}", strict=True)
        if self.rtt_s is not None:
            _check_value(self.rtt_s, f"{where}.rtt_s", strict=False)
        _check_provenance(self.provenance, f"{where}.provenance")

    @property
    def upload_tokens_s(self) -> float:
        """Rate used for the upload term of eq. 3 (the paper's B unless an uplink is given)."""
        return self.bandwidth_tokens_s if self.uplink_tokens_s is None else self.uplink_tokens_s


@dataclass(frozen=True)
class SideLatency:
    """Per-token compute time gamma and mean response length of one side (local or cloud).

    The paper uses one gamma for prefill (eq. 1) and decode (eq. 5). Prefill is batched and far
    faster per token than decode on real hardware, so each can be set apart; unset, both fall
    back to ``s_per_token`` and the formulas are the paper's. ``mean_response_tokens`` (L_r bar)
    is a workload property and may be NaN until a workload is chosen; totals then come out NaN.
    """

    name: str
    s_per_token: float
    mean_response_tokens: float = math.nan
    prefill_s_per_token: float | None = None
    decode_s_per_token: float | None = None
    provenance: Provenance = "estimated"
    response_provenance: Provenance = "estimated"
    source: str = ""

    def __post_init__(self) -> None:
        where = f"side {self.name!r}"
        _check_value(self.s_per_token, f"{where}: s_per_token", strict=True)
        for name in ("prefill_s_per_token", "decode_s_per_token"):
            value = getattr(self, name)
            if value is not None:
                _check_value(value, f"{where}: {name}", strict=True)
        _check_value(
            self.mean_response_tokens,
            f"{where}: mean_response_tokens",
            strict=False,
            allow_nan=True,
        )
        _check_provenance(self.provenance, f"{where}: provenance")
        _check_provenance(self.response_provenance, f"{where}: response_provenance")

    @property
    def prefill(self) -> float:
        """gamma for eq. 1 (prefill of prompt and re-prefilled context)."""
        return self.s_per_token if self.prefill_s_per_token is None else self.prefill_s_per_token

    @property
    def decode(self) -> float:
        """gamma for eq. 5 (decode of the response)."""
        return self.s_per_token if self.decode_s_per_token is None else self.decode_s_per_token

    def with_response(self, tokens: float, provenance: Provenance) -> SideLatency:
        """Copy with L_r bar set, e.g. from a benchmark table or the measured outcome table."""
        return dataclasses.replace(
            self, mean_response_tokens=tokens, response_provenance=provenance
        )


# --------------------------------------------------------------------------- eqs. 1-8


def reprefill_tokens(context_tokens: ArrayLike, switch: ArrayLike) -> FloatArray:
    """Delta C_t of eq. 1: the whole context C_t when this turn switches model, else 0.

    Staying on a model reuses its KV cache, so only the new prompt is prefilled; switching means
    the other model has never seen (this part of) the conversation.
    """
    return np.where(_switch(switch), _nonneg(context_tokens, "context_tokens"), 0.0)


def t_comp(
    s_per_token: ArrayLike, prompt_tokens: ArrayLike, reprefill: ArrayLike = 0.0
) -> FloatArray:
    """Eq. 1: T_comp^k = gamma_k (Delta C_t + L_p), prefill of the prompt plus any re-prefill."""
    return _f(s_per_token) * (_nonneg(reprefill, "reprefill") + _nonneg(prompt_tokens, "prompt"))


def t_comm_local(prompt_tokens: ArrayLike) -> FloatArray:
    """Eq. 2: T_comm^s = 0; nothing leaves the device (shaped like ``prompt_tokens``)."""
    return np.zeros_like(_f(prompt_tokens))


def t_comm_cloud(
    prompt_tokens: ArrayLike,
    context_tokens: ArrayLike,
    response_tokens: ArrayLike,
    link: LinkProfile,
) -> FloatArray:
    """Eq. 3: T_comm^e = (C_t + L_p)/B + delta + L_r^e/B (upload, overhead, download).

    The whole context is uploaded every cloud turn (a stateless chat API), not only on a switch.
    """
    up = _nonneg(context_tokens, "context_tokens") + _nonneg(prompt_tokens, "prompt_tokens")
    down = _nonneg(response_tokens, "response_tokens")
    return up / link.upload_tokens_s + link.overhead_s + down / link.bandwidth_tokens_s


def t_router(
    router_s_per_token: ArrayLike, prompt_tokens: ArrayLike, context_tokens: ArrayLike
) -> FloatArray:
    """Eq. 4: T_router = tau_r (C_t + L_p); paid on both paths, so it cancels in T_e - T_s."""
    ct = _nonneg(context_tokens, "context_tokens")
    return _f(router_s_per_token) * (ct + _nonneg(prompt_tokens, "prompt_tokens"))


def t_gen(s_per_token: ArrayLike, response_tokens: ArrayLike) -> FloatArray:
    """Eq. 5: T_gen^k = gamma_k L_r^k, decode time of the response."""
    return _f(s_per_token) * _nonneg(response_tokens, "response_tokens")


def t_total_local(
    side: SideLatency,
    prompt_tokens: ArrayLike,
    context_tokens: ArrayLike = 0.0,
    switch: ArrayLike = False,
    *,
    router_s_per_token: float = 0.0,
    reprefill: ArrayLike | None = None,
    response_tokens: ArrayLike | None = None,
) -> FloatArray:
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
) -> FloatArray:
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
    """Eq. 8: T_total = d T_total^s + (1 - d) T_total^e, the latency of the side actually taken.

    Written as a selection rather than a weighted sum so a NaN on the side not taken does not
    poison the result.
    """
    return np.where(_switch(decision), _f(t_local), _f(t_cloud))


# --------------------------------------------------------------------------- eqs. 11-12


def fused_score(
    p: ArrayLike, alpha: ArrayLike, t_local: ArrayLike, t_cloud: ArrayLike
) -> FloatArray:
    """Eq. 11: p~ = p - alpha (T_total^e - T_total^s).

    A slow cloud path (T_e > T_s) lowers the cloud score and pulls the query local; alpha (per
    second) sets how much one second of latency is worth in probability.
    """
    return _f(p) - _f(alpha) * (_f(t_cloud) - _f(t_local))


def decide(fused: ArrayLike, theta: ArrayLike) -> NDArray[np.int8]:
    """Eq. 12: d = LOCAL (1) iff p~ <= theta, else CLOUD (0); NaN p~ goes to the cloud."""
    return (_f(fused) <= _f(theta)).astype(np.int8)


class RouteResult(NamedTuple):
    """One routing pass: the decision and every modelled quantity behind it."""

    decision: NDArray[np.int8]
    fused: FloatArray
    t_local: FloatArray
    t_cloud: FloatArray
    realised: FloatArray


@dataclass(frozen=True)
class LatencyModel:
    """Both sides, the link and the router time: everything eqs. 1-8 need for one deployment."""

    local: SideLatency
    cloud: SideLatency
    link: LinkProfile
    router_s_per_token: float = 0.0
    router_provenance: Provenance = "estimated"

    def __post_init__(self) -> None:
        _check_value(self.router_s_per_token, "router_s_per_token", strict=False)
        _check_provenance(self.router_provenance, "router_provenance")

    def t_local(
        self,
        prompt_tokens: ArrayLike,
        context_tokens: ArrayLike = 0.0,
        switch: ArrayLike = False,
        *,
        reprefill: ArrayLike | None = None,
        response_tokens: ArrayLike | None = None,
    ) -> FloatArray:
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
    ) -> FloatArray:
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
    ) -> FloatArray:
        """T_total^e - T_total^s, the latency term that eq. 11 weighs by alpha."""
        return self.t_cloud(prompt_tokens, context_tokens, switch_cloud) - self.t_local(
            prompt_tokens, context_tokens, switch_local
        )

    def route(
        self,
        p: ArrayLike,
        alpha: float,
        theta: float,
        prompt_tokens: ArrayLike,
        context_tokens: ArrayLike = 0.0,
        switch_local: ArrayLike = False,
        switch_cloud: ArrayLike = False,
    ) -> RouteResult:
        """Eqs. 6-8 and 11-12 in one call, for a batch of independent queries."""
        tl = self.t_local(prompt_tokens, context_tokens, switch_local)
        tc = self.t_cloud(prompt_tokens, context_tokens, switch_cloud)
        fused = fused_score(p, alpha, tl, tc)
        d = decide(fused, theta)
        return RouteResult(d, fused, tl, tc, realised_total(d, tl, tc))


# --------------------------------------------------------------------------- multi-turn replay


def _conversation_order(
    conversation_id: ArrayLike, turn: ArrayLike
) -> tuple[IntArray, IntArray, IntArray, int]:
    """Conversation codes, row order sorted by (conversation, turn), rank of each row, #convs."""
    conv = np.asarray(conversation_id)
    tr = np.asarray(turn)
    if conv.ndim != 1 or tr.shape != conv.shape:
        raise ValueError("conversation_id and turn must be 1-D arrays of the same length")
    if conv.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, 0
    _, codes = np.unique(conv, return_inverse=True)
    codes = codes.reshape(-1).astype(np.int64)
    order = np.lexsort((tr, codes)).astype(np.int64)
    sc, st = codes[order], tr[order]
    same_conv = np.r_[False, sc[1:] == sc[:-1]]
    if np.any(same_conv & np.r_[False, st[1:] == st[:-1]]):
        raise ValueError("duplicate (conversation_id, turn) pairs")
    n = conv.size
    start = np.maximum.accumulate(np.where(same_conv, 0, np.arange(n)))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - start
    return codes, order, rank, int(codes.max()) + 1


def conversation_context(
    conversation_id: ArrayLike,
    turn: ArrayLike,
    prompt_tokens: ArrayLike,
    response_tokens: ArrayLike,
) -> FloatArray:
    """C_t per row: the prompt and response tokens of all earlier turns of its conversation.

    ``response_tokens`` is the recorded reply to each turn's prompt (e.g. MT-Bench-101's gold
    history), which later turns carry as context whichever model would have answered. Rows may
    come in any order; turn indices need only be unique and ordered within a conversation.
    """
    codes, order, rank, _ = _conversation_order(conversation_id, turn)
    lp = _nonneg(prompt_tokens, "prompt_tokens")
    lr = _nonneg(response_tokens, "response_tokens")
    if lp.shape != codes.shape or lr.shape != codes.shape:
        raise ValueError("prompt_tokens and response_tokens must match conversation_id in length")
    exchange = (lp + lr)[order]
    # A running sum over the sorted rows, less its value where each conversation starts. NaNs are
    # counted apart so a missing length poisons only the later turns of its own conversation.
    missing = np.isnan(exchange)
    known = np.where(missing, 0.0, exchange)
    before = np.cumsum(known) - known
    n_missing = np.cumsum(missing) - missing
    first = np.flatnonzero(rank[order] == 0)
    sizes = np.diff(np.r_[first, exchange.size])
    within = before - np.repeat(before[first], sizes)
    missing_within = n_missing - np.repeat(n_missing[first], sizes)
    ct = np.empty_like(exchange)
    ct[order] = np.where(missing_within > 0, np.nan, within)
    return ct


@dataclass(frozen=True)
class TurnView:
    """What a multi-turn policy sees for one wave: the k-th turn of every conversation.

    ``t_local`` / ``t_cloud`` are the totals the decision should weigh: with the switch cost when
    the replay is context-aware, without it when context-agnostic.
    """

    rows: IntArray
    prompt_tokens: FloatArray
    context_tokens: FloatArray
    switch_if_local: BoolArray
    switch_if_cloud: BoolArray
    t_local: FloatArray
    t_cloud: FloatArray


Policy = Callable[[TurnView], ArrayLike]
"""Maps a :class:`TurnView` to one decision per row (LOCAL = 1 or CLOUD = 0)."""


def fusion_policy(p: ArrayLike, alpha: float, theta: float) -> Policy:
    """The paper's policy (eqs. 11-12) over router scores ``p``, one per row of the replay."""
    scores = _f(p)

    def policy(view: TurnView) -> NDArray[np.int8]:
        return decide(fused_score(scores[view.rows], alpha, view.t_local, view.t_cloud), theta)

    return policy


@dataclass(frozen=True)
class ReplayResult:
    """Per-row outcome of :func:`replay_conversations`, aligned with the input rows."""

    context_tokens: FloatArray
    decision: NDArray[np.int8]
    switched: BoolArray
    reprefill_tokens: FloatArray
    t_local_decided: FloatArray
    t_cloud_decided: FloatArray
    t_local_paid: FloatArray
    t_cloud_paid: FloatArray
    realised: FloatArray

    @property
    def mean_latency_s(self) -> float:
        """Mean realised latency (eq. 8) over all turns."""
        return float(np.mean(self.realised)) if self.realised.size else math.nan

    @property
    def cloud_share(self) -> float:
        """Fraction of turns sent to the cloud (the paper's "LLM usage")."""
        return float(np.mean(self.decision == CLOUD)) if self.decision.size else math.nan


def replay_conversations(
    conversation_id: ArrayLike,
    turn: ArrayLike,
    prompt_tokens: ArrayLike,
    response_tokens: ArrayLike,
    policy: Policy,
    model: LatencyModel,
    *,
    context_aware: bool = True,
    kv_cache: Literal["none", "incremental"] = "none",
) -> ReplayResult:
    """Route every turn of every conversation in order and price it with eqs. 1-8.

    A turn needs a switch on side k when the previous turn of its conversation ran on the other
    side (never on a first turn). Context-aware: the policy sees T_s/T_e including the re-prefill
    of eq. 1. Context-agnostic: the policy sees them with Delta C_t = 0, but the realised latency
    still pays it (the paper's "w/o Context" baseline).

    ``kv_cache="none"`` is eq. 1 as written: a switch re-prefills the whole context. With
    ``"incremental"`` each side keeps the KV cache of the turns it served, so returning to a side
    re-prefills only the context added since it last ran (the paper's Fig. 2, turn 3).

    Turns at the same position in different conversations are independent, so each wave is one
    vectorised step; only the waves run in sequence.
    """
    if kv_cache not in ("none", "incremental"):
        raise ValueError(f"kv_cache must be 'none' or 'incremental', got {kv_cache!r}")
    codes, order, rank, n_conv = _conversation_order(conversation_id, turn)
    lp = _nonneg(prompt_tokens, "prompt_tokens")
    lr = _nonneg(response_tokens, "response_tokens")
    ct = conversation_context(conversation_id, turn, lp, lr)
    n = codes.size

    out = {
        name: np.full(n, np.nan)
        for name in ("reprefill", "tl_dec", "tc_dec", "tl_paid", "tc_paid", "realised")
    }
    decision = np.zeros(n, dtype=np.int8)
    switched = np.zeros(n, dtype=bool)
    prev = np.full(n_conv, -1, dtype=np.int8)
    cached = {LOCAL: np.zeros(n_conv), CLOUD: np.zeros(n_conv)}

    by_rank = order[np.argsort(rank[order], kind="stable")]
    n_waves = int(rank.max()) + 1 if n else 0
    bounds = np.searchsorted(rank[by_rank], np.arange(n_waves + 1))
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        rows = by_rank[lo:hi]
        c, p_side = codes[rows], prev[codes[rows]]
        sw_local, sw_cloud = p_side == CLOUD, p_side == LOCAL
        if kv_cache == "none":
            dct_local = np.where(sw_local, ct[rows], 0.0)
            dct_cloud = np.where(sw_cloud, ct[rows], 0.0)
        else:
            # clip: cumulative sums can leave a -1e-13 where the cache is exactly up to date
            dct_local = np.maximum(ct[rows] - cached[LOCAL][c], 0.0)
            dct_cloud = np.maximum(ct[rows] - cached[CLOUD][c], 0.0)
        tl_paid = model.t_local(lp[rows], ct[rows], reprefill=dct_local)
        tc_paid = model.t_cloud(lp[rows], ct[rows], reprefill=dct_cloud)
        if context_aware:
            tl_dec, tc_dec = tl_paid, tc_paid
        else:
            tl_dec = model.t_local(lp[rows], ct[rows], reprefill=0.0)
            tc_dec = model.t_cloud(lp[rows], ct[rows], reprefill=0.0)
        view = TurnView(rows, lp[rows], ct[rows], sw_local, sw_cloud, tl_dec, tc_dec)
        d = np.asarray(policy(view))
        if d.shape != rows.shape or not np.all((d == LOCAL) | (d == CLOUD)):
            raise ValueError(f"policy must return {rows.size} decisions, each 0 or 1")
        d = d.astype(np.int8)
        is_local = d == LOCAL
        decision[rows] = d
        switched[rows] = (p_side >= 0) & (p_side != d)
        out["reprefill"][rows] = np.where(is_local, dct_local, dct_cloud)
        out["tl_dec"][rows], out["tc_dec"][rows] = tl_dec, tc_dec
        out["tl_paid"][rows], out["tc_paid"][rows] = tl_paid, tc_paid
        out["realised"][rows] = realised_total(d, tl_paid, tc_paid)
        prev[c] = d
        seen = ct[rows] + lp[rows] + lr[rows]  # the side that ran now holds all of it in cache
        cached[LOCAL][c] = np.where(is_local, seen, cached[LOCAL][c])
        cached[CLOUD][c] = np.where(is_local, cached[CLOUD][c], seen)

    return ReplayResult(
        context_tokens=ct,
        decision=decision,
        switched=switched,
        reprefill_tokens=out["reprefill"],
        t_local_decided=out["tl_dec"],
        t_cloud_decided=out["tc_dec"],
        t_local_paid=out["tl_paid"],
        t_cloud_paid=out["tc_paid"],
        realised=out["realised"],
    )


# --------------------------------------------------------------------------- accounting


def flops(params_b: ArrayLike, tokens: ArrayLike) -> FloatArray:
    """Forward-pass compute, FLOPs ~ 2 x parameters x tokens (``params_b`` in billions).

    The standard dense-transformer approximation (one multiply-add per weight per token); it
    ignores attention's context-length term, so it undercounts long contexts.
    """
    return 2.0 * _nonneg(params_b, "params_b") * 1e9 * _nonneg(tokens, "tokens")


def dollar_cost(
    tokens_in: ArrayLike,
    tokens_out: ArrayLike,
    price_in_per_m: ArrayLike,
    price_out_per_m: ArrayLike,
) -> FloatArray:
    """API cost in dollars from token counts and prices per million tokens (NaN if any unknown)."""
    cin = _nonneg(tokens_in, "tokens_in") * _nonneg(price_in_per_m, "price_in_per_m")
    cout = _nonneg(tokens_out, "tokens_out") * _nonneg(price_out_per_m, "price_out_per_m")
    return (cin + cout) / 1e6


# --------------------------------------------------------------------------- YAML profiles

_TOP_KEYS = {"links", "latency_models"}
_LINK_KEYS = {
    "bandwidth_tokens_s",
    "bandwidth_mbit_s",
    "uplink_tokens_s",
    "uplink_mbit_s",
    "bytes_per_token",
    "overhead_s",
    "rtt_s",
    "source",
    "provenance",
    "notes",
}
_SIDE_KEYS = {
    "name",
    "s_per_token",
    "prefill_s_per_token",
    "decode_s_per_token",
    "provenance",
    "source",
}
_PRESET_KEYS = {
    "link",
    "local",
    "cloud",
    "router_s_per_token",
    "router_provenance",
    "router_source",
    "workloads",
    "workloads_source",
    "workloads_provenance",
    "notes",
}
_WORKLOAD_KEYS = {"local_response_tokens", "cloud_response_tokens", "alpha"}


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``2e7`` / ``2.0e7`` as floats.

    PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent (``2.0e+7``), so
    ``2.0e7`` would load as the string "2.0e7"; YAML 1.2 and every reader of this file expect a
    number.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise CostConfigError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    try:
        doc = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as exc:
        raise CostConfigError(f"{p}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise CostConfigError(f"{p}: expected a mapping with a 'links' section")
    _check_keys(doc, _TOP_KEYS, str(p))
    return doc


def _check_keys(spec: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in spec if k not in allowed)
    if unknown:
        raise CostConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _section(doc: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    sec = doc.get(key)
    if not isinstance(sec, dict) or not sec:
        raise CostConfigError(f"{where}: '{key}' must be a non-empty mapping of named profiles")
    for name in sec:
        if not isinstance(name, str):
            raise CostConfigError(f"{where}: {key} profile names must be strings, got {name!r}")
    return sec


def _mapping(spec: Any, where: str) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise CostConfigError(f"{where} must be a mapping, got {type(spec).__name__}")
    return spec


def _req(spec: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in spec or spec[key] is None:
        raise CostConfigError(f"{where}.{key} is required")
    return spec[key]


def _text(spec: Mapping[str, Any], key: str, where: str, *, required: bool) -> str:
    value = _req(spec, key, where) if required else spec.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise CostConfigError(f"{where}.{key} must be a non-empty string, got {value!r}")
    return value


def _opt_num(spec: Mapping[str, Any], key: str, where: str, *, strict: bool) -> float | None:
    if spec.get(key) is None:
        return None
    return _check_value(spec[key], f"{where}.{key}", strict=strict)


def _parse_link(name: str, raw: Any) -> LinkProfile:
    where = f"links.{name}"
    spec = _mapping(raw, where)
    _check_keys(spec, _LINK_KEYS, where)
    bpt = _opt_num(spec, "bytes_per_token", where, strict=True)

    def rate(tokens_key: str, mbit_key: str, required: bool) -> tuple[float | None, float | None]:
        has_tok, has_mbit = spec.get(tokens_key) is not None, spec.get(mbit_key) is not None
        if has_tok and has_mbit:
            raise CostConfigError(f"{where}: give {tokens_key} or {mbit_key}, not both")
        if has_mbit:
            mbit = _check_value(spec[mbit_key], f"{where}.{mbit_key}", strict=True)
            per = DEFAULT_BYTES_PER_TOKEN if bpt is None else bpt
            return float(mbit_s_to_tokens_s(mbit, per)), mbit
        if has_tok:
            return _check_value(spec[tokens_key], f"{where}.{tokens_key}", strict=True), None
        if required:
            raise CostConfigError(f"{where}.{tokens_key} (or {mbit_key}) is required")
        return None, None

    down, down_mbit = rate("bandwidth_tokens_s", "bandwidth_mbit_s", required=True)
    up, up_mbit = rate("uplink_tokens_s", "uplink_mbit_s", required=False)
    uses_mbit = down_mbit is not None or up_mbit is not None
    assert down is not None  # rate(..., required=True) raised otherwise
    return LinkProfile(
        name=name,
        bandwidth_tokens_s=down,
        overhead_s=_check_value(
            _req(spec, "overhead_s", where), f"{where}.overhead_s", strict=False
        ),
        source=_text(spec, "source", where, required=True),
        provenance=_req(spec, "provenance", where),
        uplink_tokens_s=up,
        rtt_s=_opt_num(spec, "rtt_s", where, strict=False),
        bytes_per_token=(DEFAULT_BYTES_PER_TOKEN if bpt is None and uses_mbit else bpt),
        bandwidth_mbit_s=down_mbit,
        uplink_mbit_s=up_mbit,
        notes=_text(spec, "notes", where, required=False),
    )


def load_link_profiles(path: str | Path) -> dict[str, LinkProfile]:
    """Read the ``links:`` section of a YAML file into validated :class:`LinkProfile` objects.

    Each profile gives ``bandwidth_tokens_s`` or ``bandwidth_mbit_s`` (converted with
    ``bytes_per_token``, default 4), optionally an uplink the same way, ``overhead_s``, ``source``
    and ``provenance``. Errors name the profile and field, e.g. ``links.lte.overhead_s``.
    """
    doc = _read_yaml(path)
    return {name: _parse_link(name, raw) for name, raw in _section(doc, "links", str(path)).items()}


def get_link(name: str, profiles: Mapping[str, LinkProfile]) -> LinkProfile:
    """The profile called ``name``; an unknown name raises listing the known ones."""
    try:
        return profiles[name]
    except KeyError:
        known = ", ".join(sorted(profiles)) or "(none)"
        raise UnknownProfileError(f"unknown link profile {name!r}; known: {known}") from None


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


def _parse_side(raw: Any, where: str) -> SideLatency:
    spec = _mapping(raw, where)
    _check_keys(spec, _SIDE_KEYS, where)
    provenance = _req(spec, "provenance", where)
    _check_provenance(provenance, f"{where}.provenance")
    return SideLatency(
        name=_text(spec, "name", where, required=True),
        s_per_token=_check_value(
            _req(spec, "s_per_token", where), f"{where}.s_per_token", strict=True
        ),
        prefill_s_per_token=_opt_num(spec, "prefill_s_per_token", where, strict=True),
        decode_s_per_token=_opt_num(spec, "decode_s_per_token", where, strict=True),
        provenance=provenance,
        source=_text(spec, "source", where, required=True),
    )


def _parse_preset(name: str, raw: Any) -> LatencyPreset:
    where = f"latency_models.{name}"
    spec = _mapping(raw, where)
    _check_keys(spec, _PRESET_KEYS, where)
    workloads: dict[str, Workload] = {}
    for wname, wraw in _mapping(spec.get("workloads") or {}, f"{where}.workloads").items():
        wwhere = f"{where}.workloads.{wname}"
        wspec = _mapping(wraw, wwhere)
        _check_keys(wspec, _WORKLOAD_KEYS, wwhere)
        workloads[str(wname)] = Workload(
            local_response_tokens=_check_value(
                _req(wspec, "local_response_tokens", wwhere),
                f"{wwhere}.local_response_tokens",
                strict=False,
            ),
            cloud_response_tokens=_check_value(
                _req(wspec, "cloud_response_tokens", wwhere),
                f"{wwhere}.cloud_response_tokens",
                strict=False,
            ),
            alpha=_opt_num(wspec, "alpha", wwhere, strict=False),
        )
    router_prov = spec.get("router_provenance", "estimated")
    _check_provenance(router_prov, f"{where}.router_provenance")
    wl_prov = spec.get("workloads_provenance", "published")
    _check_provenance(wl_prov, f"{where}.workloads_provenance")
    return LatencyPreset(
        name=name,
        link=_text(spec, "link", where, required=True),
        local=_parse_side(_req(spec, "local", where), f"{where}.local"),
        cloud=_parse_side(_req(spec, "cloud", where), f"{where}.cloud"),
        router_s_per_token=_check_value(
            spec.get("router_s_per_token", 0.0), f"{where}.router_s_per_token", strict=False
        ),
        router_provenance=router_prov,
        workloads=workloads,
        workloads_provenance=wl_prov,
        router_source=_text(spec, "router_source", where, required=False),
        workloads_source=_text(spec, "workloads_source", where, required=False),
        notes=_text(spec, "notes", where, required=False),
    )


def load_latency_presets(path: str | Path) -> dict[str, LatencyPreset]:
    """Read the ``latency_models:`` section (per-token times, router time, workloads)."""
    doc = _read_yaml(path)
    sec = _section(doc, "latency_models", str(path))
    return {name: _parse_preset(name, raw) for name, raw in sec.items()}


def get_preset(name: str, presets: Mapping[str, LatencyPreset]) -> LatencyPreset:
    """The preset called ``name``; an unknown name raises listing the known ones."""
    try:
        return presets[name]
    except KeyError:
        known = ", ".join(sorted(presets)) or "(none)"
        raise UnknownProfileError(f"unknown latency model {name!r}; known: {known}") from None


def load_latency_model(
    path: str | Path,
    preset: str,
    workload: str,
    link: str | LinkProfile | None = None,
) -> LatencyModel:
    """One ready :class:`LatencyModel` from a YAML file: preset x workload x link.

    ``link`` defaults to the preset's own link (e.g. Table I's B and delta); pass a profile name
    from the same file, or a :class:`LinkProfile`, to replay the paper's models over another link.
    """
    chosen = get_preset(preset, load_latency_presets(path))
    if not isinstance(link, LinkProfile):
        link = get_link(chosen.link if link is None else link, load_link_profiles(path))
    return chosen.model(workload, link)
