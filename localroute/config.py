"""YAML configuration, validated into dataclasses with errors that name the offending field.

Every section is a dataclass; `load_config` walks the YAML against their type hints, so an
unknown key, a wrong type or a bad value is reported as e.g. `configs/x.yaml: data.out: ...`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from localroute.errors import ConfigError


@dataclass(frozen=True)
class RayConfig:
    # None starts a local Ray instance bound to 127.0.0.1; "auto" or "ray://..." joins a cluster.
    address: str | None = None
    num_cpus: int | None = 4
    include_dashboard: bool = False

    def check(self, where: str) -> None:
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ConfigError(f"{where}.num_cpus must be >= 1, got {self.num_cpus}")


@dataclass(frozen=True)
class DataConfig:
    # None: ../shared/data (or $LOCALROUTE_SHARED_DATA) when present, else the shipped build.
    source_dir: str | None = None
    out: str = "runs/data"
    sources: list[str] | None = None

    def check(self, where: str) -> None:
        from localroute.data.sources import SOURCES_BY_NAME

        for name in self.sources or []:
            if name not in SOURCES_BY_NAME:
                known = ", ".join(SOURCES_BY_NAME)
                raise ConfigError(f"{where}.sources: unknown source {name!r}; known: {known}")


# Sections owned by other modules, by top-level key: "module:Class" (a dataclass with defaults).
# They are imported only when needed, so a job loads only what it uses.
SECTIONS: dict[str, str] = {
    "routers": "localroute.routers.config:RoutersConfig",
    "profile": "pipelines.profile:ProfileConfig",
    "evaluate": "pipelines.evaluate:EvaluateConfig",
    "serve": "serve.config:ServeConfig",
    "submit": "localroute.submit:SubmitConfig",
}


@dataclass(frozen=True)
class Config:
    seed: int = 20251125
    ray: RayConfig = field(default_factory=RayConfig)
    data: DataConfig = field(default_factory=DataConfig)
    path: str | None = None  # where it was read from (not a YAML key)
    sections: dict[str, Any] = field(default_factory=dict)  # parsed SECTIONS present in the file

    def __getattr__(self, name: str) -> Any:
        """`cfg.serve` etc.: the parsed section, or its defaults when the file has none."""
        if name in SECTIONS:
            sections = object.__getattribute__(self, "sections")
            return sections[name] if name in sections else _section_class(name)()
        raise AttributeError(name)


def _section_class(key: str) -> type:
    import importlib

    module, _, cls = SECTIONS[key].partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"section {key!r} is not available ({exc})") from exc


def load_config(path: str | Path) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    try:
        sections = {k: _build(_section_class(k), raw.pop(k), k) for k in list(raw) if k in SECTIONS}
        if "path" in raw or "sections" in raw:
            raise ConfigError("unknown key(s) ['path'/'sections'] at the top level")
        return _build(Config, {**raw, "path": str(path), "sections": sections}, "")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _build(cls: type, raw: Any, where: str) -> Any:
    label = where or "config"
    if not isinstance(raw, dict):
        raise ConfigError(f"{label} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{label}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    values = {}
    for name, value in raw.items():
        if cls is Config and name == "sections":
            values[name] = value  # already parsed
            continue
        values[name] = _coerce(hints[name], value, f"{where}.{name}" if where else name)
    obj = cls(**values)
    if hasattr(obj, "check"):
        obj.check(label)
    return obj


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: invalid value {value!r}")
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {type(value).__name__}")
        (item,) = typing.get_args(hint)
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
        key_t, val_t = typing.get_args(hint)
        return {
            _coerce(key_t, k, where): _coerce(val_t, v, f"{where}.{k}") for k, v in value.items()
        }
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is Any:
        return value
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{where} must be {hint.__name__}, got {type(value).__name__} {value!r}")
    return value
