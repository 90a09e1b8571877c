"""Subcommands of `localroute`, one module each, listed here in the order `--help` shows them.

Every module defines `register(subparsers)`, which adds its parser(s) and sets `func` to a
handler `(args) -> int`.
"""

from __future__ import annotations

from cli.commands import (
    data,
    demo,
    evaluate,
    profile,
    ray_head,
    report,
    routers,
    serve,
    submit,
)

COMMANDS = (data, demo, evaluate, profile, routers, serve, ray_head, submit, report)


def register_all(subparsers) -> None:
    for module in COMMANDS:
        module.register(subparsers)
