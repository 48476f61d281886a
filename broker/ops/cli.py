"""`roomctl health URL`: ask a central service's `/healthz` (systemd ExecStartPost, Ansible).

Exit 0 when the service says it can do its job (or, with `--require`, when the named checks
pass), 1 otherwise, printing the checks. `--wait S` polls (every 0.5 s) until healthy or S
seconds have passed, for a service that is still starting.
"""

from __future__ import annotations

import argparse
import json
import ssl
import time
import urllib.error
import urllib.request
from typing import Any


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("health", help="check a central service's /healthz")
    p.add_argument("url", help="e.g. http://127.0.0.1:9101/healthz")
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for it (default 0)")
    p.add_argument(
        "--require", action="append", default=[], metavar="CHECK",
        help="only these checks must pass (e.g. database); repeatable",
    )  # fmt: skip
    p.add_argument("--ca", help="CA file for an https URL")
    p.set_defaults(func=_health)


def ask(url: str, ca: str | None = None, timeout: float = 5.0) -> tuple[int | None, dict[str, Any]]:
    """(HTTP status or None, the JSON document or {"error": ...})."""
    context = ssl.create_default_context(cafile=ca) if url.startswith("https") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        with exc:
            try:
                return exc.code, json.loads(exc.read() or b"{}")
            except ValueError:
                return exc.code, {"error": f"HTTP {exc.code}"}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, {"error": str(getattr(exc, "reason", exc))}


def healthy(doc: dict[str, Any], status: int | None, require: list[str]) -> bool:
    checks = doc.get("checks") or {}
    if require:
        return all(checks.get(name) == "ok" for name in require)
    return status == 200 and bool(doc.get("ok"))


def _health(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + max(0.0, args.wait)
    while True:
        status, doc = ask(args.url, args.ca)
        ok = healthy(doc, status, args.require)
        if ok or time.monotonic() >= deadline:
            break
        time.sleep(0.5)  # a service still starting: poll until the deadline
    checks = doc.get("checks") or {}
    lines = [f"{name}: {value}" for name, value in checks.items()] or [
        str(doc.get("error") or f"HTTP {status}")
    ]
    print(f"{args.url}: {'healthy' if ok else 'NOT healthy'}")
    for line in lines:
        print(f"  {line}")
    return 0 if ok else 1
