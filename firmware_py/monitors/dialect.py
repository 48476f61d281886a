"""HL7 dialects: which OBX rows are which vital, per monitor family, from data files.

How this works: each dialect is a TOML table in `dialect_tables/` (shipped with the
package): `mdc.toml` is the IHE PCD-01 / MDC default and every other table `extends` it
(`mindray_legacy`, `nihon_kohden`, `comen`). A table has `[codes]` (OBX-3 component 1),
`[names]` (component 2, the MDC reference id), `[labels]` (free-text names, compared
upper-case without spaces, `_`, `-`, `.`), `[units]` (OBX-6 text -> canonical unit),
the "no value" markers (`sentinels`, OBX-11 `no_value_status`, OBX-8 `no_value_flags`),
the rule for a code that disagrees with its name (`conflict`) and `[detect]` (when
auto-detection may pick it). A technician's local map file has the same shape and is laid
over the room's dialect (`monitor.dialect_map` in the room config): no code changes.

`load_dialect(name, local_map)` reads and checks a table; a bad file raises
`DialectError` naming the file and the key. `detect(...)` picks a dialect from the MSH
header, only where that is safe (docs/MONITORS.md). Every vendor code names its source in
the table's comments.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from contract.vitals import TEMP_SITES, VITAL_NAMES

TABLES = "dialect_tables"
DIALECTS: tuple[str, ...] = ("mdc", "mindray-legacy", "nihon-kohden", "comen")
AUTO = "auto"
CANONICAL_UNITS = frozenset({"%", "/min", "mmHg", "kPa", "degC", "degF", "1"})
CONFLICT_RULES = ("refuse", "code", "name")
MAX_TABLE_BYTES = 256 * 1024


class DialectError(ValueError):
    """A dialect table or local map file that cannot be used; the message names where."""


@dataclass(frozen=True)
class Entry:
    """What one code, name or label stands for. `field` "" means: not a vital, ignore."""

    field: str
    name: str = ""
    unit: str = ""
    scale: float = 1.0
    site: str | None = None


@dataclass(frozen=True)
class Dialect:
    name: str
    title: str = ""
    conflict: str = "refuse"
    sentinels: frozenset[float] = frozenset()
    no_value_status: frozenset[str] = frozenset()
    no_value_flags: frozenset[str] = frozenset()
    demo_processing_ids: frozenset[str] = frozenset()
    kind_by_control_id: Mapping[str, str] = field(default_factory=dict)
    alarm_priority_prefix: bool = False
    detect_names: tuple[str, ...] = ()
    detect_versions: tuple[str, ...] = ()
    legacy_control_ids: tuple[str, ...] = ()
    codes: Mapping[str, Entry] = field(default_factory=dict)
    names: Mapping[str, Entry] = field(default_factory=dict)
    labels: Mapping[str, Entry] = field(default_factory=dict)
    units: Mapping[str, str] = field(default_factory=dict)
    modules: Mapping[str, str] = field(default_factory=dict)
    alarm_labels: Mapping[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = ()


def label_key(text: str) -> str:
    """A free-text label as the tables store it: upper case, no spaces, `_`, `-`, `.`."""
    return "".join(c for c in text.upper() if c not in " _-.\t")


def _file_name(name: str) -> str:
    return name.replace("-", "_") + ".toml"


def _read_packaged(name: str) -> tuple[dict[str, Any], str]:
    if name not in DIALECTS:
        known = ", ".join(DIALECTS)
        raise DialectError(f"unknown monitor dialect {name!r}; expected one of {known}, auto")
    ref = resources.files("firmware_py.monitors").joinpath(TABLES, _file_name(name))
    where = f"dialect table {_file_name(name)}"
    try:
        return tomllib.loads(ref.read_text(encoding="utf-8")), where
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DialectError(f"{where}: {exc}") from exc


def read_map_file(path: Path) -> dict[str, Any]:
    """A technician's local map file (TOML); DialectError naming the file if unusable."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DialectError(f"monitor.dialect_map {path}: cannot read: {exc.strerror}") from exc
    if len(raw) > MAX_TABLE_BYTES:
        raise DialectError(f"monitor.dialect_map {path}: larger than {MAX_TABLE_BYTES} bytes")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DialectError(f"monitor.dialect_map {path}: not valid TOML: {exc}") from exc


def _entry(where: str, key: str, value: Any) -> Entry:
    if isinstance(value, str):
        value = {"field": value}
    if not isinstance(value, dict):
        raise DialectError(f"{where}: {key}: expected a table like {{ field = \"spo2\" }}")
    unknown = set(value) - {"field", "name", "unit", "scale", "site"}
    if unknown:
        raise DialectError(f"{where}: {key}: unknown key(s) {', '.join(sorted(unknown))}")
    fld = value.get("field", "")
    if fld != "" and fld not in VITAL_NAMES:
        raise DialectError(
            f"{where}: {key}.field: {fld!r} is not a vital; one of {', '.join(VITAL_NAMES)}"
            " (or \"\" to ignore the row)"
        )
    unit = value.get("unit", "")
    if unit and unit not in CANONICAL_UNITS:
        raise DialectError(
            f"{where}: {key}.unit: {unit!r}; one of {', '.join(sorted(CANONICAL_UNITS))}"
        )
    scale = value.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise DialectError(f"{where}: {key}.scale: must be a number")
    if not math.isfinite(scale) or scale <= 0:
        raise DialectError(f"{where}: {key}.scale: must be a finite number > 0")
    site = value.get("site")
    if site is not None and (fld != "temp_c" or site not in TEMP_SITES):
        raise DialectError(
            f"{where}: {key}.site: only for temp_c, one of {', '.join(TEMP_SITES)}"
        )
    name = value.get("name", "")
    if not isinstance(name, str) or not isinstance(unit, str):
        raise DialectError(f"{where}: {key}: name and unit are text")
    return Entry(field=fld, name=name, unit=unit, scale=float(scale), site=site)


def _str_list(where: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DialectError(f"{where}: {key}: expected a list of strings")
    return tuple(value)


def _overlay(base: Dialect, data: Mapping[str, Any], where: str) -> Dialect:
    """`base` with the sections of one table (or local map) laid over it."""
    known = {"dialect", "detect", "codes", "names", "labels", "units", "modules", "alarm_labels"}
    unknown = set(data) - known
    if unknown:
        raise DialectError(f"{where}: unknown section(s) {', '.join(sorted(unknown))}")
    head = data.get("dialect", {})
    changes: dict[str, Any] = {"files": (*base.files, where)}
    if not isinstance(head, dict):
        raise DialectError(f"{where}: [dialect] must be a table")
    for key, value in head.items():
        if key in ("extends",):
            continue
        if key == "title":
            changes["title"] = str(value)
        elif key == "conflict":
            if value not in CONFLICT_RULES:
                raise DialectError(
                    f"{where}: dialect.conflict: {value!r}; one of {', '.join(CONFLICT_RULES)}"
                )
            changes["conflict"] = value
        elif key == "sentinels":
            ok = isinstance(value, list) and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value
            )
            if not ok:
                raise DialectError(f"{where}: dialect.sentinels: expected a list of numbers")
            changes["sentinels"] = base.sentinels | {float(v) for v in value}
        elif key in ("no_value_status", "no_value_flags", "demo_processing_ids"):
            items = _str_list(where, f"dialect.{key}", value)
            changes[key] = getattr(base, key) | {v.strip().upper() for v in items}
        elif key == "kind_by_control_id":
            if not isinstance(value, dict):
                raise DialectError(f"{where}: dialect.kind_by_control_id: expected a table")
            changes[key] = {**base.kind_by_control_id, **{str(k): str(v) for k, v in value.items()}}
        elif key == "alarm_priority_prefix":
            changes[key] = bool(value)
        else:
            raise DialectError(f"{where}: dialect.{key}: unknown setting")
    detect = data.get("detect", {})
    for key, value in detect.items():
        items = _str_list(where, f"detect.{key}", value)
        if key == "names":
            changes["detect_names"] = tuple(v.upper() for v in items)
        elif key == "versions":
            changes["detect_versions"] = items
        elif key == "legacy_control_ids":
            changes["legacy_control_ids"] = items
        else:
            raise DialectError(f"{where}: detect.{key}: unknown setting")
    for section, norm in (("codes", str.strip), ("names", str.upper), ("labels", label_key)):
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise DialectError(f"{where}: [{section}] must be a table")
        merged = dict(getattr(base, section))
        for key, value in table.items():
            merged[norm(str(key))] = _entry(where, f"{section}.{key}", value)
        changes[section] = merged
    units = data.get("units", {})
    merged_units = dict(base.units)
    for key, value in units.items():
        if value not in CANONICAL_UNITS:
            raise DialectError(
                f"{where}: units.{key}: {value!r}; one of {', '.join(sorted(CANONICAL_UNITS))}"
            )
        merged_units[str(key).strip().upper()] = value
    changes["units"] = merged_units
    for section in ("modules", "alarm_labels"):
        table = data.get(section, {})
        merged_text = dict(getattr(base, section))
        for key, value in table.items():
            if section == "alarm_labels" and value not in VITAL_NAMES:
                raise DialectError(f"{where}: alarm_labels.{key}: {value!r} is not a vital")
            merged_text[label_key(str(key)) if section == "alarm_labels" else str(key)] = str(
                value
            )
        changes[section] = merged_text
    return replace(base, **changes)


def load_dialect(name: str, local_map: Mapping[str, Any] | None = None) -> Dialect:
    """The packaged dialect `name` (with the tables it extends), plus a local map on top."""
    chain: list[tuple[dict[str, Any], str]] = []
    current: str | None = name
    while current is not None:
        data, where = _read_packaged(current)
        chain.append((data, where))
        parent = data.get("dialect", {}).get("extends")
        if parent is not None and (parent == current or len(chain) > len(DIALECTS)):
            raise DialectError(f"{where}: dialect.extends: {parent!r} makes a loop")
        current = parent
    dialect = Dialect(name=name)
    for data, where in reversed(chain):
        dialect = _overlay(dialect, data, where)
    if local_map is not None:
        dialect = _overlay(dialect, local_map, "monitor.dialect_map")
    return dialect


class DialectSet:
    """The dialects a parser may use: one fixed, or every packaged one for auto-detection."""

    def __init__(self, name: str = AUTO, local_map: Mapping[str, Any] | None = None) -> None:
        if name != AUTO and name not in DIALECTS:
            known = ", ".join(DIALECTS)
            raise DialectError(f"unknown monitor dialect {name!r}; expected one of {known}, auto")
        self.name = name
        names = DIALECTS if name == AUTO else (name,)
        self.dialects = {n: load_dialect(n, local_map) for n in names}

    def pick(self, msh3: str, msh4: str, version: str, control_id: str) -> Dialect:
        if self.name != AUTO:
            return self.dialects[self.name]
        return self.dialects[detect(self.dialects, msh3, msh4, version, control_id)]


def detect(
    dialects: Mapping[str, Dialect], msh3: str, msh4: str, version: str, control_id: str
) -> str:
    """The dialect of a message, from its header only, where that is safe; else "mdc".

    A table may claim a message when its `detect.names` occur in MSH-3/MSH-4 (and, if it
    lists `detect.versions`, MSH-12 is one of them); Mindray's legacy output has an empty
    MSH-3/MSH-4, so it is claimed only with version 2.3.1 and one of its own MSH-10 kinds.
    Vendor codes alone never select a dialect: `101` is heart rate to Mindray only.
    """
    sender = f"{msh3} {msh4}".upper()
    version = version.strip()
    for name, dialect in dialects.items():
        if name == "mdc" or not dialect.detect_names:
            continue
        named = any(n in sender for n in dialect.detect_names)
        if named and (not dialect.detect_versions or version in dialect.detect_versions):
            return name
    if not sender.strip():
        for name, dialect in dialects.items():
            if (
                dialect.legacy_control_ids
                and version in dialect.detect_versions
                and control_id.strip() in dialect.legacy_control_ids
            ):
                return name
    return "mdc"
