"""The board under abuse: a phase command while PDFs are being printed, and a nurse's login
while a thousand slow clients hold connections.

    python -m bench.bench_board_limits [--quick]

Set-up, all on this machine (loopback), real parts: a Mosquitto from the project's config;
the board (accounts, uvicorn with the board's own limits) in this process for the PDF part,
and `roomctl board` as its own process at 1,024 open files (systemd's default) for the slow
clients; real Chromium for every PDF.

1. Phase command latency (POST `/api/rooms/101/phase` until the broker's PUBACK), measured
   alone (the baseline) and again while 44 PDF reports are requested at once (two render,
   four wait, the rest are refused with 503). Before the render queue, 44 renders held every
   worker thread and one phase command took 42 s.
2. The nurse's `GET /login` alone (baseline), then with 1,050 slow sockets open (half-sent
   headers, from 35 loopback addresses, the request deadline set to 600 s so only the
   connection budget can help). Before the budget, it never answered.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import percentile, row
from broker.mosquitto.run import Mosquitto
from tests.support.board import PASSWORDS, BoardServer
from tests.support.board_attacks import WebClient, board_process, slow_socket

PDFS = 44


def _phase_latencies(nurse: WebClient, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        answer = nurse.act("/api/rooms/101/phase", {"phase": "pre_check", "confirm": True})
        out.append(time.perf_counter() - t0)
        if answer.status != 200:
            raise RuntimeError(f"phase command answered {answer.status}: {answer.body!r}")
    return out


def _pdf_part(broker: Mosquitto, tmp: Path, n: int) -> list[dict[str, Any]]:
    server = BoardServer(broker.url, tmp).start()
    try:
        nurse = WebClient(server.port, timeout=300)
        if nurse.login("alice", PASSWORDS["alice"]).status != 303:
            raise RuntimeError("login failed")
        _phase_latencies(nurse, 3)  # warm-up
        alone = _phase_latencies(nurse, n)
        queue = server.board.renders
        with ThreadPoolExecutor(PDFS) as pool:
            futures = [
                pool.submit(nurse.request, "GET", "/rooms/101/report.pdf") for _ in range(PDFS)
            ]
            deadline = time.monotonic() + 60
            while queue.active == 0 and time.monotonic() < deadline:
                time.sleep(0.01)  # benchmarks may wait; tests may not
            loaded = _phase_latencies(nurse, n)
            statuses = [f.result(timeout=600).status for f in futures]
    finally:
        server.stop()
    med_alone, med_loaded = statistics.median(alone), statistics.median(loaded)
    note = (
        f"{PDFS} PDFs at once: {statuses.count(200)} printed, {statuses.count(503)} got 503; "
        f"{n} commands each way"
    )
    return [
        row("phase command p50 while printing", med_loaded * 1000, "ms", med_alone * 1000,
            "ratio < 10", note=note),
        row("phase command max while printing", max(loaded) * 1000, "ms",
            percentile(alone, 100) * 1000, "< 1000 ms (was 42 s)"),
    ]  # fmt: skip


def _slow_part(broker: Mosquitto, tmp: Path, n: int) -> list[dict[str, Any]]:
    extra = ["--request-timeout", "600"]
    with board_process(broker.url, tmp, open_files=1024, extra=extra) as proc:
        nurse = WebClient(proc.port, timeout=60)

        def login_page_times() -> list[float]:
            out = []
            for _ in range(n):
                t0 = time.perf_counter()
                if nurse.request("GET", "/login").status != 200:
                    raise RuntimeError("no login page")
                out.append(time.perf_counter() - t0)
            return out

        login_page_times()  # warm-up
        alone = login_page_times()
        addresses = [f"127.0.0.{i}" for i in range(2, 37)]
        slow = [slow_socket(proc.port, addresses[i % len(addresses)]) for i in range(1050)]
        try:
            flooded = login_page_times()
        finally:
            for s in slow:
                s.close()
    return [
        row("nurse GET /login with 1,050 slow clients", statistics.median(flooded) * 1000, "ms",
            statistics.median(alone) * 1000, "answers (was: never)",
            note=f"roomctl board at 1024 open files; max {max(flooded) * 1000:.1f} ms"),
    ]  # fmt: skip


def run(quick: bool) -> list[dict[str, Any]]:
    n = 5 if quick else 20
    with tempfile.TemporaryDirectory(prefix="bench-board-limits-") as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto").start()
        try:
            (Path(tmp) / "pdf").mkdir()
            (Path(tmp) / "slow").mkdir()
            rows = _pdf_part(broker, Path(tmp) / "pdf", n)
            rows += _slow_part(broker, Path(tmp) / "slow", n)
        finally:
            broker.stop()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    for r in run(ap.parse_args().quick):
        print(r)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
