"""docs/RELIABILITY.md carries the hand-written attacks and findings as they are in tools/."""

from __future__ import annotations

from pathlib import Path

from tools.reliability import __main__ as cli
from tools.reliability import report

REPO = Path(__file__).resolve().parents[1]


def test_the_report_ends_with_the_attacks_and_findings() -> None:
    text = (REPO / "docs/RELIABILITY.md").read_text()
    assert text.endswith(report.static_sections()), (
        "docs/RELIABILITY.md is behind tools/reliability/{attacks,findings}: run "
        "`python -m tools.reliability --static-only`"
    )
    assert "secondary notification and recording system" in text


def test_every_attack_table_names_a_test_that_exists() -> None:
    tests = {p.stem for p in (REPO / "tests").glob("test_*.py")}
    for table in (REPO / "tools/reliability/attacks").glob("*.md"):
        rows = [r for r in table.read_text().splitlines() if r.startswith("| ") and "---" not in r]
        assert len(rows) > 1, f"{table.name}: no rows"
        for row in rows[1:]:
            cell = row.split(" | ")[1]
            names = [
                n.strip().strip("`").split("::")[0].removeprefix("tests/").removesuffix(".py")
                for n in cell.split(",")
            ]
            missing = [n for n in names if n not in tests]
            assert not missing, f"{table.name}: {row[:60]}... names no test file {missing}"


def test_static_only_refreshes_the_tail_and_keeps_the_run(tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    out.write_text("# run\n\nmeasured rows\n\n## Bugs found and limits\n\nold text\n")
    assert cli.main(["--static-only", "--out", str(out)]) == 0
    assert out.read_text() == "# run\n\nmeasured rows\n\n" + report.static_sections()
    missing = tmp_path / "none.md"
    assert cli.main(["--static-only", "--out", str(missing)]) == 2
