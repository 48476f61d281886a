"""`roomctl`: the one console script. Each area registers its own subcommands.

The CLI is the one place that composes the whole distribution, so it may reach into
`broker` (central side) lazily; the controller's own modules never import `broker`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that expose `register(subparsers)`; each adds its subcommands and sets
# `func` (taking the parsed args, returning an exit code) on every leaf parser.
SUBCOMMAND_MODULES = (
    "controller.room_cli",
    "controller.monitor_cli",
    "controller.schema_cli",
    "broker.demo",
    "broker.cli",
    "broker.board_cli",
    "broker.reliability_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roomctl",
        description=(
            "Room controller platform for infusion clinics. A secondary notification and "
            "recording system: not a certified medical alarm or nurse-call system."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
