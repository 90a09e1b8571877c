"""Savings (seed 000's table): energy, compute and dollar savings against cloud-only at matched
accuracy, and accuracy per joule, routing on the router score alone (alpha = 0)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from localroute.core.accounting import POINT_KEYS
from pipelines.evaluate.config import PairSpec
from pipelines.evaluate.context import EvalContext
from pipelines.evaluate.experiments import side_only, sides_dict
from pipelines.evaluate.pairs import PairTable, PairTables


def policy_points(table: PairTable, target: float) -> dict[str, dict[str, float] | None]:
    """cloud-only, local-only, and each router's least-energy point reaching ``target``."""
    from localroute.core.sweep import at_target, sweep_alpha

    base = side_only(table)
    points: dict[str, dict[str, float] | None] = {
        "cloud-only": base["cloud_only"],
        "local-only": base["local_only"],
    }
    q = table.quantities()
    for label, s in table.scores.items():
        curve = sweep_alpha(s.p, table.gap, q, 0.0)  # seed 000 routes on quality alone
        points[f"{label} ({s.router})"] = at_target(curve, "quality", target, "energy_j")
    return points


def savings_rows(table: PairTable, tolerance: float) -> list[dict[str, Any]]:
    from localroute.core.accounting import accuracy_per_joule, savings

    base = side_only(table)
    cloud, local = base["cloud_only"], base["local_only"]
    target = cloud["quality"] - tolerance
    spec = table.spec
    rows = []
    for policy, pt in policy_points(table, target).items():
        row = {
            "pair": spec.name,
            "source": spec.source,
            "local": spec.local,
            "cloud": spec.cloud,
            "policy": policy,
            "n_test": table.n,
            "target_quality": target,
            "reached": pt is not None,
        }
        if pt is not None:
            row.update({k: pt.get(k) for k in POINT_KEYS})
            row["local_share"] = 1.0 - pt["cloud_share"]
            row["savings_vs_cloud_only"] = savings(pt, cloud)
            row["savings_vs_local_only"] = savings(pt, local)
            row["accuracy_per_joule"] = accuracy_per_joule(pt["quality"], pt["energy_j"])
        rows.append(row)
    return rows


@dataclass
class SavingsExperiment:
    pairs: list[PairSpec] = field(default_factory=list)
    key: str = "savings"
    title: str = "Savings against cloud-only at matched accuracy"

    def run(self, tables: PairTables, ctx: EvalContext) -> dict[str, Any]:
        ctx.log(f"== evaluate {self.key}: savings against cloud-only at matched accuracy")
        tol = ctx.cfg.accuracy_tolerance
        rows: list[dict[str, Any]] = []
        sides: dict[str, Any] = {}
        seen = set()
        for spec in self.pairs:
            if spec in seen:
                continue
            seen.add(spec)
            table = tables.single_turn(spec, self.key)
            if table is None:
                continue
            rows += savings_rows(table, tol)
            sides[f"{spec.source}: {spec.name}"] = sides_dict(table)
        return {
            "matched_accuracy": "the least-energy threshold whose accuracy is >= cloud-only "
            f"accuracy - {tol:g}",
            "alpha": 0.0,
            "rows": rows,
            "sides": sides,
            "skipped": ctx.skipped.get(self.key, []),
        }
