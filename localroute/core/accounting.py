"""Per-query accounting of the side a router chose: latency, energy, compute, dollars, quality.

Seed 000 (TrafficBench) reports what routing saves against sending everything to the cloud:
energy, compute (FLOPs ~ 2 x params x tokens) and cost, at matched accuracy, and accuracy per
joule. This module holds :class:`SideSpec` and :func:`resolve_side` (the figures of one side,
each from the first source that has it: measured rows, then ML.ENERGY (calibrated), then the
config), :class:`SideOutcome` (per-query arrays of one side) and the policy-level numbers
(:func:`totals`, :func:`savings`, :func:`accuracy_per_joule`). Absent figures are NaN in arrays
and None in JSON, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from localroute.core.latency import LatencyPreset
from localroute.core.measured import MeasuredProfile
from localroute.core.mlenergy import MlEnergy
from localroute.core.prices import Prices
from localroute.core.sides import ABSENT, CLOUD, Figure, SideLatency, as_switch, nonneg
from localroute.errors import ConfigError

FloatArray = NDArray[np.float64]
QUANTITIES = ("quality", "latency_s", "energy_j", "flops", "cost_usd")
"""What is accounted per query; savings are reported for all but quality."""
POINT_KEYS = ("quality", "cloud_share", "latency_s", "energy_j", "flops", "cost_usd")
"""What one operating point of a policy reports (the savings table and the report read it)."""


def flops(params_b: ArrayLike, tokens: ArrayLike) -> FloatArray:
    """Forward-pass compute, FLOPs ~ 2 x parameters x tokens (``params_b`` in billions).

    The standard dense-transformer approximation (one multiply-add per weight per token); it
    ignores attention's context-length term, so it undercounts long contexts.
    """
    return 2.0 * nonneg(params_b, "params_b") * 1e9 * nonneg(tokens, "tokens")


def dollar_cost(
    tokens_in: ArrayLike,
    tokens_out: ArrayLike,
    price_in_per_m: ArrayLike,
    price_out_per_m: ArrayLike,
) -> FloatArray:
    """API cost in dollars from token counts and prices per million tokens (NaN if any unknown)."""
    cin = nonneg(tokens_in, "tokens_in") * nonneg(price_in_per_m, "price_in_per_m")
    cout = nonneg(tokens_out, "tokens_out") * nonneg(price_out_per_m, "price_out_per_m")
    return (cin + cout) / 1e6


# --------------------------------------------------------------------------- one side


@dataclass(frozen=True)
class SideSpec:
    """Everything the accounting needs about one side, each figure with its provenance."""

    role: str  # "local" or "cloud"
    model: str
    prefill_s_per_token: Figure
    decode_s_per_token: Figure
    energy_per_output_token_j: Figure
    active_params_b: Figure
    input_usd_per_m: Figure
    output_usd_per_m: Figure
    mean_response_tokens: Figure
    electricity_usd_per_kwh: Figure = ABSENT
    notes: tuple[str, ...] = ()

    def latency(self) -> SideLatency:
        """The cost model's :class:`SideLatency` (eqs. 1, 5); refuses a side with no gamma."""
        if self.decode_s_per_token.value is None:
            raise ConfigError(
                f"evaluate: no latency source for {self.role} model {self.model!r} "
                "(no measured rows, no ML.ENERGY stand-in, no config fallback); set "
                "evaluate.stand_ins or evaluate.table1_preset"
            )
        prov = self.decode_s_per_token.provenance
        return SideLatency(
            name=self.model,
            s_per_token=self.decode_s_per_token.f,
            prefill_s_per_token=self.prefill_s_per_token.value,
            decode_s_per_token=self.decode_s_per_token.f,
            mean_response_tokens=self.mean_response_tokens.f,
            provenance=prov,  # type: ignore[arg-type]
            source=self.decode_s_per_token.source,
        )

    def figures(self) -> dict[str, dict[str, Any]]:
        names = (
            "prefill_s_per_token",
            "decode_s_per_token",
            "energy_per_output_token_j",
            "active_params_b",
            "input_usd_per_m",
            "output_usd_per_m",
            "mean_response_tokens",
            "electricity_usd_per_kwh",
        )
        return {n: getattr(self, n).to_dict() for n in names}

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "model": self.model,
            "figures": self.figures(),
            "notes": list(self.notes),
        }


def resolve_side(
    role: str,
    model: str,
    *,
    measured: MeasuredProfile | None = None,
    mlenergy: MlEnergy | None = None,
    stand_ins: Mapping[str, str] | None = None,
    candidates: list[str] | None = None,
    max_num_seqs: int = 8,
    gpu: str = "B200",
    table1: LatencyPreset | None = None,
    catalogue: Mapping[str, Mapping[str, Any]] | None = None,
    prices: Prices | None = None,
    response_tokens: Figure | None = None,
) -> SideSpec:
    """Figures for ``model`` as the ``role`` side, from the first source that has each.

    Per-token time: measured rows (local side only, and only when they measured ``model`` itself:
    a measured figure never stands in for another model) > ML.ENERGY stand-in (calibrated) > the
    config's Table I (published for the seed's own models). Energy per output token: the measured
    model's own rows (metered, else estimated from its CPU time on that machine) > calibrated;
    never from Table I (it has none). Active parameters: ``prices`` (published or
    assumed) > the data build's ``models`` catalogue (``catalogue[model]['size_b']``). Prices: the
    cloud side's API price from ``prices`` or the catalogue; the local side pays electricity.
    Mean response length: ``response_tokens`` (e.g. counted from published answers) > the
    calibrated stand-in's mean output length > Table I's workload (caller passes it).
    """
    if role not in ("local", "cloud"):
        raise ValueError(f"role must be 'local' or 'cloud', got {role!r}")
    notes: list[str] = []
    catalogue = catalogue or {}
    cat = catalogue.get(model, {})

    # active parameters (FLOPs)
    params = prices.get(model, "active_params_b") if prices else None
    if params is None and cat.get("size_b") is not None:
        params = Figure(float(cat["size_b"]), "published", "data build models table (size_b)")
    if params is None:
        params = ABSENT

    # ML.ENERGY stand-in
    cal = None
    if mlenergy is not None:
        mid = (stand_ins or {}).get(model) or mlenergy.find(model)
        how = "configured stand-in" if (stand_ins or {}).get(model) else "same model"
        if mid is None and params.value is not None:
            total = cat.get("size_b") or params.value
            pool = [c for c in (candidates or []) if c in mlenergy.docs] or None
            mid = _nearest(mlenergy, float(total), pool)
            how = f"nearest size to {total:g}B among the calibration candidates"
        if mid is not None:
            cal = mlenergy.calibrate(mid, max_num_seqs=max_num_seqs, gpu=gpu)
            notes.append(f"calibrated stand-in for {model}: {mid} ({how})")

    prefill = decode = energy = ABSENT
    if measured is not None and role == "local" and not same_model(measured.model, model):
        notes.append(f"measured rows are of {measured.model}, not {model}: not applied to {model}")
    elif role == "local" and measured is not None:
        if measured.decode_s_per_token is not None:
            decode = Figure(
                measured.decode_s_per_token, "measured", f"median TPOT, {measured.label}"
            )
        if measured.prefill_s_per_token is not None:
            prefill = Figure(
                measured.prefill_s_per_token,
                "measured",
                f"median TTFT / tokens_in, {measured.label}",
            )
        if measured.energy_per_output_token_j is not None:
            kind = measured.energy_provenance or "measured"
            energy = Figure(
                measured.energy_per_output_token_j,
                kind,
                f"median energy_j / tokens_out ({kind} energy), {measured.label}",
            )
        notes.append(f"local per-token times measured on {measured.model} ({measured.hardware})")
    if decode.value is None and cal is not None:
        decode = Figure(cal.s_per_token, "calibrated", cal.source)
    if energy.value is None and cal is not None:
        energy = Figure(cal.energy_per_output_token_j, "calibrated", cal.source)
    if decode.value is None and table1 is not None:
        side = table1.local if role == "local" else table1.cloud
        decode = Figure(side.decode, "published", f"{table1.name} ({side.name}): {side.source}")
        if side.prefill_s_per_token is not None:
            prefill = Figure(side.prefill, "published", side.source)
        notes.append(f"{role} per-token time from config preset {table1.name} ({side.name})")

    if prefill.value is None and decode.value is not None:
        prefill = Figure(
            decode.value,
            decode.provenance,
            "= decode_s_per_token: no prefill figure here (ML.ENERGY publishes no TTFT), so the "
            f"seed's one gamma for prefill and decode (eqs. 1, 5). {decode.source}",
        )

    # response length
    resp = (
        response_tokens
        if response_tokens is not None and response_tokens.value is not None
        else None
    )
    if resp is None and cal is not None:
        resp = Figure(cal.mean_output_tokens, "calibrated", f"mean output length, {cal.source}")
    resp = resp or ABSENT

    # prices
    pin = pout = ABSENT
    if role == "cloud":
        pin = (prices.get(model, "input_usd_per_m") if prices else None) or _cat_price(
            cat, "input_usd_per_m"
        )
        pout = (prices.get(model, "output_usd_per_m") if prices else None) or _cat_price(
            cat, "output_usd_per_m"
        )
        if pin.value is None or pout.value is None:
            notes.append(f"no published API price for {model}: its dollar cost is null")
    elec = prices.electricity_usd_per_kwh if (prices and role == "local") else ABSENT
    return SideSpec(
        role=role,
        model=model,
        prefill_s_per_token=prefill,
        decode_s_per_token=decode,
        energy_per_output_token_j=energy,
        active_params_b=params,
        input_usd_per_m=pin,
        output_usd_per_m=pout,
        mean_response_tokens=resp,
        electricity_usd_per_kwh=elec,
        notes=tuple(notes),
    )


def _cat_price(cat: Mapping[str, Any], key: str) -> Figure:
    v = cat.get(key)
    return ABSENT if v is None else Figure(float(v), "published", "data build models table")


def _nearest(mlenergy: MlEnergy, params_b: float, pool: list[str] | None) -> str | None:
    if pool is None:
        return mlenergy.nearest_by_size(params_b)
    best, dist = None, math.inf
    for mid in pool:
        size = mlenergy.docs[mid].get("total_params_billions")
        if size and abs(math.log(size / params_b)) < dist:
            best, dist = mid, abs(math.log(size / params_b))
    return best


# --------------------------------------------------------------------------- per-query arrays


@dataclass(frozen=True)
class SideOutcome:
    """Per-query figures if every query went to this side (arrays of one length)."""

    quality: FloatArray
    latency_s: FloatArray
    energy_j: FloatArray
    flops: FloatArray
    cost_usd: FloatArray
    tokens_in: FloatArray
    tokens_out: FloatArray

    def get(self, name: str) -> FloatArray:
        return getattr(self, name)


def side_outcome(
    spec: SideSpec,
    quality: ArrayLike,
    latency_s: ArrayLike,
    tokens_in: ArrayLike,
    tokens_out: ArrayLike,
) -> SideOutcome:
    """Energy = J per output token x output tokens (ML.ENERGY's figure amortises prefill into it);
    FLOPs = 2 x active params x (input + output tokens); dollars = API price (cloud) or the
    electricity of the energy (local). Unknown inputs give NaN, never 0."""
    q = np.asarray(quality, dtype=np.float64)
    tin = np.broadcast_to(np.asarray(tokens_in, dtype=np.float64), q.shape).copy()
    tout = np.broadcast_to(np.asarray(tokens_out, dtype=np.float64), q.shape).copy()
    lat = np.broadcast_to(np.asarray(latency_s, dtype=np.float64), q.shape).copy()
    energy = spec.energy_per_output_token_j.f * tout
    comp = (
        flops(spec.active_params_b.f, tin + tout)
        if spec.active_params_b.value is not None
        else np.full(q.shape, np.nan)
    )
    if spec.role == "cloud":
        cost = dollar_cost(tin, tout, spec.input_usd_per_m.f, spec.output_usd_per_m.f)
    else:
        cost = energy / 3.6e6 * spec.electricity_usd_per_kwh.f
    return SideOutcome(q, lat, energy, comp, np.asarray(cost, dtype=np.float64), tin, tout)


# --------------------------------------------------------------------------- policy totals


def totals(decision: ArrayLike, local: SideOutcome, cloud: SideOutcome) -> dict[str, float]:
    """Mean per query of each quantity for a decision vector (CLOUD = 1, LOCAL = 0), plus the
    cloud share; eq. 8's selection, so a NaN on the side not taken does not count."""
    to_cloud = as_switch(np.asarray(decision) == CLOUD)
    out: dict[str, float] = {}
    for name in QUANTITIES:
        v = np.where(to_cloud, cloud.get(name), local.get(name))
        out[name] = float(np.mean(v)) if v.size else math.nan
    out["cloud_share"] = float(np.mean(to_cloud)) if to_cloud.size else math.nan
    return out


def savings(policy: Mapping[str, float], baseline: Mapping[str, float]) -> dict[str, float | None]:
    """Fractional saving 1 - policy/baseline of latency, energy, FLOPs and dollars (None where
    either is unknown or the baseline is 0)."""
    out: dict[str, float | None] = {}
    for name in QUANTITIES[1:]:
        a, b = policy.get(name, math.nan), baseline.get(name, math.nan)
        ok = a is not None and b is not None and math.isfinite(a) and math.isfinite(b) and b != 0
        out[name] = 1.0 - a / b if ok else None
    return out


def accuracy_per_joule(quality_mean: float, energy_j_mean: float) -> float | None:
    """Mean quality per joule of mean energy per query (seed 000's intelligence efficiency)."""
    if not (math.isfinite(quality_mean) and math.isfinite(energy_j_mean)) or energy_j_mean <= 0:
        return None
    return quality_mean / energy_j_mean


def same_model(a: str, b: str) -> bool:
    """Whether two names denote one model: case, an `org/` prefix and separators aside
    (`SmolLM2-135M-Instruct` == `HuggingFaceTB/smollm2_135m_instruct`)."""

    def norm(name: str) -> str:
        return "".join(ch for ch in name.rsplit("/", 1)[-1].lower() if ch.isalnum())

    return bool(a) and bool(b) and norm(a) == norm(b)
