"""`python -m bench.report`: the table of docs/PERFORMANCE.md, from bench/results.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

BEGIN = "<!-- BEGIN RESULTS: python -m bench.report -->"
END = "<!-- END RESULTS -->"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Run {results['when']} ({'quick' if results['quick'] else 'full'}, "
        f"{results['seconds']:.0f} s) on {m['cpu']}, {m['cores']} cores, Python {m['python']}.",
        "",
        "| benchmark | value | unit | baseline (same run) | ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["results"]:
        lines.append(
            f"| {r['name']} | {_fmt(r['value'])} | {r['unit']} | {_fmt(r.get('baseline'))} "
            f"| {_fmt(r.get('ratio'))} | {_fmt(r.get('target'))} |"
        )
    if results.get("failed"):
        lines += ["", f"Failed to run: {', '.join(results['failed'])}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    results_path = Path(args[0]) if args else Path("bench/results.json")
    doc = Path(args[1]) if len(args) > 1 else Path("docs/PERFORMANCE.md")
    text = doc.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    doc.write_text(text[:start] + "\n" + table(json.loads(results_path.read_text())) + text[end:])
    print(f"updated {doc} from {results_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
