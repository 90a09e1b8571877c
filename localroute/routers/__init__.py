"""Routers: score(batch) -> P(needs cloud), one registry by name (see base.py)."""

from localroute.routers.base import Router, RouterError, get_router_class, load_router, make_router

__all__ = ["Router", "RouterError", "get_router_class", "load_router", "make_router"]
