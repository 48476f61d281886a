"""Room config problems phrased for a technician: line numbers, "did you mean", plain words.

How this works: `describe(exc, model)` turns a pydantic `ValidationError` into lines such as
`gpio.call_pin: must be a whole number (got 'x')` or
`stat_dir: unknown setting; did you mean state_dir?`, never pydantic's own wording ("Value
error, ...", "Input should be ...", regex patterns). `with_lines(text, problems)` prefixes each
with the TOML line that holds the key (`line 3: ...`) where it can be found. `file_problems`
checks what a loaded config names on disk: certificates, key and CA must exist and be
readable (errors: the room cannot connect without them); a monitor's serial device that is
not there is a warning (it may be plugged in later; the link keeps retrying).
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

# pydantic error types -> what a technician reads (the value is added after)
_PLAIN = {
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text in quotes",
    "dict_type": "must be a table ([section] or { ... })",
    "list_type": "must be a list ([ ... ])",
    "tuple_type": "must be a list ([ ... ])",
    "finite_number": "must be a finite number",
    "missing": "is required",
}
_IDENT_WORDS = (
    "lower-case letters, digits, '-' or '_' (1-63 characters, starting with a letter or digit)"
)


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The settings allowed where `loc` points (for "did you mean")."""
    current: Any = model
    for part in loc[:-1]:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = field.annotation
        # unwrap `X | None`
        args = getattr(current, "__args__", ())
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if models:
            current = models[0]
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _plain(err: Any) -> str:
    kind = err["type"]
    value = err.get("input")
    shown = f" (got {value!r})" if isinstance(value, (str, int, float, bool)) else ""
    if kind in _PLAIN:
        return _PLAIN[kind] + (shown if kind != "missing" else "")
    if kind == "string_pattern_mismatch":
        pattern = str(err.get("ctx", {}).get("pattern", ""))
        if "a-z0-9" in pattern:
            return f"must be {_IDENT_WORDS}{shown}"
        return f"is not in the expected form{shown}"
    if kind == "literal_error":
        expected = str(err.get("ctx", {}).get("expected", ""))
        return f"must be one of {expected}{shown}"
    if kind == "enum":
        expected = str(err.get("ctx", {}).get("expected", ""))
        return f"must be one of {expected}{shown}"
    msg = str(err["msg"])
    msg = re.sub(r"^(Value|Assertion) error, ", "", msg)
    msg = re.sub(r"^Input should be ", "must be ", msg)
    msg = re.sub(r"^String should have ", "must have ", msg)
    msg = re.sub(r"^List should have ", "must have ", msg)
    msg = re.sub(r"^Tuple should have ", "must have ", msg)
    return msg + shown


def describe(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """One line per problem: `dotted.key: what is wrong`."""
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            key = str(loc[-1]) if loc else ""
            close = difflib.get_close_matches(key, _field_names(model, loc), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else " (check the spelling)"
            problems.append(f"{where}: unknown setting{hint}")
        else:
            problems.append(f"{where}: {_plain(err)}")
    return problems


_TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"']+)\s*=")


def line_of(text: str, dotted: str) -> int | None:
    """The 1-based line of `a.b.c` in a TOML text: key `c` inside table `[a.b]` (or `[a]`
    with `b.c`), else the table header itself; None when it cannot be found (a value that
    came from a flag, an array of tables)."""
    parts = [p for p in dotted.split(".") if not p.isdigit()]
    if not parts:
        return None
    table: list[str] = []
    header_line: int | None = None
    for n, line in enumerate(text.splitlines(), 1):
        m = _TABLE.match(line)
        if m:
            table = [p.strip().strip("\"'") for p in m.group(1).split(".")]
            if table == parts:
                header_line = n
            continue
        k = _KEY.match(line)
        if k and [*table, k.group(1).strip("\"'")] == parts:
            return n
    return header_line


def with_lines(text: str, problems: list[str]) -> list[str]:
    """Prefix each `dotted.key: ...` problem with `line N: ` where the key is in `text`."""
    out = []
    for problem in problems:
        dotted = problem.split(":", 1)[0]
        n = line_of(text, dotted)
        out.append(f"line {n}: {problem}" if n is not None else problem)
    return out


def _readable(path: Path) -> str | None:
    if not path.exists():
        return "does not exist"
    if not path.is_file():
        return "is not a file"
    if not os.access(path, os.R_OK):
        return "is not readable by this user"
    return None


def file_problems(config: Any) -> tuple[list[str], list[str]]:
    """(errors, warnings) about the files and devices a loaded `RoomConfig` names."""
    errors: list[str] = []
    warnings: list[str] = []
    for name in ("ca", "cert", "key"):
        value = getattr(config.broker, name, None)
        if value is None:
            continue
        why = _readable(Path(value))
        if why is not None:
            errors.append(f"broker.{name}: {value} {why}")
    monitor = config.monitor
    address = getattr(monitor, "address", None)
    if monitor.protocol is not None and isinstance(address, str) and address.startswith("/dev/"):
        if not Path(address).exists():
            warnings.append(
                f"monitor.address: {address} does not exist now (is the monitor's cable "
                "plugged in? the room keeps retrying)"
            )
        elif not os.access(address, os.R_OK | os.W_OK):
            errors.append(
                f"monitor.address: {address} is not readable and writable by this user "
                "(add it to the 'dialout' group)"
            )
    return errors, warnings
