"""The Router protocol, its registry, and the self-describing artifact directory.

A router maps a batch of conversations to p = P(the local model's answer is not good enough).
An artifact directory holds `router.json` (name, params, pair, calibrated threshold),
`fingerprint.json` (what it was trained on), `metrics.json`, and whatever weights the router
writes in `_save_state`. `load_router(path)` gives back a router that scores identically.
"""

from __future__ import annotations

import abc
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from localroute.errors import LocalrouteError
from localroute.routers.examples import Batch

ROUTERS: dict[str, type[Router]] = {}


class RouterError(LocalrouteError):
    """Unknown router, unusable artifact, or data a router cannot train on."""


def register(name: str) -> Callable[[type[Router]], type[Router]]:
    def wrap(cls: type[Router]) -> type[Router]:
        cls.name = name
        ROUTERS[name] = cls
        return cls

    return wrap


def get_router_class(name: str) -> type[Router]:
    _import_builtin()
    if name not in ROUTERS:
        raise RouterError(f"unknown router {name!r}; known: {', '.join(sorted(ROUTERS))}")
    return ROUTERS[name]


def make_router(name: str, **params: Any) -> Router:
    return get_router_class(name)(**params)


class Router(abc.ABC):
    name: ClassVar[str] = ""
    # Routers that read nothing but the labels or a coin need no training data.
    trainable: ClassVar[bool] = True

    def __init__(self, seed: int = 0, **params: Any) -> None:
        self.seed = seed
        self.params = params
        self.threshold = 0.5  # p above it goes to the cloud; calibrate() replaces it
        self.info: dict[str, Any] = {}  # pair, source, calibration, fingerprint

    @abc.abstractmethod
    def fit(self, train: Batch, val: Batch | None = None) -> dict[str, float]:
        """Learn from examples (columns: text, task, prompt_words, label, ...); returns metrics."""

    @abc.abstractmethod
    def score(self, batch: Batch) -> np.ndarray:
        """P(needs cloud) for each row of the batch, as float64 in [0, 1]."""

    def decide(self, batch: Batch) -> np.ndarray:
        """True where the query goes to the cloud, at the calibrated threshold."""
        return self.score(batch) > self.threshold

    # -- artifacts
    def save(self, path: str | Path, metrics: dict | None = None) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        spec = {
            "router": self.name,
            "seed": self.seed,
            "params": self.params,
            "threshold": self.threshold,
            "info": self.info,
        }
        (path / "router.json").write_text(json.dumps(spec, indent=2, default=_jsonable) + "\n")
        if metrics is not None:
            (path / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        self._save_state(path)
        return path

    def _save_state(self, path: Path) -> None:  # noqa: B027 - stateless routers save nothing
        pass

    def _load_state(self, path: Path) -> None:  # noqa: B027
        pass


def load_router(path: str | Path) -> Router:
    path = Path(path)
    spec_path = path / "router.json"
    if not spec_path.is_file():
        raise RouterError(f"{path}: not a router artifact (no router.json)")
    try:
        spec = json.loads(spec_path.read_text())
        router = make_router(spec["router"], seed=spec.get("seed", 0), **spec.get("params", {}))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RouterError(f"{spec_path}: malformed ({exc})") from exc
    router.threshold = float(spec.get("threshold", 0.5))
    router.info = spec.get("info", {})
    router._load_state(path)
    return router


def fingerprint(batch: Batch) -> str:
    """A hash of the training examples (ids, turns and labels) an artifact was fitted on."""
    h = hashlib.sha256()
    for key in ("query_id", "turn", "label"):
        if key in batch:
            h.update(np.asarray(batch[key]).astype(str).tobytes())
    return h.hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _import_builtin() -> None:
    """Import the modules whose routers register themselves."""
    from localroute.routers import (
        baselines,  # noqa: F401
        learned,  # noqa: F401
    )
