"""`roomctl reliability [--quick] --out docs/RELIABILITY.md`: the fault campaign and its report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from broker.reliability_report import main

    return main(args.quick, args.out, args.seed, args.workdir, args.rerender)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "reliability",
        help="rerun the fault campaign (kills, outage, disk, bad input, security) and report",
        description="Runs tests/test_reliability_*, test_fuzz_* and test_security_matrix* from "
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
    p.set_defaults(func=_run)
