"""Evaluation experiments: each is one unit behind one interface, a key of metrics.json and a
section of report.html.

* ``fusion_mmlu`` / ``fusion_gsm8k`` (:mod:`.fusion`, seed 001 Figs. 3-5);
* ``fusion_multiturn`` (:mod:`.multiturn`, Fig. 6);
* ``savings`` (:mod:`.savings`, seed 000's table).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from pipelines.evaluate.context import EvalContext
    from pipelines.evaluate.pairs import PairTable, PairTables


class Experiment(Protocol):
    """One experiment: ``key`` names its metrics.json entry and report section."""

    key: str
    title: str

    def run(self, tables: PairTables, ctx: EvalContext) -> dict[str, Any]: ...


def side_only(table: PairTable) -> dict[str, dict[str, float]]:
    """All-local and all-cloud totals of a single-turn table, with accuracy per joule."""
    from localroute.core.accounting import accuracy_per_joule, totals
    from localroute.core.sides import CLOUD, LOCAL

    assert table.local is not None and table.cloud is not None
    out = {
        "local_only": totals(np.full(table.n, LOCAL, np.int8), table.local, table.cloud),
        "cloud_only": totals(np.full(table.n, CLOUD, np.int8), table.local, table.cloud),
    }
    for v in out.values():
        v["accuracy_per_joule"] = accuracy_per_joule(v["quality"], v["energy_j"])
    return out


def targets(fractions: list[float], local_only: float, cloud_only: float) -> list[dict[str, float]]:
    """Accuracy targets a fraction of the way from local-only to cloud-only accuracy."""
    return [
        {"fraction": f, "quality": local_only + f * (cloud_only - local_only)} for f in fractions
    ]


def sides_dict(table: PairTable) -> dict[str, Any]:
    return {k: v.to_dict() for k, v in table.sides.items()}


def resolve_alpha(ctx: EvalContext, spec: Any) -> tuple[float, str]:
    """(alpha, where it comes from) for every router on one pair, by the one precedence
    (localroute.core.operating_point): the pair's alpha in the config, else the router
    artifact's (chosen on its validation split), else seed 001's Table I alpha of the pair's
    workload, else 0. Baselines get the same alpha as the learned router."""
    from localroute.core.operating_point import resolve_operating_point
    from pipelines.evaluate.sides import workload_of

    wl = ctx.table1.workloads.get(workload_of(spec.source)) if ctx.table1 else None
    router = ctx.artifact.router if ctx.artifact is not None else None
    point = resolve_operating_point(
        router, alpha=spec.alpha, workload_alpha=wl.alpha if wl is not None else None
    )
    named = {
        "config": "config (the pair's alpha)",
        "artifact": "router artifact (chosen on its validation split)",
        "latency preset workload": "seed 001 Table I",
    }
    return point.alpha, named.get(point.alpha_from, point.alpha_from)


def measured_pairs(ctx: Any, workload: str) -> list[Any]:
    """With measured rows (`--measured`): a pair whose local side is entirely the model measured
    here against the published gpt-4-1106 outcomes of the same queries, per RouteLLM source the
    rows cover (its latency and energy measured, the cloud's calibrated)."""
    import numpy as np
    import pyarrow.compute as pc

    from pipelines.evaluate.config import GPT4, PairSpec

    if ctx is None or ctx.measured is None or ctx.measured_rows is None:
        return []
    sources = set(ctx.measured_rows["source"].to_pylist())
    source = f"routellm_{workload}"
    if source not in sources:
        return []
    model = ctx.measured.model
    rows = ctx.measured_rows.filter(pc.equal(ctx.measured_rows["source"], source))
    mean = float(np.mean(rows["score"].to_numpy(zero_copy_only=False)))
    chance = " (chance on four choices: 0.25)" if workload == "mmlu" else ""
    ctx.note(
        f"{source}: {model} was measured on this machine ({rows.num_rows} queries); its answers "
        f"score {mean:.2f}{chance}. Its latency is measured, its quality is that of a weak edge "
        "model: this pair shows the pipeline on real measurements, not a useful local model"
    )
    return [PairSpec(f"{model.lower()}-measured-vs-gpt4", source, model, GPT4)]


def all_experiments(cfg: Any, ctx: Any = None) -> list[Experiment]:
    """The experiments of one run, in report order."""
    from pipelines.evaluate.experiments.fusion import FusionExperiment
    from pipelines.evaluate.experiments.multiturn import MultiTurnExperiment
    from pipelines.evaluate.experiments.savings import SavingsExperiment

    return [
        FusionExperiment("fusion_mmlu", "MMLU", [*cfg.mmlu, *measured_pairs(ctx, "mmlu")]),
        FusionExperiment("fusion_gsm8k", "GSM8K", [*cfg.gsm8k, *measured_pairs(ctx, "gsm8k")]),
        MultiTurnExperiment(cfg.mtbench),
        SavingsExperiment([*cfg.mmlu, *cfg.gsm8k, *cfg.savings_pairs]),
    ]
