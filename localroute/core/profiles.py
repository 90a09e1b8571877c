"""``configs/links.yaml``: named links and latency presets (Table I), read by the one config walker.

A link gives its rates in tokens/s or, as published, in Mbit/s (converted at ``bytes_per_token``,
default 4); a preset names per-token times of both sides, the router time and per-workload
response lengths. Every figure carries its source and provenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from localroute.config import build, read_yaml
from localroute.core.latency import LatencyModel, LatencyPreset, Workload
from localroute.core.sides import (
    DEFAULT_BYTES_PER_TOKEN,
    CostConfigError,
    LinkProfile,
    SideLatency,
    UnknownProfileError,
    check_provenance,
    check_value,
    mbit_s_to_tokens_s,
)
from localroute.errors import ConfigError


def _nonempty(text: str, where: str) -> None:
    if not text.strip():
        raise CostConfigError(f"{where} must be a non-empty string, got {text!r}")


@dataclass(frozen=True)
class LinkEntry:
    """One ``links:`` entry as written in the file."""

    overhead_s: float
    source: str
    provenance: str
    bandwidth_tokens_s: float | None = None
    bandwidth_mbit_s: float | None = None
    uplink_tokens_s: float | None = None
    uplink_mbit_s: float | None = None
    bytes_per_token: float | None = None
    rtt_s: float | None = None
    notes: str = ""

    def check(self, where: str) -> None:
        _nonempty(self.source, f"{where}.source")
        check_value(self.overhead_s, f"{where}.overhead_s", strict=False)
        check_provenance(self.provenance, f"{where}.provenance")
        for name in ("bandwidth", "uplink"):
            tok, mbit = getattr(self, f"{name}_tokens_s"), getattr(self, f"{name}_mbit_s")
            if tok is not None and mbit is not None:
                raise CostConfigError(f"{where}: give {name}_tokens_s or {name}_mbit_s, not both")
        if self.bandwidth_tokens_s is None and self.bandwidth_mbit_s is None:
            raise CostConfigError(f"{where}.bandwidth_tokens_s (or bandwidth_mbit_s) is required")
        for key in ("bandwidth_tokens_s", "bandwidth_mbit_s", "uplink_tokens_s", "uplink_mbit_s"):
            if getattr(self, key) is not None:
                check_value(getattr(self, key), f"{where}.{key}", strict=True)
        if self.bytes_per_token is not None:
            check_value(self.bytes_per_token, f"{where}.bytes_per_token", strict=True)
        if self.rtt_s is not None:
            check_value(self.rtt_s, f"{where}.rtt_s", strict=False)

    def profile(self, name: str) -> LinkProfile:
        uses_mbit = self.bandwidth_mbit_s is not None or self.uplink_mbit_s is not None
        bpt = self.bytes_per_token
        per = DEFAULT_BYTES_PER_TOKEN if bpt is None else bpt

        def rate(tokens: float | None, mbit: float | None) -> float | None:
            return float(mbit_s_to_tokens_s(mbit, per)) if mbit is not None else tokens

        down = rate(self.bandwidth_tokens_s, self.bandwidth_mbit_s)
        assert down is not None  # check() requires one of the two
        return LinkProfile(
            name=name,
            bandwidth_tokens_s=down,
            overhead_s=self.overhead_s,
            source=self.source,
            provenance=self.provenance,  # type: ignore[arg-type]
            uplink_tokens_s=rate(self.uplink_tokens_s, self.uplink_mbit_s),
            rtt_s=self.rtt_s,
            bytes_per_token=DEFAULT_BYTES_PER_TOKEN if bpt is None and uses_mbit else bpt,
            bandwidth_mbit_s=self.bandwidth_mbit_s,
            uplink_mbit_s=self.uplink_mbit_s,
            notes=self.notes,
        )


@dataclass(frozen=True)
class SideEntry:
    name: str
    s_per_token: float
    provenance: str
    source: str
    prefill_s_per_token: float | None = None
    decode_s_per_token: float | None = None

    def check(self, where: str) -> None:
        _nonempty(self.source, f"{where}.source")
        check_provenance(self.provenance, f"{where}.provenance")

    def side(self) -> SideLatency:
        return SideLatency(**{f: getattr(self, f) for f in self.__dataclass_fields__})


@dataclass(frozen=True)
class PresetEntry:
    link: str
    local: SideEntry
    cloud: SideEntry
    router_s_per_token: float = 0.0
    router_provenance: str = "estimated"
    router_source: str = ""
    workloads: dict[str, Workload] = field(default_factory=dict)
    workloads_source: str = ""
    workloads_provenance: str = "published"
    notes: str = ""

    def check(self, where: str) -> None:
        check_value(self.router_s_per_token, f"{where}.router_s_per_token", strict=False)
        check_provenance(self.router_provenance, f"{where}.router_provenance")
        check_provenance(self.workloads_provenance, f"{where}.workloads_provenance")
        for name, wl in self.workloads.items():
            for key in ("local_response_tokens", "cloud_response_tokens"):
                check_value(getattr(wl, key), f"{where}.workloads.{name}.{key}", strict=False)

    def preset(self, name: str) -> LatencyPreset:
        return LatencyPreset(
            name=name,
            link=self.link,
            local=self.local.side(),
            cloud=self.cloud.side(),
            router_s_per_token=self.router_s_per_token,
            router_provenance=self.router_provenance,  # type: ignore[arg-type]
            workloads=dict(self.workloads),
            workloads_provenance=self.workloads_provenance,  # type: ignore[arg-type]
            router_source=self.router_source,
            workloads_source=self.workloads_source,
            notes=self.notes,
        )


@dataclass(frozen=True)
class LinksFile:
    links: dict[str, LinkEntry] = field(default_factory=dict)
    latency_models: dict[str, PresetEntry] = field(default_factory=dict)


def _load(path: str | Path, section: str) -> LinksFile:
    raw = read_yaml(path)
    try:
        if not isinstance(raw.get(section), dict) or not raw[section]:
            raise ConfigError(f"'{section}' must be a non-empty mapping of named profiles")
        return build(LinksFile, raw, "")
    except ConfigError as exc:
        raise CostConfigError(f"{path}: {exc}") from None


def load_link_profiles(path: str | Path) -> dict[str, LinkProfile]:
    """The ``links:`` section as validated :class:`LinkProfile` objects, by name."""
    return {name: e.profile(name) for name, e in _load(path, "links").links.items()}


def load_latency_presets(path: str | Path) -> dict[str, LatencyPreset]:
    """The ``latency_models:`` section (per-token times, router time, workloads), by name."""
    models = _load(path, "latency_models").latency_models
    return {name: e.preset(name) for name, e in models.items()}


def _named(kind: str, name: str, known: Mapping[str, object]):
    try:
        return known[name]
    except KeyError:
        names = ", ".join(sorted(known)) or "(none)"
        raise UnknownProfileError(f"unknown {kind} {name!r}; known: {names}") from None


def get_link(name: str, profiles: Mapping[str, LinkProfile]) -> LinkProfile:
    """The profile called ``name``; an unknown name raises listing the known ones."""
    return _named("link profile", name, profiles)


def get_preset(name: str, presets: Mapping[str, LatencyPreset]) -> LatencyPreset:
    """The preset called ``name``; an unknown name raises listing the known ones."""
    return _named("latency model", name, presets)


def load_latency_model(
    path: str | Path, preset: str, workload: str, link: str | LinkProfile | None = None
) -> LatencyModel:
    """One ready :class:`LatencyModel` from a YAML file: preset x workload x link (default: the
    preset's own link, e.g. Table I's B and delta)."""
    chosen = get_preset(preset, load_latency_presets(path))
    if not isinstance(link, LinkProfile):
        link = get_link(chosen.link if link is None else link, load_link_profiles(path))
    return chosen.model(workload, link)
