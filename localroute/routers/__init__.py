"""Routers: score(batch) -> calibrated P(needs cloud); an explicit name -> class map.

Modules, bottom up: errors, features (what a router reads; no pyarrow), calibration (Platt /
isotonic, Brier, ECE), threshold, training (fit, calibration, the Ray Train loop), protocol (the
Router class and its artifact), embedders, baselines / embedding_routers / finetuned (the
routers), registry (name -> class, load_router), config (the `routers:` section), examples
(training pairs from the outcome table: the only module on pyarrow and the data stack).
"""

from localroute.routers.errors import RouterError
from localroute.routers.protocol import Router
from localroute.routers.registry import ROUTERS, get_router_class, load_router, make_router
from localroute.routers.training import TrainConfig, fit

__all__ = [
    "ROUTERS",
    "Router",
    "RouterError",
    "TrainConfig",
    "fit",
    "get_router_class",
    "load_router",
    "make_router",
]
