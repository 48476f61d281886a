"""The parser benchmark runs and reports every row it promises (no timing assertions)."""

from __future__ import annotations

import pytest

from bench.bench_parsers import main, run


def test_bench_rows_have_the_promised_shape() -> None:
    rows = run(quick=True)
    assert len(rows) == 8
    for row in rows:
        assert set(row) == {"name", "value", "unit", "baseline", "ratio", "target"}
        assert row["value"] > 0 and row["baseline"] > 0 and row["ratio"] > 0
    names = [r["name"] for r in rows]
    for protocol in ("masimo", "nonin-df2", "nonin-df7", "hl7"):
        assert f"{protocol} readings/s" in names
    assert sum(r["unit"] == "% of one core" and r["target"] == 0.1 for r in rows) == 4


def test_bench_main_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "hl7 readings/s" in out and "% of one core" in out
