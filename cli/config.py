"""The run config as this application reads it: the library's shared sections plus the section
of every job, each dataclass owned by the module that reads it."""

from __future__ import annotations

from pathlib import Path

from localroute.config import Config
from localroute.config import load_config as _load
from localroute.routers.config import RoutersConfig
from localroute.submit import SubmitConfig
from pipelines.evaluate import EvaluateConfig
from pipelines.profile import ProfileConfig
from serve.config import ServeConfig

SECTIONS: dict[str, type] = {
    "routers": RoutersConfig,
    "profile": ProfileConfig,
    "evaluate": EvaluateConfig,
    "serve": ServeConfig,
    "submit": SubmitConfig,
}


def load_config(path: str | Path) -> Config:
    """Read and validate a whole run config (every section), errors naming file and field."""
    return _load(path, SECTIONS)
