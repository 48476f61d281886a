"""Room footprint: the room daemon with a 1 Hz simulated monitor, CPU per hour and peak RSS.

Runs `roomctl room run --simulate` with a Masimo simulator (1 Hz, over a TCP bridge) against
a real Mosquitto for ten minutes (one with --quick), and reads the daemon's CPU time and peak
RSS (VmHWM) from /proc. Baseline, in the same run and for the same time: an idle Python
interpreter that imported the same modules. Targets: under 1 % of one core, under 60 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import row
from broker.mosquitto.run import Mosquitto, free_port, wait_port

IMPORTS = "import controller.daemon, controller.room_cli, firmware_py.monitors.link"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(proc: subprocess.Popen[bytes], seconds: float, warmup: float) -> tuple[float, float]:
    """CPU seconds used between warm-up and the end, and peak RSS."""
    time.sleep(warmup)  # a benchmark, not a test: it measures over wall time on purpose
    c0, t0 = cpu_seconds(proc.pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(proc.pid), time.monotonic()
    if proc.poll() is not None:
        raise RuntimeError(f"process exited early with {proc.returncode}")
    return (c1 - c0) / (t1 - t0), peak_rss_mb(proc.pid)


def run(quick: bool = False) -> list[dict[str, Any]]:
    seconds = 45.0 if quick else 600.0
    warmup = 5.0
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        base = Path(tmp)
        port = free_port()
        procs: list[subprocess.Popen[bytes]] = []
        with Mosquitto(base / "mosquitto") as broker:
            try:
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "controller.cli",
                            "monitor",
                            "simulate",
                            "--protocol",
                            "masimo",
                            "--tcp",
                            f"127.0.0.1:{port}",
                            "--speed",
                            "1",
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
                wait_port("127.0.0.1", port, 20)
                room = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "controller.cli",
                        "room",
                        "run",
                        "--simulate",
                        "--site",
                        "bench",
                        "--room",
                        "101",
                        "--broker",
                        broker.url,
                        "--state-dir",
                        str(base / "room"),
                        "--monitor-protocol",
                        "masimo",
                        "--monitor-transport",
                        "tcp-client",
                        "--monitor-address",
                        f"127.0.0.1:{port}",
                        "--log-level",
                        "warning",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                procs.append(room)
                idle = subprocess.Popen(
                    [sys.executable, "-c", f"{IMPORTS}; import time; time.sleep({seconds + 60})"]
                )
                procs.append(idle)
                # both measured over the same window (the idle one read at the end)
                room_cpu, room_rss = measure(room, seconds, warmup)
                idle_cpu = cpu_seconds(idle.pid) / (seconds + warmup)
                idle_rss = peak_rss_mb(idle.pid)
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    p.wait(15)
    return [
        row(
            "room: CPU with a 1 Hz monitor",
            room_cpu * 100,
            "% of one core",
            idle_cpu * 100,
            "< 1 %",
            ratio=None,
            note=f"{seconds:.0f} s; baseline = idle interpreter, same imports",
        ),
        row(
            "room: CPU seconds per hour",
            room_cpu * 3600,
            "s/h",
            idle_cpu * 3600,
            "< 36 s/h",
            ratio=None,
        ),
        row("room: peak RSS", room_rss, "MB", idle_rss, "< 60 MB"),
    ]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    for r in run(ap.parse_args().quick):
        print(json.dumps(r))
