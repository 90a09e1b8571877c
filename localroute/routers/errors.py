"""The one error the router package raises (the bottom of the package: imports nothing of it)."""

from __future__ import annotations

from localroute.errors import LocalrouteError


class RouterError(LocalrouteError):
    """Unknown router, unusable artifact, or data a router cannot train on."""
