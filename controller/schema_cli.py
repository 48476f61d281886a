"""`roomctl schema --out DIR`: the JSON Schema of every payload of the contract."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from contract.topics import ALL_PAYLOAD_MODELS


def write_schemas(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in ALL_PAYLOAD_MODELS.items():
        path = out / f"{name}.schema.json"
        schema = model.model_json_schema(mode="serialization")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def _run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(contract_markdown(), end="")
        return 0
    if not args.out:
        print("roomctl schema: give --out DIR (or --markdown)", file=sys.stderr)
        return 2
    for path in write_schemas(Path(args.out)):
        print(path)
    return 0


BEGIN_MARK = "<!-- BEGIN GENERATED: roomctl schema --markdown -->"
END_MARK = "<!-- END GENERATED -->"


def _schema_type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    """A short human type for one JSON Schema property."""
    if "$ref" in prop:
        target = defs[prop["$ref"].rsplit("/", 1)[-1]]
        if "enum" in target:
            return " \\| ".join(f"`{v}`" for v in target["enum"])
        return str(target.get("title", "object"))
    if "anyOf" in prop:
        return " \\| ".join(_schema_type(p, defs) for p in prop["anyOf"])
    if "const" in prop:
        return f"`{prop['const']}`"
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    kind = prop.get("type", "any")
    if kind == "array" and "prefixItems" in prop:  # a tuple
        return "(" + ", ".join(_schema_type(p, defs) for p in prop["prefixItems"]) + ")"
    if kind == "array":
        return f"list of {_schema_type(prop.get('items', {}), defs)}"
    if kind == "string" and prop.get("format") == "date-time":
        return "RFC 3339 UTC"
    if kind == "object":
        return "object"
    return str(kind)


def _field_rows(model: type[BaseModel]) -> list[str]:
    """One table row per field of a model, then a blank line."""
    schema = model.model_json_schema(mode="serialization")
    defs = schema.get("$defs", {})
    rows = []
    for field, info in model.model_fields.items():
        required = "yes" if info.is_required() else "no"
        typ = _schema_type(schema["properties"][field], defs)
        rows.append(f"| `{field}` | {typ} | {required} |")
    return [*rows, ""]


def contract_markdown() -> str:
    """The topic table and one field table per payload, as docs/CONTRACT.md shows them."""
    from contract.topics import CENTRAL_TOPICS, ROOM_TOPICS

    lines = [
        "### Topics (prefix `clinic/{site}/room/{room}/`)",
        "",
        "| topic | retained | QoS | payload |",
        "|---|---|---|---|",
    ]
    for spec in ROOM_TOPICS:
        retained = "yes" if spec.retained else "no"
        lines.append(f"| `{spec.leaf}` | {retained} | {spec.qos} | {spec.payload} |")
    lines += [
        "",
        "`clinic/{site}/logger/status` (one logger) or `clinic/{site}/logger/{name}/status` "
        "(each of several): retained, QoS 1, `online` / `offline` (Will).",
        "",
        "### Central topics (prefix `clinic/{site}/`)",
        "",
        "| topic | retained | QoS | payload |",
        "|---|---|---|---|",
    ]
    for spec in CENTRAL_TOPICS:
        retained = "yes" if spec.retained else "no"
        lines.append(f"| `{spec.leaf}` | {retained} | {spec.qos} | {spec.payload} |")
    lines.append("")
    for name, model in ALL_PAYLOAD_MODELS.items():
        lines += [
            f"### {model.__name__} (`{name}`)",
            "",
            "| field | type | required |",
            "|---|---|---|",
        ]
        lines += _field_rows(model)
        # a field that is itself a model (health's `monitor`, `outbox`) gets its own table
        for field, info in model.model_fields.items():
            sub = info.annotation
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                lines += [
                    f"#### `{name}.{field}` ({sub.__name__})",
                    "",
                    "| field | type | required |",
                    "|---|---|---|",
                    *_field_rows(sub),
                ]
    return "\n".join(lines).rstrip() + "\n"


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("schema", help="write the JSON Schema of every message payload")
    p.add_argument("--out", metavar="DIR", help="folder to write *.schema.json into")
    p.add_argument("--markdown", action="store_true", help="print the tables of docs/CONTRACT.md")
    p.set_defaults(func=_run)
