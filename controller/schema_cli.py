"""`roomctl schema --out DIR`: the JSON Schema of every payload of the contract."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from controller.contract import ALL_PAYLOAD_MODELS


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
    for path in write_schemas(Path(args.out)):
        print(path)
    return 0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("schema", help="write the JSON Schema of every message payload")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write *.schema.json into")
    p.set_defaults(func=_run)
