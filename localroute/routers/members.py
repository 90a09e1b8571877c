"""The routers a stack can be built from, by name, and loading any artifact from a class map.

Kept below the registry so `stacked.py` can build and load its members without importing the
registry that names the stack itself (no import circle).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from localroute.routers.baselines import AlwaysCloud, AlwaysLocal, Oracle, RandomRouter, TaskPrior
from localroute.routers.boosted import GbtRouter
from localroute.routers.embedding_routers import KnnRouter, MatrixFactorisationRouter, MlpRouter
from localroute.routers.errors import RouterError
from localroute.routers.finetuned import BertRouter, DecoderRouter
from localroute.routers.protocol import Router

MEMBERS: dict[str, type[Router]] = {
    "random": RandomRouter,
    "always-local": AlwaysLocal,
    "always-cloud": AlwaysCloud,
    "oracle": Oracle,
    "task-prior": TaskPrior,
    "knn": KnnRouter,
    "mlp": MlpRouter,
    "mf": MatrixFactorisationRouter,
    "gbt": GbtRouter,
    "bert": BertRouter,
    "decoder": DecoderRouter,
}


def router_class(name: str, classes: dict[str, type[Router]]) -> type[Router]:
    if name not in classes:
        raise RouterError(f"unknown router {name!r}; known: {', '.join(sorted(classes))}")
    return classes[name]


def make_member(name: str, **params: Any) -> Router:
    """A new, unfitted member router (`seed` and the router's own parameters as keywords)."""
    return router_class(name, MEMBERS)(**params)


def load_artifact(path: str | Path, classes: dict[str, type[Router]] = MEMBERS) -> Router:
    """The router an artifact directory holds, calibrated and with its `fingerprint`."""
    path = Path(path)
    spec_path = path / "router.json"
    if not spec_path.is_file():
        raise RouterError(f"{path}: not a router artifact (no router.json)")
    try:
        spec = json.loads(spec_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RouterError(f"{spec_path}: malformed ({exc})") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("router"), str):
        raise RouterError(f"{spec_path}: malformed (no router name)")
    return router_class(spec["router"], classes).from_spec(spec, path)
