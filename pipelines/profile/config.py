"""The `profile:` section of a config: the run, its hardware pools and an optional judge."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from localroute.errors import ConfigError
from localroute.placement import Placement

TINY = "tiny"  # the random-weight test decoder, built under the run's models/ (unit tests only)


@dataclass(frozen=True)
class PoolConfig:
    name: str = "cpu"
    engine: str = "transformers"
    model: str = TINY  # a registry name (smollm2-135m, tiny), a local path or a hub id
    model_name: str | None = None  # the `model` column; default: the model's directory name
    model_size_b: float | None = None
    hardware: str | None = None  # the `hardware` column; default: the placement's kind
    engine_options: dict[str, Any] = field(default_factory=dict)
    # Fractional CPUs by default: Ray on few cores deadlocks when actors hold every CPU.
    placement: Placement = field(default_factory=lambda: Placement(num_cpus=0.5))
    actors: int = 1
    # Rows per Ray Data batch: answered, graded and written together. A padding engine
    # (transformers) packs them into forward passes by tokens: engine_options max_batch_size
    # (rows, default 16) and max_batch_tokens (padded prompt tokens, default 4096).
    batch_size: int = 8
    meter: str = "auto"  # auto, zeus, nvml, estimated, none
    tdp_w: float | None = None  # for the estimated meter: the package's rated power...
    tdp_cores: int | None = None  # ...over this many logical cores (default: this node's count)
    input_usd_per_m: float | None = None
    output_usd_per_m: float | None = None

    def check(self, where: str) -> None:
        from localroute.energy import METERS
        from localroute.engines import ENGINES, check_options

        if self.engine not in ENGINES:
            raise ConfigError(f"{where}.engine: unknown {self.engine!r}; known: {list(ENGINES)}")
        try:
            check_options(self.engine, self.engine_options)
        except ValueError as exc:
            raise ConfigError(f"{where}.engine_options: {exc}") from None
        if self.meter not in METERS:
            raise ConfigError(f"{where}.meter: unknown {self.meter!r}; known: {list(METERS)}")
        if self.actors < 1 or self.batch_size < 1:
            raise ConfigError(f"{where}: actors and batch_size must be >= 1")
        if self.tdp_w is not None and self.tdp_w <= 0:
            raise ConfigError(f"{where}.tdp_w must be > 0, got {self.tdp_w}")

    @property
    def model_label(self) -> str:
        if self.model_name:
            return self.model_name
        from localroute.models.registry import model_label

        return model_label(self.model)

    @property
    def hardware_label(self) -> str:
        return self.hardware or self.placement.resolved_kind


@dataclass(frozen=True)
class JudgeConfig:
    engine: str = "openai"
    model: str = "gpt-4o"
    engine_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProfileConfig:
    out: str = "runs/profile"
    data: str | None = None  # a data build; default: the config's data.out
    sources: list[str] | None = None
    split: str | None = "test"
    limit: int | None = None  # queries per source, drawn by a seeded hash
    max_turns: int = 2
    max_tokens: int = 64
    temperature: float = 0.0
    seed: int | None = None  # default: the config's top-level seed
    code_timeout_s: float = 5.0
    judge: JudgeConfig | None = None  # without one, judge-graded rows keep score null
    run_id: str | None = None
    pools: list[PoolConfig] = field(default_factory=lambda: [PoolConfig()])

    def check(self, where: str) -> None:
        names = [p.name for p in self.pools]
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"{where}.pools: need at least one pool, names unique; got {names}")
        if self.max_turns < 1 or self.max_tokens < 1:
            raise ConfigError(f"{where}: max_turns and max_tokens must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"{where}.limit must be >= 1, got {self.limit}")
