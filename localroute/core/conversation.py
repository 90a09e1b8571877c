"""Multi-turn replay (seed 001, Fig. 6): route every turn of every conversation in order.

A conversation that changes model pays for it: the new side has never seen the context and must
re-prefill it (eq. 1). Replaying turn by turn, with the decision made by a policy that sees (or,
for the "w/o context" baseline, ignores) that switch cost, prices what context awareness saves.
Turns at the same position in different conversations are independent, so each wave is one
vectorised step; only the waves run in sequence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from localroute.core.latency import LatencyModel, realised_total
from localroute.core.sides import CLOUD, LOCAL, BoolArray, FloatArray, nonneg

IntArray = NDArray[np.int64]


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
    lp = nonneg(prompt_tokens, "prompt_tokens")
    lr = nonneg(response_tokens, "response_tokens")
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
"""Maps a :class:`TurnView` to one decision per row (LOCAL = 0 or CLOUD = 1); see
:func:`localroute.core.policy.fusion_policy`."""


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
    lp = nonneg(prompt_tokens, "prompt_tokens")
    lr = nonneg(response_tokens, "response_tokens")
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
            raise ValueError(
                f"policy must return {rows.size} decisions, each LOCAL (0) or CLOUD (1)"
            )
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
