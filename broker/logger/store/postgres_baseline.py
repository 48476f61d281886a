"""The bare COPY rate of vitals rows into a PostgreSQL server: the benchmarks' baseline.

`copy_rate(url, rows)` COPYs `rows` vitals rows (the store's own column layout and values of
the same shape as the logger writes) into a temporary table shaped like `vitals`, in one
transaction, and returns rows per second including the COMMIT. It writes nothing that lasts.
The SQL lives here because only the store package speaks the logger's schema.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from broker.logger.store.batch import VITAL_ROW_COLUMNS
from broker.logger.store.postgres_schema import connect


def copy_rate(url: str, rows: Iterable[tuple[object, ...]]) -> tuple[int, float]:
    """(rows copied, rows per second) of one COPY + COMMIT into a temporary vitals table."""
    conn = connect(url)
    try:
        conn.execute("CREATE TEMPORARY TABLE bench_vitals (LIKE vitals INCLUDING ALL)")
        n = 0
        started = time.perf_counter()
        sql = f"COPY bench_vitals ({VITAL_ROW_COLUMNS}) FROM STDIN"
        with conn.transaction(), conn.cursor() as cur, cur.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
        elapsed = time.perf_counter() - started
        return n, n / elapsed if elapsed > 0 else float("inf")
    finally:
        conn.close()


def vitals_row(
    site: str, room: str, epoch: str, seq: int, ts: str, received_at: str
) -> tuple[object, ...]:
    """A vitals row in `VITAL_ROW_COLUMNS` order, like a simulated room's reading."""
    from contract.messages import VITAL_FIELDS

    values = {"spo2": 97.0, "pulse_rate": 70.0, "heart_rate": 70.0, "nibp_sys": 120.0}
    vitals = [values.get(f) for f in VITAL_FIELDS]
    return (site, room, epoch, seq, ts, 1, received_at, *vitals, "simulated", None, "[]", "[]",
            None, None, None)  # fmt: skip
