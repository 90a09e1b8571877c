"""The `routers:` config section: per-router parameters, how Ray Train fits the torch routers
(TrainConfig, defined by the training module), and how the threshold is chosen."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from localroute.errors import ConfigError
from localroute.routers.alpha import AlphaConfig
from localroute.routers.registry import get_router_class
from localroute.routers.training import TrainConfig

__all__ = ["AlphaConfig", "CalibrationConfig", "RoutersConfig", "TrainConfig"]


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
    # alpha and theta chosen together on val (least latency at a quality target); replaces the
    # calibration threshold. null: alpha 0 and calibration's threshold
    alpha: AlphaConfig | None = field(default_factory=AlphaConfig)

    def check(self, where: str) -> None:
        if self.rule not in ("ge", "bar") or (self.rule == "bar" and self.bar is None):
            raise ConfigError(f"{where}.rule must be 'ge', or 'bar' with {where}.bar set")
        for name in [self.default, *self.params]:
            try:
                get_router_class(name)
            except Exception as exc:
                raise ConfigError(f"{where}: {exc}") from None
