"""Both sides of a pair: latency, energy, compute and price figures, each with its provenance."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from localroute.errors import ConfigError
from pipelines.evaluate.config import PairSpec
from pipelines.evaluate.context import EvalContext

if TYPE_CHECKING:
    from localroute.core.accounting import SideSpec
    from localroute.core.latency import LatencyModel
    from localroute.core.sides import Figure


@dataclass(frozen=True)
class Lengths:
    """A side's published answer length per evaluated row (NaN where absent), and its source."""

    words: np.ndarray
    label: str


def workload_of(source: str) -> str:
    """The seed 001 Table II workload a source belongs to."""
    return "mmlu" if "mmlu" in source else "gsm8k" if "gsm8k" in source else "mt-bench-101"


def resolve_sides(
    ctx: EvalContext, spec: PairSpec, lengths: dict[str, Lengths]
) -> dict[str, SideSpec]:
    """Both sides' figures; the mean response length from the first of evaluate.response_lengths
    that has one. A side with no latency source or no response length is a ConfigError."""
    from localroute.core.accounting import resolve_side
    from localroute.core.sides import Figure

    ev = ctx.cfg
    out = {}
    for role, model in (("local", spec.local), ("cloud", spec.cloud)):
        side = resolve_side(
            role,
            model,
            measured=ctx.measured,
            mlenergy=ctx.mlenergy,
            stand_ins=ev.stand_ins,
            candidates=ev.calibration_candidates,
            max_num_seqs=ev.local_max_num_seqs if role == "local" else ev.cloud_max_num_seqs,
            gpu=ev.mlenergy_gpu,
            table1=ctx.table1,
            catalogue=ctx.catalogue,
            prices=ctx.prices,
        )
        options = _length_options(ctx, spec, role, side, lengths.get(role))
        chosen = next((options[k] for k in ev.response_lengths if options.get(k)), None)
        side = dataclasses.replace(
            side, mean_response_tokens=chosen or Figure(None, "absent", "no source")
        )
        side.latency()  # a side with no latency source is an error naming the model
        if chosen is None:
            raise ConfigError(
                f"evaluate.response_lengths: no response length for the {role} model "
                f"{model!r} on {spec.source} from any of {ev.response_lengths}"
            )
        out[role] = side
    return out


def _length_options(
    ctx: EvalContext, spec: PairSpec, role: str, side: SideSpec, lengths: Lengths | None
) -> dict[str, Figure | None]:
    from localroute.core.sides import Figure

    options: dict[str, Figure | None] = {"published": None, "calibrated": None, "config": None}
    if lengths is not None and np.isfinite(lengths.words).any():
        options["published"] = Figure(float(np.nanmean(lengths.words)), "published", lengths.label)
    if side.mean_response_tokens.provenance == "calibrated":
        options["calibrated"] = side.mean_response_tokens
    workload = workload_of(spec.source)
    wl = ctx.table1.workloads.get(workload) if ctx.table1 else None
    if wl is not None:
        v = wl.local_response_tokens if role == "local" else wl.cloud_response_tokens
        options["config"] = Figure(
            v,
            "published",
            f"config preset {ctx.table1.name} ({workload}, measured there on the seed's own "
            f"models): {ctx.table1.workloads_source}",
        )
    return options


def latency_model(ctx: EvalContext, sides: dict[str, SideSpec]) -> LatencyModel:
    from localroute.core.latency import LatencyModel

    return LatencyModel(
        local=sides["local"].latency(), cloud=sides["cloud"].latency(), link=ctx.link
    )
