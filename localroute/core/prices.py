"""``configs/prices.yaml``: electricity and per-model API prices and active sizes, each figure with
its provenance, read by the one config walker. A price nobody publishes stays absent (None)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from localroute.config import load_yaml
from localroute.core.sides import ABSENT, Figure, check_value
from localroute.errors import ConfigError

_GIVEN = ("published", "estimated", "measured", "calibrated")


def _check(value: float | None, provenance: str | None, where: str, key: str, prov: str) -> None:
    if value is None:
        return
    check_value(value, f"{where}.{key}", strict=False)
    if provenance not in _GIVEN:
        raise ConfigError(f"{where}.{prov} must be one of {', '.join(_GIVEN)}; got {provenance!r}")


@dataclass(frozen=True)
class Electricity:
    usd_per_kwh: float | None = None
    provenance: str | None = None
    source: str = ""

    def check(self, where: str) -> None:
        _check(self.usd_per_kwh, self.provenance, where, "usd_per_kwh", "provenance")


@dataclass(frozen=True)
class ModelPrice:
    input_usd_per_m: float | None = None
    output_usd_per_m: float | None = None
    price_provenance: str | None = None
    price_source: str = ""
    active_params_b: float | None = None
    params_provenance: str | None = None
    params_source: str = ""

    def check(self, where: str) -> None:
        for key in ("input_usd_per_m", "output_usd_per_m"):
            _check(getattr(self, key), self.price_provenance, where, key, "price_provenance")
        _check(
            self.active_params_b,
            self.params_provenance,
            where,
            "active_params_b",
            "params_provenance",
        )

    def figures(self) -> dict[str, Figure]:
        out = {}
        for key in ("input_usd_per_m", "output_usd_per_m"):
            v = getattr(self, key)
            if v is not None:
                out[key] = Figure(v, str(self.price_provenance), self.price_source)
        if self.active_params_b is not None:
            out["active_params_b"] = Figure(
                self.active_params_b, str(self.params_provenance), self.params_source
            )
        return out


@dataclass(frozen=True)
class PricesFile:
    electricity: Electricity = field(default_factory=Electricity)
    models: dict[str, ModelPrice] = field(default_factory=dict)


@dataclass(frozen=True)
class Prices:
    """Electricity price and per-model figures, as `resolve_side` reads them."""

    electricity_usd_per_kwh: Figure
    models: Mapping[str, Mapping[str, Figure]] = field(default_factory=dict)

    def get(self, model: str, key: str) -> Figure | None:
        return self.models.get(model, {}).get(key)


def load_prices(path: str | Path) -> Prices:
    doc = load_yaml(path, PricesFile)
    el = doc.electricity
    kwh = (
        ABSENT if el.usd_per_kwh is None else Figure(el.usd_per_kwh, str(el.provenance), el.source)
    )
    return Prices(kwh, {name: spec.figures() for name, spec in doc.models.items()})
