"""`python -m tools.reliability`: rerun the fault campaign and the bad-input and security tests, and
write docs/RELIABILITY.md from what they measured.

How this works: the campaign IS the test suite (tests/test_reliability_*.py, test_fuzz_*.py,
test_security_matrix*.py), run by pytest in a child process from a repository checkout with
scale knobs in the environment (RELIABILITY_CYCLES, RELIABILITY_OUTAGE_S, ...): `--quick` uses
the small values of `make test`, the default the long ones. Each test appends the rows it
measured (fault, times, lost, recovery seconds, notes) to the JSON-lines file named by
RELIABILITY_RESULTS; pytest's JUnit XML gives each test's outcome, duration and failure
message. This module turns both into Markdown. It needs the repository (tests/) and
Mosquitto; it runs as root for the tmpfs of the disk-full test.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TEST_FILES = [
    "tests/test_reliability_kills.py",
    "tests/test_reliability_outage.py",
    "tests/test_reliability_disk.py",
    "tests/test_fuzz_logger.py",
    "tests/test_fuzz_config_contract.py",
    "tests/test_security_matrix.py",
    "tests/test_security_matrix_board.py",
]


@dataclass(frozen=True)
class Scale:
    cycles: int
    outage_s: float
    garbage_s: float
    random_payloads: int

    def env(self) -> dict[str, str]:
        return {
            "RELIABILITY_CYCLES": str(self.cycles),
            "RELIABILITY_OUTAGE_S": str(self.outage_s),
            "RELIABILITY_GARBAGE_S": str(self.garbage_s),
            "RELIABILITY_RANDOM_PAYLOADS": str(self.random_payloads),
        }


QUICK = Scale(cycles=2, outage_s=20, garbage_s=10, random_payloads=150)
FULL = Scale(cycles=10, outage_s=300, garbage_s=60, random_payloads=1000)


@dataclass(frozen=True)
class TestOutcome:
    name: str
    outcome: str  # passed | failed | error | skipped
    seconds: float
    message: str


def parse_junit(path: Path) -> list[TestOutcome]:
    if not path.exists():
        return []
    out = []
    for case in ET.parse(path).getroot().iter("testcase"):
        module = (case.get("classname") or "").rsplit(".", 1)[-1]
        name = f"{module}::{case.get('name')}"
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message = node.get("message") or (node.text or "")
                break
        out.append(TestOutcome(name, outcome, float(case.get("time") or 0), message))
    return out


def suite_time(path: Path) -> tuple[datetime, float]:
    """When the pytest run started and how long it took, from the JUnit XML."""
    suite = next(ET.parse(path).getroot().iter("testsuite"))
    started = datetime.fromisoformat(suite.get("timestamp") or datetime.now(UTC).isoformat())
    return started.astimezone(UTC), float(suite.get("time") or 0)


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def shown_command(scale: Scale, seed: int) -> str:
    knobs = " ".join(f"{k}={v}" for k, v in {**scale.env(), "RELIABILITY_SEED": seed}.items())
    return f"{knobs} python -m pytest " + " ".join(shlex.quote(f) for f in TEST_FILES)


def run_campaign(scale: Scale, seed: int, workdir: Path) -> None:
    """Run the tests with `scale`, leaving results.jsonl and junit.xml in `workdir`."""
    results, junit = workdir / "results.jsonl", workdir / "junit.xml"
    results.unlink(missing_ok=True)
    cmd = [
        sys.executable, "-m", "pytest", *TEST_FILES, "-q", "-p", "no:cacheprovider",
        "--basetemp", str(workdir / "tmp"), f"--junitxml={junit}",
        "-o", f"timeout={int(600 + scale.outage_s + 120 * scale.cycles)}",
    ]  # fmt: skip
    env = {
        **os.environ,
        **scale.env(),
        "RELIABILITY_SEED": str(seed),
        "RELIABILITY_RESULTS": str(results),
    }
    with (workdir / "pytest.out").open("wb") as out:
        subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(rows: list[dict[str, Any]], security: bool = False) -> list[str]:
    if security:
        lines = ["| check | cases | notes |", "|---|---|---|"]
        lines += [f"| {_cell(r['fault'])} | {r['times']} | {_cell(r['notes'])} |" for r in rows]
        return lines
    lines = [
        "| fault / input | times | lost | recovery median / max (s) | notes |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        rec = (
            f"{r['recovery_median_s']} / {r['recovery_max_s']}"
            if r.get("recovery_max_s") is not None
            else "-"
        )
        lost = "not measured (run failed)" if r["lost"] is None else r["lost"]
        lines.append(
            f"| {_cell(r['fault'])} | {r['times']} | {lost} | {rec} | {_cell(r['notes'])} |"
        )
    return lines


def render(
    rows: list[dict[str, Any]],
    outcomes: list[TestOutcome],
    started: datetime,
    seconds: float,
    command: str,
    scale: Scale,
    seed: int,
    quick: bool,
) -> str:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_kind.setdefault(r.get("kind", "fault"), []).append(r)
    failed = [o for o in outcomes if o.outcome != "passed"]
    lost = sum(r["lost"] or 0 for r in by_kind.get("fault", []))
    unmeasured = [r["fault"] for r in by_kind.get("fault", []) if r["lost"] is None]
    lines = [
        "# Reliability and security report",
        "",
        "<!-- Generated by `python -m tools.reliability"
        + (" --quick" if quick else "")
        + " --out docs/RELIABILITY.md`: do not edit by hand. -->",
        "",
        "roomctl is a secondary notification and recording system, not a certified medical "
        "alarm or nurse-call system: these figures are about not losing records and calls, "
        "not a claim of alarm-system safety.",
        "",
        f"Run {started.strftime('%Y-%m-%d %H:%M UTC')} on {platform.node()} "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}), seed {seed}, "
        f"{'quick' if quick else 'full'} scale: {scale.cycles} kill cycles, broker outage "
        f"{scale.outage_s:.0f} s, monitor garbage {scale.garbage_s:.0f} s, "
        f"{scale.random_payloads} random payloads. Took {seconds / 60:.1f} min. "
        f"{len(outcomes)} tests, {len(outcomes) - len(failed)} passed, {len(failed)} not.",
        "",
        f"**Lost across all faults: {lost}**"
        + (f"; not measured where a run failed: {', '.join(unmeasured)}" if unmeasured else "")
        + '. "Lost" counts `(site, room, epoch, seq)` a room created '
        "(its outbox's `last_seq`) that "
        "are not in the logger's database, less the vitals the outbox says it thinned "
        "(`vitals_thinned`); duplicates cannot exist (primary key), and each table is checked "
        "against the ledger. Recovery: for a SIGKILL, from the restart until every room has made "
        "a new message and the database holds everything made up to it; for the outage and "
        "the full disk, from the broker start / the space freed until the database holds "
        "every seq each room had made by then; for a monitor, from `monitor_link_lost` to "
        "`monitor_link_restored`.",
        "",
        "## Faults",
        "",
        *_table(by_kind.get("fault", [])),
        "",
        "## Bad input",
        "",
        *_table(by_kind.get("bad input", [])),
        "",
        "Property tests (hypothesis, 200 examples each, tests/test_fuzz_config_contract.py): "
        "the room and logger config loaders on any bytes and any value in any field; every "
        "contract model on any JSON and any bytes; vitals round trip; vitals limits, NaN and "
        "infinities; topics round trip. The monitor parsers are fuzzed by "
        "tests/test_monitor_fuzz.py.",
        "",
        "## Security",
        "",
        *_table(by_kind.get("security", []), security=True),
        "",
        "## Tests run",
        "",
        f"`{command}`",
        "",
        "| test | outcome | s | failure |",
        "|---|---|---|---|",
    ]
    for o in outcomes:
        msg = o.message.splitlines()[0][:400] if o.message else ""
        lines.append(f"| {o.name} | {o.outcome} | {o.seconds:.1f} | {_cell(msg)} |")
    return "\n".join(lines) + "\n\n" + static_sections()


HERE = Path(__file__).resolve().parent
ATTACKS_HEADING = "## Attacks tried (issue 13)"


def static_sections() -> str:
    """The hand-written part of the report: the attacks tried (one table per area, from
    `attacks/*.md`) and the bugs found and limits (`findings.md`). Kept as Markdown beside
    this module so the report can be refreshed without rerunning the campaign."""
    parts = [
        ATTACKS_HEADING,
        "",
        "Each row is an attack tried against the system as a careless day or an attacker would, "
        "the test that repeats it (real Mosquitto, real HTTP clients, real Chromium), what the "
        "system did, and what was lost.",
    ]
    for table in sorted((HERE / "attacks").glob("*.md")):
        parts += ["", table.read_text().strip()]
    parts += ["", (HERE / "findings.md").read_text().strip()]
    return "\n".join(parts) + "\n"


def refresh_static(out: Path) -> int:
    """Rewrite only the hand-written tail of an existing report (`--static-only`)."""
    try:
        text = out.read_text()
    except OSError as exc:
        print(f"tools.reliability: {out}: {exc}", file=sys.stderr)
        return 2
    cut = min((i for i in (text.find(ATTACKS_HEADING), text.find("## Bugs found")) if i >= 0),
              default=-1)  # fmt: skip
    if cut < 0:
        print(f"tools.reliability: {out} has no hand-written part to refresh", file=sys.stderr)
        return 2
    out.write_text(text[:cut] + static_sections())
    print(f"refreshed the attacks and findings in {out}")
    return 0


def main(quick: bool, out: Path, seed: int, workdir: Path | None, rerender: bool = False) -> int:
    """Run the campaign (or, with `rerender`, reuse the run kept in `workdir`) and report."""
    scale = QUICK if quick else FULL
    if workdir is None:
        if rerender:
            print("tools.reliability: --rerender needs --workdir", file=sys.stderr)
            return 2
        workdir = Path(tempfile.mkdtemp(prefix="roomctl-reliability-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if not rerender:
        if not (REPO / "tests" / "support" / "reliability_fleet.py").exists():
            print("tools.reliability: needs a repository checkout (tests/)", file=sys.stderr)
            return 2
        print(f"running the campaign ({'quick' if quick else 'full'}) in {workdir} ...",
              flush=True)  # fmt: skip
        run_campaign(scale, seed, workdir)
    junit = workdir / "junit.xml"
    outcomes = parse_junit(junit)
    if not outcomes:
        print(f"tools.reliability: pytest ran nothing, see {workdir / 'pytest.out'}",
              file=sys.stderr)  # fmt: skip
        return 2
    started, seconds = suite_time(junit)
    rows = read_rows(workdir / "results.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    text = render(rows, outcomes, started, seconds, shown_command(scale, seed), scale, seed, quick)
    out.write_text(text)
    failed = sum(1 for o in outcomes if o.outcome != "passed")
    print(f"wrote {out}: {len(outcomes)} tests, {failed} not passed, {seconds / 60:.1f} min")
    return 0 if failed == 0 else 1
