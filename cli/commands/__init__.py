"""Subcommands of `localroute`, one module each.

Every module here defines `register(subparsers)`, which adds its parser(s) and sets `func` to a
handler `(args) -> int`. The CLI discovers them, so a new stage adds a module and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil


def register_all(subparsers) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(subparsers)
