"""The routers by name: an explicit map, as RouteLLM's ROUTER_CLS, and loading artifacts.

The router modules import the protocol, never this registry; importing them is cheap (torch,
transformers and the embedding model load when a router first needs them). The stack, built from
the other routers (`members.py`), is the one router above them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from localroute.routers.members import MEMBERS, load_artifact, router_class
from localroute.routers.protocol import Router
from localroute.routers.stacked import StackRouter

ROUTERS: dict[str, type[Router]] = {**MEMBERS, "stack": StackRouter}
assert all(cls.name == name for name, cls in ROUTERS.items()), "a router's name is its key"


def get_router_class(name: str) -> type[Router]:
    return router_class(name, ROUTERS)


def make_router(name: str, **params: Any) -> Router:
    """A new, unfitted router (`seed` and the router's own parameters as keywords)."""
    return get_router_class(name)(**params)


def load_router(path: str | Path) -> Router:
    """The router an artifact directory holds, calibrated and with its `fingerprint`."""
    return load_artifact(path, ROUTERS)
