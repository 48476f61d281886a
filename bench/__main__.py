"""`make bench` / `python -m bench [--quick] [--only NAME]`: every benchmark, one table.

Writes `bench/results.json`: for each benchmark its value, unit, the baseline measured in
the same run, the ratio and the target. Benchmarks are not tests: nothing here fails on a
missed target; a benchmark that crashes is reported and makes the exit code non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import machine

MODULES = (
    "bench.bench_call_latency",
    "bench.bench_outbox",
    "bench.bench_parsers",
    "bench.bench_logger",
    "bench.bench_quarantine_rate",
    "bench.bench_board",
    "bench.bench_board_limits",
    "bench.bench_footprint",
)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--quick", action="store_true", help="shorter runs (under two minutes in all)")
    ap.add_argument("--only", action="append", help="run only modules whose name contains this")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    args = ap.parse_args(argv)
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    started = time.monotonic()
    for name in MODULES:
        if args.only and not any(o in name for o in args.only):
            continue
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        try:
            got = importlib.import_module(name).run(args.quick)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        for r in got:
            r.setdefault("benchmark", name.rsplit(".", 1)[-1])
            print("   " + json.dumps(r), flush=True)
        rows.extend(got)
        print(f"   ({time.monotonic() - t0:.1f} s)", flush=True)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"roomctl benchmarks{' (quick)' if args.quick else ''}")
    for col in ("benchmark", "value", "unit", "baseline", "ratio", "target"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"],
            _fmt(r["value"]),
            str(r["unit"]),
            _fmt(r.get("baseline")),
            _fmt(r.get("ratio")),
            _fmt(r.get("target")),
        )
    Console(width=140).print(table)
    Path(args.out).write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "quick": args.quick,
                "machine": machine(),
                "seconds": round(time.monotonic() - started, 1),
                "failed": failed,
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
