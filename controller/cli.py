"""`roomctl`: the one console script. Each installed area registers its own subcommands.

Areas declare a `register(subparsers)` function under the `roomctl.commands` entry-point
group in `pyproject.toml`, each marked with the extra it needs (`[room]`, `[central]`); this
module imports none of them by name. An area whose extra is not installed (a room Pi has no
`central` extra, so no web stack) still shows up, and its commands say which extra to
install instead of failing with a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points
from typing import Any

GROUP = "roomctl.commands"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def missing_for_extra(extra: str, dist: str = "roomctl") -> list[str]:
    """The packages an extra of `dist` asks for that are not installed here."""
    try:
        reqs = distribution(dist).requires or []
    except PackageNotFoundError:
        return []
    missing = []
    for req in reqs:
        spec, _, marker = req.partition(";")
        if re.search(rf"extra\s*==\s*['\"]{re.escape(extra)}['\"]", marker):
            m = _NAME.match(spec)
            if m is None:
                continue
            try:
                distribution(m.group(1))
            except PackageNotFoundError:
                missing.append(m.group(1))
    return missing


def _hint(ep: EntryPoint, why: str) -> str:
    extra = ep.extras[0] if ep.extras else None
    fix = f"pip install 'roomctl[{extra}]'" if extra else "reinstall roomctl"
    return f"not installed on this machine ({why}): {fix}"


def _not_installed(name: str, hint: str) -> Any:
    def fail(_: argparse.Namespace) -> int:
        print(f"roomctl {name}: {hint}", file=sys.stderr)
        return 2

    fail.accepts_anything = True  # type: ignore[attr-defined]
    return fail


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parser and every subparser below it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found.extend(_parsers(child))
    return found


def _register_uninstalled(sub: argparse._SubParsersAction[Any], ep: EntryPoint, why: str) -> None:
    """Show the area's commands, each saying which extra to install instead of running."""
    hint = _hint(ep, why)
    before = set(sub.choices)
    try:
        ep.load()(sub)  # an area's CLI module imports its heavy packages lazily
    except ImportError:
        p = sub.add_parser(ep.name, help=f"({hint})", add_help=False)
        p.set_defaults(func=_not_installed(ep.name, hint))
        return
    for name in set(sub.choices) - before:
        for parser in _parsers(sub.choices[name]):
            parser.description = f"{hint.upper()[:1]}{hint[1:]}. {parser.description or ''}"
            parser.set_defaults(func=_not_installed(name, hint))


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
        absent = [name for extra in ep.extras for name in missing_for_extra(extra)]
        if absent:  # an area whose extra is not installed (a room Pi has no web stack)
            _register_uninstalled(sub, ep, "missing " + ", ".join(absent))
            continue
        try:
            register = ep.load()
        except ImportError as exc:
            _register_uninstalled(sub, ep, f"cannot import {exc.name or exc}")
            continue
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    func = getattr(args, "func", None)
    if unknown and not getattr(func, "accepts_anything", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `roomctl log export ... | head`: the reader has gone; no traceback, and nothing more
        # is written (Python would try again at exit). 141 = 128 + SIGPIPE, as other tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
