"""The `routers:` config section: per-router parameters and how Ray Train fits the torch routers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from localroute.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    num_workers: int = 2
    cpus_per_worker: float = 0.5  # fractions: on 2 cores the Ray Data read task must still run
    use_gpu: bool = False  # nccl on GPUs, gloo on CPUs
    epochs: int = 3
    patience: int = 2  # early stop after this many epochs without a better validation AUC
    batch_size: int = 32
    lr: float = 5e-5
    max_failures: int = 2  # worker failures Ray Train recovers from (resuming from a checkpoint)
    max_train_examples: int | None = None  # subsample for speed (the demo); None = all
    max_val_examples: int | None = 1000  # the per-epoch validation AUC every worker computes
    storage_path: str | None = None  # None: <artifact dir>/ray_train

    def check(self, where: str) -> None:
        for name in ("num_workers", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be >= 1, got {getattr(self, name)}")
        if self.cpus_per_worker <= 0 or self.lr <= 0:
            raise ConfigError(f"{where}: cpus_per_worker and lr must be > 0")


@dataclass(frozen=True)
class CalibrationConfig:
    # Choose the threshold on the validation split for a target cloud share or a target quality.
    target: str = "cloud_share"  # "cloud_share" | "quality"
    value: float = 0.3

    def check(self, where: str) -> None:
        if self.target not in ("cloud_share", "quality"):
            raise ConfigError(f"{where}.target must be cloud_share or quality, got {self.target!r}")
        if not 0.0 <= self.value <= 1.0:
            raise ConfigError(f"{where}.value must be in [0, 1], got {self.value}")


@dataclass(frozen=True)
class RoutersConfig:
    default: str = "mlp"  # the router `make demo` trains
    default_pair: str = "mistralai/Mixtral-8x7B-Instruct-v0.1,gpt-4-1106-preview"
    default_data: str = "routellm_mmlu"
    rule: str = "ge"  # local suffices when its score >= the cloud's ("ge") or >= bar ("bar")
    bar: float | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # router name -> params
    train: TrainConfig = field(default_factory=TrainConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)

    def check(self, where: str) -> None:
        from localroute.routers.base import get_router_class

        if self.rule not in ("ge", "bar") or (self.rule == "bar" and self.bar is None):
            raise ConfigError(f"{where}.rule must be 'ge', or 'bar' with {where}.bar set")
        for name in [self.default, *self.params]:
            try:
                get_router_class(name)
            except Exception as exc:
                raise ConfigError(f"{where}: {exc}") from None
