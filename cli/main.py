"""The `localroute` command. Every failure the user can fix is one `error:` line and exit 2."""

from __future__ import annotations

import argparse
import sys

from cli.commands import register_all
from localroute.errors import LocalrouteError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="localroute",
        description="Route LLM traffic between a small local model and a cloud model, on Ray.",
    )
    register_all(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LocalrouteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
