"""The router a replica serves, with its operating point and controller, swapped without a
restart when its artifact changes (TrafficBench's loop: retrain, then serve the new router).

With `serve.router.watch_s` > 0 each ingress replica polls the artifact's router.json; a new
fingerprint is loaded in a thread (load_router checks the fingerprint against the weights, so a
half-written artifact fails and is retried at the next poll), checked against the deployed
models exactly as at start, and installed as one new :class:`Slot` in a single assignment on the
replica's event loop. A request takes the slot once, when it begins, so requests in flight finish
on the old router and new ones get the new; a refused artifact (another pair, unreadable) is
logged and counted and the old router keeps serving. The live estimates and the local queue are
the deployment's, not the router's: they carry over; the target tracker starts anew.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localroute.core.controller import RouteController
from localroute.core.operating_point import resolve_operating_point
from serve.decision import UNTRAINED

log = logging.getLogger("ray.serve")


@dataclass(frozen=True)
class Slot:
    """What one request is decided with: the router, its controller, what it was trained for."""

    router: Any
    controller: RouteController
    pairing: dict | None = None
    pairing_line: str | None = None

    @property
    def name(self) -> str:
        return self.router.name


class ServedRouter:
    def __init__(self, cfg, source: dict[str, Any], prior, estimates, load) -> None:
        from localroute.routers import load_router, make_router

        self.cfg, self.prior, self.estimates, self.load = cfg, prior, estimates, load
        self.artifact = source.get("artifact")
        self.workload_alpha = source.get("alpha")
        if self.artifact:
            router = load_router(self.artifact)
        else:
            router = make_router(source["name"], **source.get("params", {}))
        self.swaps = self.refused = 0
        self.last_refusal: str | None = None
        self.current = self._slot(router, source.get("pairing"), source.get("pairing_line"))
        self._untrained: dict[str, Any] = {}

    def _slot(self, router, pairing=None, line=None) -> Slot:
        point = resolve_operating_point(
            router if self.artifact else None,
            alpha=self.cfg.alpha,
            theta=self.cfg.theta,
            target=self.cfg.target(),
            workload_alpha=self.workload_alpha,
        )
        ctl = RouteController(point, self.prior, estimates=self.estimates, load=self.load)
        return Slot(router, ctl, pairing, line)

    def router(self, slot: Slot, name: str):
        """The served router, or an untrained one a RouteLLM-style model name asks for."""
        if name == slot.name:
            return slot.router
        if name not in self._untrained:
            from localroute.routers import make_router

            assert name in UNTRAINED
            self._untrained[name] = make_router(name)
        return self._untrained[name]

    # ------------------------------------------------------------------ the swap

    def _fingerprint_on_disk(self) -> str | None:
        try:
            spec = json.loads((Path(self.artifact) / "router.json").read_text())
        except (OSError, ValueError):
            return None
        return spec.get("fingerprint")

    def _load_checked(self):
        """(router, pairing) of the artifact on disk, checked; raises on anything wrong."""
        from localroute.routers import load_router
        from localroute.routers.trained_for import check_pairing

        router = load_router(self.artifact)
        pairing = check_pairing(router.info, self.cfg.deployed_names(), self.cfg.router.stand_ins)
        return router, pairing

    async def check_once(self) -> bool:
        """Adopt the artifact on disk if its fingerprint changed; True when it swapped."""
        fp = self._fingerprint_on_disk()
        if fp is None or fp == self.current.router.fingerprint or fp == self.last_refusal:
            return False
        from localroute.errors import ConfigError

        try:
            router, pairing = await asyncio.to_thread(self._load_checked)
        except Exception as exc:  # noqa: BLE001 - the old router keeps serving
            self.refused += 1
            if isinstance(exc, ConfigError):  # trained for other models: for good
                self.last_refusal = fp
            log.warning("router artifact %s not adopted: %s", fp, exc)
            return False
        old = self.current.router.artifact_id
        self.current = self._slot(router, pairing.to_dict(), pairing.line())  # one assignment
        self.swaps += 1
        log.warning("router swapped without a restart: %s -> %s", old, router.artifact_id)
        return True

    async def watch(self) -> None:
        """Poll every `serve.router.watch_s` for the life of the replica."""
        while True:
            await asyncio.sleep(self.cfg.router.watch_s)
            try:
                await self.check_once()
            except Exception as exc:  # noqa: BLE001 - a poll must never end the watch
                log.warning("router watch: %s", type(exc).__name__)

    def state(self) -> dict[str, Any]:
        r = self.current.router
        return {
            "router": r.name,
            "fingerprint": r.fingerprint,
            "degenerate": r.info.get("degenerate"),
            "swaps": self.swaps,
            "refused": self.refused,
            "pairing": self.current.pairing,
        }
