"""The one configuration mechanism: YAML validated into dataclasses, errors naming file and field.

Every config file (the run config, ``links.yaml``, ``prices.yaml``) is a dataclass tree that
:func:`build` walks against its type hints, so an unknown key, a missing field, a wrong type or
a bad value reads e.g. ``configs/x.yaml: data.out must be str, got int 3``. Any YAML number
form is a number; an input path resolves against the file that names it (:class:`ConfigPath`).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from localroute.errors import ConfigError

T = TypeVar("T")


class ConfigPath(str):
    """A path to an input file in a config: a relative value resolves against the directory of
    the YAML file that gives it (outputs such as ``data.out`` stay relative to the working
    directory, where a job runs)."""


CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"


def bundled(name: str) -> ConfigPath:
    """The default for an input file: the one in the repository's ``configs/``."""
    return ConfigPath(CONFIGS_DIR / name)


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
    # None: ../shared/data (or $LOCALROUTE_SHARED_DATA) when present, else the shipped build;
    # "shipped": the build inside the package; a path: that directory of public data.
    source_dir: Literal["shipped"] | ConfigPath | None = None
    out: str = "runs/data"
    sources: list[str] | None = None

    def check(self, where: str) -> None:
        from localroute.data.sources import SOURCES_BY_NAME

        for name in self.sources or []:
            if name not in SOURCES_BY_NAME:
                known = ", ".join(SOURCES_BY_NAME)
                raise ConfigError(f"{where}.sources: unknown source {name!r}; known: {known}")


@dataclass(frozen=True)
class Config:
    """A run config: the shared sections here, plus the sections of the jobs that read it
    (``routers``, ``profile``, ``evaluate``, ``serve``, ``submit``), given by the application
    that loads it, so this library never imports the jobs above it."""

    seed: int = 20251125
    ray: RayConfig = field(default_factory=RayConfig)
    data: DataConfig = field(default_factory=DataConfig)
    path: str | None = None  # where it was read from (not a YAML key)
    sections: dict[str, Any] = field(default_factory=dict)  # every job section, parsed or default

    def __getattr__(self, name: str) -> Any:
        """`cfg.serve` etc.: the parsed section, or its defaults when the file has none."""
        sections = object.__getattribute__(self, "sections")
        if name in sections:
            return sections[name]
        raise AttributeError(name)


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``2e7`` / ``2e-4`` as floats: PyYAML follows YAML 1.1, where a
    float needs a dot and a signed exponent, but every reader of these files expects a number."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping (an empty file is {}); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # a SafeLoader
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return raw


def load_yaml(path: str | Path, cls: type[T]) -> T:
    """Build the dataclass ``cls`` from a YAML file (links, prices...)."""
    raw = read_yaml(path)
    try:
        return build(cls, raw, "", base=Path(path).resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_config(path: str | Path, sections: dict[str, type] | None = None) -> Config:
    """Read a run config; ``sections`` maps the job sections the calling application knows to
    their dataclasses (any other top-level key is an error; an absent one takes its defaults)."""
    sections = sections or {}
    path = Path(path)
    raw = read_yaml(path)
    base = path.resolve().parent
    try:
        if "path" in raw or "sections" in raw:
            raise ConfigError("unknown key(s) ['path'/'sections'] at the top level")
        parsed = {k: build(c, raw.pop(k, None) or {}, k, base=base) for k, c in sections.items()}
        return build(Config, {**raw, "path": str(path), "sections": parsed}, "", base=base)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def build(cls: type[T], raw: Any, where: str, *, base: Path | None = None) -> T:
    """Walk ``raw`` against the dataclass ``cls``'s type hints: unknown keys, missing required
    fields, wrong types and a failed ``check(where)`` are errors naming the field."""
    label = where or "config"
    if not isinstance(raw, dict):
        raise ConfigError(f"{label} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = {f.name for f in fields}
    unknown = sorted(str(k) for k in set(raw) - names)
    if unknown:
        raise ConfigError(f"{label}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    for f in fields:
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and raw.get(f.name) is None:
            raise ConfigError(f"{where}.{f.name} is required" if where else f"{f.name} is required")
    values = {}
    for name, value in raw.items():
        if cls is Config and name == "sections":
            values[name] = value  # already parsed
            continue
        values[name] = _coerce(hints[name], value, f"{where}.{name}" if where else name, base)
    obj = cls(**values)
    if hasattr(obj, "check"):
        obj.check(label)
    return obj


def _coerce(hint: Any, value: Any, where: str, base: Path | None) -> Any:
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
                return _coerce(arg, value, where, base)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(
                f"{where} must be one of {list(typing.get_args(hint))}, got {value!r}"
            )
        return value
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where, base=base)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {type(value).__name__}")
        (item,) = typing.get_args(hint)
        return [_coerce(item, v, f"{where}[{i}]", base) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
        key_t, val_t = typing.get_args(hint)
        return {
            _coerce(key_t, k, where, base): _coerce(val_t, v, f"{where}.{k}", base)
            for k, v in value.items()
        }
    if hint is Any:
        return value
    if hint is ConfigPath:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where} must be a path, got {type(value).__name__} {value!r}")
        p = Path(value).expanduser()
        return ConfigPath(p if p.is_absolute() or base is None else base / p)
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} must be a number, got {type(value).__name__} {value!r}")
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{where} must be {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def load_section(path: str | Path, key: str, cls: type[T]) -> T:
    """One section of a run config (its defaults when absent), for a component that reads only
    its own, e.g. the Serve application started from a config file on a cluster."""
    path = Path(path)
    raw = read_yaml(path)
    try:
        return build(cls, raw.get(key) or {}, key, base=path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
