"""Single-turn fusion (seed 001, Figs. 3-5): accuracy against mean latency and cloud share.

Per model pair, each router's score is fused with the latency gap (eq. 11, through the sweep of
:mod:`localroute.core.sweep`) at alpha = 0 and at its alpha (the pair's alpha when the config sets
one, else the learned router's artifact alpha, else seed 001's Table I alpha of the workload),
swept over every reachable threshold, plus a sweep over the alpha grid (`alpha_sweep`); at
each accuracy target, the least cloud share and the least mean latency reaching it,
and at matched accuracy (cloud-only accuracy - accuracy_tolerance) the least cloud share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.evaluate.config import PairSpec
from pipelines.evaluate.context import EvalContext
from pipelines.evaluate.deployed import as_deployed, is_transfer
from pipelines.evaluate.experiments import resolve_alpha, side_only, sides_dict, targets
from pipelines.evaluate.pairs import PairTable, PairTables


@dataclass
class FusionExperiment:
    key: str  # fusion_mmlu, fusion_gsm8k
    title: str  # the workload, for the log and the report
    pairs: list[PairSpec] = field(default_factory=list)

    def run(self, tables: PairTables, ctx: EvalContext) -> dict[str, Any]:
        ctx.log(f"== evaluate {self.key}: {len(self.pairs)} pair(s)")
        out = {}
        for i, spec in enumerate(self.pairs, 1):
            ctx.log(f"   [{i}/{len(self.pairs)}] {spec.source}: {spec.local} vs {spec.cloud}")
            table = tables.single_turn(spec, self.key)
            if table is not None:
                out[spec.name] = pair_result(table, ctx)
        return {"workload": self.title, "pairs": out, "skipped": ctx.skipped.get(self.key, [])}


def pair_result(table: PairTable, ctx: EvalContext) -> dict[str, Any]:
    from localroute.core.accounting import savings
    from localroute.core.sweep import at_target, sweep

    ev = ctx.cfg
    spec = table.spec
    base = side_only(table)
    goals = targets(ev.targets, base["local_only"]["quality"], base["cloud_only"]["quality"])
    matched = base["cloud_only"]["quality"] - ev.accuracy_tolerance
    alpha, alpha_from = resolve_alpha(ctx, spec)  # every router's, baselines included
    pair_alpha, pair_alpha_from = alpha, alpha_from
    q = table.quantities()
    routers = {}
    for label, s in table.scores.items():
        curves = sweep(s.p, table.gap, q, sorted({0.0, alpha}))
        fused = next(c for c in curves if c.alpha == alpha)  # this router's alpha
        point = at_target(fused, "quality", matched, "cloud_share")
        routers[label] = {
            "router": s.router,
            "auc": s.auc,
            "alpha": alpha,
            "alpha_from": alpha_from,
            "alpha_sweep": alpha_sweep(s.p, table, q, goals),
            "curves": {f"{c.alpha:g}": c.to_dict(ev.plot_points) for c in curves},
            "at_target": [
                {
                    "fraction": t["fraction"],
                    "quality_target": t["quality"],
                    "alpha": fused.alpha,
                    "min_cloud_share": at_target(fused, "quality", t["quality"], "cloud_share"),
                    "min_latency": at_target(fused, "quality", t["quality"], "latency_s"),
                }
                for t in goals
            ],
            # the least cloud share reaching cloud-only accuracy - accuracy_tolerance
            "matched": {
                "quality_target": matched,
                "point": point,
                "savings_vs_cloud_only": savings(point, base["cloud_only"]) if point else None,
            },
        }
    return {
        "source": spec.source,
        "local": spec.local,
        "cloud": spec.cloud,
        "as_deployed": as_deployed(table, ctx),
        "transfer": is_transfer(table, ctx),
        "alpha": pair_alpha,
        "alpha_from": pair_alpha_from,
        "n_test": table.n,
        "n_contaminated_dropped": table.n_contaminated_dropped,
        "fit_note": table.fit_note,
        "sides": sides_dict(table),
        "baselines": base,
        "targets": goals,
        "routers": routers,
    }


def alpha_sweep(p, table: PairTable, q, goals) -> list[dict[str, Any]]:
    """At each quality target, per alpha of the grid, the least mean latency reaching it (and
    the cloud share there): how much the fusion weight matters for this router (on test)."""
    from localroute.core.sweep import at_target, sweep
    from localroute.routers.alpha import ALPHA_GRID

    rows = []
    for curve in sweep(p, table.gap, q, ALPHA_GRID):
        for t in goals:
            point = at_target(curve, "quality", t["quality"], "latency_s")
            rows.append(
                {
                    "alpha": curve.alpha,
                    "fraction": t["fraction"],
                    "latency_s": point["latency_s"] if point else None,
                    "cloud_share": point["cloud_share"] if point else None,
                }
            )
    return rows
