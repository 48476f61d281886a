"""`roomctl`: the one console script. Each installed area registers its own subcommands.

Areas declare a `register(subparsers)` function under the `roomctl.commands` entry-point
group in `pyproject.toml`; this module imports none of them by name. An area whose extra is
not installed (a room Pi has no `central` extra, so no web stack) still shows up, and its
commands say which extra to install instead of failing with a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

GROUP = "roomctl.commands"


def _missing(ep: EntryPoint, exc: ImportError) -> Any:
    extra = ep.extras[0] if ep.extras else None
    hint = f"pip install 'roomctl[{extra}]'" if extra else "reinstall roomctl"

    def register(sub: argparse._SubParsersAction[Any]) -> None:
        p = sub.add_parser(ep.name, help=f"(not installed here: {hint})", add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)

        def fail(_: argparse.Namespace) -> int:
            print(
                f"roomctl: the '{ep.name}' commands are not installed on this machine "
                f"({exc.name or exc}); {hint}",
                file=sys.stderr,
            )
            return 2

        p.set_defaults(func=fail)

    return register


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
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.value):
        try:
            register = ep.load()
        except ImportError as exc:
            register = _missing(ep, exc)
        register(sub)
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
