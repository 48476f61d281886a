"""`python -m tools.reliability [--quick] --out docs/RELIABILITY.md`: the fault campaign and its
report (`report.py`). Run from the repository root: it runs the repository's tests."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.reliability import report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.reliability",
        description="Rerun the fault campaign (kills, outage, disk, bad input, security) and "
        "report. Runs tests/test_reliability_*, test_fuzz_* and test_security_matrix* from "
        "a repository checkout with larger settings (--quick: those of `make test`) and "
        "writes a Markdown report. Needs Mosquitto; the disk-full test mounts a tmpfs (root).",
    )
    p.add_argument("--quick", action="store_true", help="small cycles and a 20 s outage")
    p.add_argument("--out", type=Path, default=Path("docs/RELIABILITY.md"))
    p.add_argument("--seed", type=int, default=8, help="seed of the random kill moments")
    p.add_argument("--workdir", type=Path, help="where the runs keep their files (default tmp)")
    p.add_argument(
        "--rerender",
        action="store_true",
        help="write the report again from the run kept in --workdir (same --quick/--seed)",
    )
    p.add_argument(
        "--static-only",
        action="store_true",
        help="only rewrite the hand-written part of --out (attacks tried, findings)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.static_only:
        return report.refresh_static(args.out)
    try:
        return report.main(args.quick, args.out, args.seed, args.workdir, args.rerender)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
