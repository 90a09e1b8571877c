"""Multi-turn fusion (seed 001, Fig. 6): RouteLLM's per-turn MT-Bench judge scores replayed turn
by turn, with and without context awareness (the re-prefill of eq. 1 when a conversation
switches model), through :func:`localroute.core.conversation.replay_conversations` with
:func:`localroute.core.policy.fusion_policy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.evaluate.config import PairSpec
from pipelines.evaluate.context import EvalContext
from pipelines.evaluate.experiments import resolve_alpha, sides_dict, targets
from pipelines.evaluate.pairs import PairTable, PairTables

MODES = {"context_aware": True, "context_agnostic": False}


@dataclass
class Conversations:
    """The replayed turns: conversation ids, turn numbers, prompt and history lengths."""

    conv: np.ndarray
    turns: np.ndarray
    prompt: np.ndarray
    history: np.ndarray  # the answer length each turn leaves in the context of the next
    context: np.ndarray  # eq. 1's C_t of each turn
    history_source: str


def conversations(table: PairTable) -> Conversations:
    """The history each later turn carries: the recorded answers of the cloud side where
    published, else the local side's, else the cloud side's mean response length."""
    from localroute.core.conversation import conversation_context

    turns = table.col("turn", int)
    lengths = table.lengths.get("cloud") or table.lengths.get("local")
    if lengths is not None:
        hist, source = lengths.words, lengths.label
    else:
        hist = np.full(turns.shape, table.sides["cloud"].mean_response_tokens.f)
        source = "the cloud side's mean response"
    hist = np.where(np.isfinite(hist), hist, np.nanmean(hist))
    conv = np.array(list(table.batch["query_id"]), dtype=object)
    lp = table.col("prompt_words")
    ct = conversation_context(conv, turns, lp, hist)
    return Conversations(conv, turns, lp, hist, ct, source)


def thresholds(p: np.ndarray, alpha: float, table: PairTable, c: Conversations, n: int):
    """A quantile grid over every fused score a turn can have (staying, or switching towards
    either side), plus -inf (all cloud) and +inf (all local)."""
    from localroute.core.policy import fused_score

    lm = table.latency
    f_all = np.concatenate(
        [
            fused_score(
                p,
                alpha,
                lm.t_local(c.prompt, c.context, sw_l),
                lm.t_cloud(c.prompt, c.context, sw_c),
            )
            for sw_l, sw_c in ((False, False), (True, False), (False, True))
        ]
    )
    qs = np.quantile(f_all, np.linspace(0, 1, n))
    return np.unique(np.r_[-np.inf, qs, np.inf])


def replay_curve(
    table: PairTable, p: np.ndarray, alpha: float, thetas: np.ndarray, c: Conversations, aware: bool
) -> list[dict[str, float]]:
    """One operating point per threshold: cloud share, quality, judge score, latency, switches."""
    from localroute.core.conversation import replay_conversations
    from localroute.core.policy import fusion_policy
    from localroute.core.sides import LOCAL

    q_l, q_c = table.col("q_local"), table.col("q_cloud")
    rows = []
    for theta in thetas:
        r = replay_conversations(
            c.conv,
            c.turns,
            c.prompt,
            c.history,
            fusion_policy(p, alpha, float(theta)),
            table.latency,
            context_aware=aware,
        )
        qual = np.where(r.decision == LOCAL, q_l, q_c)
        rows.append(
            {
                "theta": float(theta),
                "cloud_share": r.cloud_share,
                "quality": float(qual.mean()),
                "score_raw": float((1 + 9 * qual).mean()),
                "latency_s": r.mean_latency_s,
                "switches": int(r.switched.sum()),
                "reprefill_tokens": float(r.reprefill_tokens.sum()),
            }
        )
    return rows


def least_latency_at(cols: dict[str, list], quality: float) -> dict[str, Any] | None:
    """The point with the least mean latency (then cloud share) reaching ``quality``."""
    ok = [i for i, v in enumerate(cols["quality"]) if v >= quality - 1e-12]
    if not ok:
        return None
    best = min(ok, key=lambda i: (cols["latency_s"][i], cols["cloud_share"][i]))
    return {k: cols[k][best] for k in cols}


@dataclass
class MultiTurnExperiment:
    spec: PairSpec
    key: str = "fusion_multiturn"
    title: str = "MT-Bench"

    def run(self, tables: PairTables, ctx: EvalContext) -> dict[str, Any]:
        ctx.log(f"== evaluate {self.key}: context-aware vs context-agnostic replay")
        spec = self.spec
        table = tables.multi_turn(spec, self.key)
        if table is None:
            return {"skipped": f"{spec.source} is not in the data build"}
        c = conversations(table)
        routers, base = {}, None
        alpha, _ = resolve_alpha(ctx, spec)
        for label, s in table.scores.items():
            thetas = thresholds(s.p, alpha, table, c, ctx.cfg.mtbench_thresholds)
            entry: dict[str, Any] = {"router": s.router, "auc": s.auc}
            for mode, aware in MODES.items():
                rows = replay_curve(table, s.p, alpha, thetas, c, aware)
                entry[mode] = {k: [row[k] for row in rows] for k in rows[0]}
                if base is None and aware:  # theta=+inf: all local; -inf: all cloud
                    base = {"local_only": rows[-1], "cloud_only": rows[0]}
            routers[label] = entry
        goals = targets(
            ctx.cfg.targets,
            float(np.mean(table.col("q_local"))),
            float(np.mean(table.col("q_cloud"))),
        )
        for entry in routers.values():
            entry["at_target"] = [
                {
                    "fraction": t["fraction"],
                    "quality_target": t["quality"],
                    "mode": mode,
                    "point": least_latency_at(entry[mode], t["quality"]),
                }
                for t in goals
                for mode in MODES
            ]
        n_conv = len(set(c.conv.tolist()))
        ctx.log(
            f"   {spec.source}: {n_conv} conversations, {table.n} turns "
            f"({table.n_contaminated_dropped} contaminated turns dropped)"
        )
        return {
            "source": spec.source,
            "local": spec.local,
            "cloud": spec.cloud,
            "alpha": alpha,
            "alpha_provenance": "estimated (seed 001 gives no alpha for MT-Bench-101; "
            "configurable)",
            "n_turns": table.n,
            "n_conversations": n_conv,
            "n_contaminated_turns_dropped": table.n_contaminated_dropped,
            "train_sources": [s for s in ctx.cfg.mtbench_train_sources if s in ctx.available],
            "history": "turn-1 context = the user prompt + the published answer length of "
            + c.history_source,
            "sides": sides_dict(table),
            "baselines": base or {"local_only": None, "cloud_only": None},
            "targets": goals,
            "routers": routers,
        }
