"""One room's flood of bad messages against the logger's writer, with and without the
quarantine rate limit per room (issue 13), measured in the same run.

    python -m bench.bench_quarantine_rate [--quick]

The logger's own commit path (`Logger._commit`: classify, rate limit, SQLite WAL with
synchronous=FULL, the per-room caps) is fed the same interleaved stream twice, in batches of
1000 as the writer takes them: room 101 floods 30 kB junk payloads (quarantine material), room
102 sends contract-valid vitals. `off` sets the rate limit out of reach (the baseline: every
rejection stored, as before); `on` is the default (20/s, burst 200). Reported: the writer's
time for the whole stream (the time room 102's vitals wait behind the flood), the database size,
and the ratio on/off (target <= 0.5). No broker: the broker's side does not change.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import row
from broker.logger.config import LoggerConfig
from broker.logger.service import Inbound, Logger
from broker.logger.store import open_store
from contract import messages, topics
from contract.mqtt import close_client

SITE = "bench"
JUNK_BYTES = 30_000
BATCH = 1000


def _stream(junk: int, good: int) -> list[Inbound]:
    """`junk` bad messages of room 101 with `good` vitals of room 102 spread among them."""
    from datetime import UTC, datetime

    bad = b"{" + b"x" * (JUNK_BYTES - 1)
    out: list[Inbound] = []
    every = max(1, junk // max(1, good))
    seq = 0
    for n in range(junk):
        out.append(Inbound(topics.events(SITE, "101"), bad, n, 1, 0, time.time()))
        if n % every == 0 and seq < good:
            seq += 1
            vit = messages.VitalsMessage(
                site=SITE, room="102", epoch="0000000000000001", seq=seq,
                ts=datetime.now(UTC), clock_synced=True, spo2=97.0, protocol="masimo",
            )  # fmt: skip
            out.append(
                Inbound(topics.vitals(SITE, "102"), vit.model_dump_json().encode(), junk + seq,
                        1, 0, time.time())
            )  # fmt: skip
    return out


def _run_once(tmp: Path, name: str, stream: list[Inbound], **limits: Any) -> dict[str, float]:
    db = tmp / f"{name}.db"
    cfg = LoggerConfig(db=db, site=SITE, broker="mqtt://127.0.0.1:1", **limits)
    logger = Logger(cfg)
    store = open_store(db)
    try:
        t0 = time.perf_counter()
        for start in range(0, len(stream), BATCH):
            logger._commit(store, stream[start : start + BATCH])
        elapsed = time.perf_counter() - t0
    finally:
        store.close()
        close_client(logger.client)
    size = sum(p.stat().st_size for p in tmp.glob(f"{name}.db*"))
    return {
        "seconds": elapsed,
        "db_mib": size / 2**20,
        "stored_good": float(logger.totals.inserted),
        "quarantined": float(logger.totals.quarantined),
        "rate_limited": float(logger.totals.rate_limited),
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    junk, good = (5_000, 500) if quick else (20_000, 2_000)
    stream = _stream(junk, good)
    with tempfile.TemporaryDirectory(prefix="bench-qrate-") as tmp:
        off = _run_once(
            Path(tmp), "off", stream,
            quarantine_rate_per_room=100_000, quarantine_burst_per_room=1_000_000,
        )  # fmt: skip
        on = _run_once(Path(tmp), "on", stream)
    assert on["stored_good"] == off["stored_good"] == good
    note = (
        f"{junk} x {JUNK_BYTES // 1000} kB junk from one room + {good} vitals of another; "
        f"stored junk rows off/on {off['quarantined']:.0f}/{on['quarantined']:.0f}, "
        f"counted not stored {on['rate_limited']:.0f}; db {off['db_mib']:.0f}/"
        f"{on['db_mib']:.0f} MiB"
    )
    return [
        row(
            "logger: writer time for a flood + another room's vitals (rate limit on/off)",
            on["seconds"],
            "s",
            off["seconds"],
            "<= 0.5",
            note=note,
        )
    ]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    for r in run(ap.parse_args().quick):
        print(json.dumps(r))
