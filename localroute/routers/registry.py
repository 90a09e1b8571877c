"""The routers by name: an explicit map, as RouteLLM's ROUTER_CLS, and loading artifacts.

The router modules import the protocol, never this registry; importing them is cheap (torch,
transformers and the embedding model load when a router first needs them).
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
from localroute.routers.stacked import StackRouter

ROUTERS: dict[str, type[Router]] = {
    "random": RandomRouter,
    "always-local": AlwaysLocal,
    "always-cloud": AlwaysCloud,
    "oracle": Oracle,
    "task-prior": TaskPrior,
    "knn": KnnRouter,
    "mlp": MlpRouter,
    "mf": MatrixFactorisationRouter,
    "gbt": GbtRouter,
    "stack": StackRouter,
    "bert": BertRouter,
    "decoder": DecoderRouter,
}
assert all(cls.name == name for name, cls in ROUTERS.items()), "a router's name is its key"


def get_router_class(name: str) -> type[Router]:
    if name not in ROUTERS:
        raise RouterError(f"unknown router {name!r}; known: {', '.join(sorted(ROUTERS))}")
    return ROUTERS[name]


def make_router(name: str, **params: Any) -> Router:
    """A new, unfitted router (`seed` and the router's own parameters as keywords)."""
    return get_router_class(name)(**params)


def load_router(path: str | Path) -> Router:
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
    return get_router_class(spec["router"]).from_spec(spec, path)
