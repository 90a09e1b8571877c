"""The names `localroute.routers.base` exported before the registry moved out (compatibility).

New code imports them from `localroute.routers`; the protocol lives in protocol.py and the name
-> class map in registry.py.
"""

from localroute.routers.errors import RouterError
from localroute.routers.protocol import Router
from localroute.routers.registry import ROUTERS, get_router_class, load_router, make_router

__all__ = ["ROUTERS", "Router", "RouterError", "get_router_class", "load_router", "make_router"]
