"""Room footprint on a Pi's budget (issue 17): storage writes, CPU, peak RSS and start-up of
the room daemon with a 1 Hz simulated monitor.

Runs `roomctl room run --simulate` with a Masimo simulator (1 Hz, over a TCP bridge) against
a real Mosquitto and reads, over the same window after a warm-up, the daemon's
`/proc/<pid>/io` `write_bytes` (what reaches storage: SQLite's WAL, checkpoints, the
database), its CPU time (`/proc/<pid>/stat`, in clock ticks; and the threads' schedstat,
in nanoseconds: one tick is 0.006 % of a core over 180 s) and its peak RSS (VmHWM).
Start-up is the time from starting the process to a subscriber seeing the retained
`online` and the first `state` (the median of three first starts). Baseline, in the same
run and over the same window (import time excluded): an interpreter that imported the same
modules and sleeps; for start-up, the time that interpreter takes to import them (median
of three). Window: 180 s (30 s with --quick) after 10 s of warm-up. Targets: at most
2 KiB/s written, 0.1 % of one core, 45 MB peak RSS.

`python -m bench.bench_footprint [--quick] [--code DIR]`: --code runs the room from another
checkout (e.g. main, for a before/after figure) with this interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import row
from broker.mosquitto.run import Mosquitto, free_port, wait_port

IMPORTS = "import controller.daemon, controller.room_cli, firmware_py.monitors.link"
TICKS = os.sysconf("SC_CLK_TCK")
WARMUP_S = 10.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def run_ns(pid: int) -> int:
    """Nanoseconds on a CPU of the process's live threads (`/proc/<pid>/task/*/schedstat`):
    the same CPU time as `cpu_seconds` at nanosecond resolution instead of the clock tick
    (0.01 s, i.e. 0.006 % of a core over 180 s), but without threads that ended."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
    return total


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_bytes(pid: int) -> int:
    """Bytes this process caused to be written to storage (all its threads)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


class Sample:
    """CPU seconds and bytes written by one process, from the start of a window to its end."""

    def __init__(self, pid: int):
        self.pid = pid
        self.cpu0, self.wb0, self.t0 = cpu_seconds(pid), write_bytes(pid), time.monotonic()
        self.ns0 = run_ns(pid)

    def end(self) -> tuple[float, float, float, float]:
        """(share of one core, bytes written per second, peak RSS MB, share of one core at
        nanosecond resolution) over the window."""
        dt = time.monotonic() - self.t0
        return (
            (cpu_seconds(self.pid) - self.cpu0) / dt,
            (write_bytes(self.pid) - self.wb0) / dt,
            peak_rss_mb(self.pid),
            (run_ns(self.pid) - self.ns0) / 1e9 / dt,
        )


def watch_startup(
    url: str, site: str, room: str, seen: dict[str, float], client_id: str = "bench-footprint"
) -> Any:
    """A subscriber that notes when the retained `online` and the first `state` arrive."""
    from bench.common import subscribed_client

    prefix = f"clinic/{site}/room/{room}/"

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        leaf = msg.topic.removeprefix(prefix)
        if msg.retain:
            return  # left by an earlier start: only what this start publishes counts
        if leaf == "availability" and msg.payload == b"online":
            seen.setdefault("online", time.monotonic())
        elif leaf == "state":
            seen.setdefault("state", time.monotonic())
        elif leaf == "vitals":
            seen["vitals_bytes"] = seen.get("vitals_bytes", 0.0) + len(msg.payload)

    port = int(url.rsplit(":", 1)[1])
    return subscribed_client(port, prefix + "#", client_id, on_message)


def room_command(broker_url: str, state_dir: Path, monitor_port: int) -> list[str]:
    return [
        *[sys.executable, "-m", "controller.cli", "room", "run", "--simulate"],
        *["--site", "bench", "--room", "101", "--broker", broker_url],
        *["--state-dir", str(state_dir), "--clock", "synced"],
        *["--monitor-protocol", "masimo", "--monitor-transport", "tcp-client"],
        *["--monitor-address", f"127.0.0.1:{monitor_port}", "--log-level", "warning"],
    ]


STARTS = 3  # start-up is the median of this many starts (one start is noisy on a shared machine)


def import_seconds(code: Path | None, env: dict[str, str]) -> float:
    """Wall time of an interpreter that imports the room's modules (the start-up baseline):
    the median of STARTS runs."""
    times = []
    for _ in range(STARTS):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", IMPORTS], check=True, cwd=code, env=env)
        times.append(time.monotonic() - t0)
    return statistics.median(times)


def startup_seconds(
    broker_url: str, base: Path, monitor_port: int, code: Path | None, env: dict[str, str]
) -> float:
    """Median time from `roomctl room run` to the retained `online` and the first `state`
    at a subscriber, over STARTS first starts (each on a fresh state folder), each stopped
    cleanly afterwards."""
    times = []
    for n in range(STARTS):
        seen: dict[str, float] = {}
        watcher = watch_startup(broker_url, "bench", "101", seen, f"bench-startup-{n}")
        started = time.monotonic()
        room = subprocess.Popen(
            room_command(broker_url, base / f"start-{n}", monitor_port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=code,
            env=env,
        )
        try:
            gate = threading.Event()
            deadline = started + 60
            while not ("online" in seen and "state" in seen) and time.monotonic() < deadline:
                gate.wait(0.005)  # polled: the watcher's callback runs on paho's thread
            times.append(max(seen.get("online", 0.0), seen.get("state", 0.0)) - started)
        finally:
            room.terminate()
            room.wait(15)
            watcher.loop_stop()
            watcher.disconnect()
    return statistics.median(times)


def measure_room(seconds: float, code: Path | None = None) -> dict[str, float]:
    """Run one room and its baseline; return every figure."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        base = Path(tmp)
        port = free_port()
        procs: list[subprocess.Popen[bytes]] = []
        seen: dict[str, float] = {}
        with Mosquitto(base / "mosquitto") as broker:
            watcher = watch_startup(broker.url, "bench", "101", seen)
            try:
                sim = [sys.executable, "-m", "controller.cli", "monitor", "simulate"]
                sim += ["--protocol", "masimo", "--tcp", f"127.0.0.1:{port}", "--speed", "1"]
                procs.append(
                    subprocess.Popen(sim, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                )
                wait_port("127.0.0.1", port, 20)
                startup = startup_seconds(broker.url, base, port, code, env)
                room = subprocess.Popen(
                    room_command(broker.url, base / "room", port),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    cwd=code,
                    env=env,
                )
                procs.append(room)
                idle = subprocess.Popen(
                    [sys.executable, "-c", f"{IMPORTS}; import time; time.sleep(86400)"],
                    cwd=code,
                    env=env,
                )
                procs.append(idle)
                time.sleep(WARMUP_S)  # a benchmark, not a test: it measures over wall time
                room_s, idle_s = Sample(room.pid), Sample(idle.pid)
                vitals0 = seen.get("vitals_bytes", 0.0)
                time.sleep(seconds)
                room_cpu, room_wb, room_rss, room_ns = room_s.end()
                idle_cpu, idle_wb, idle_rss, idle_ns = idle_s.end()
                vitals_bps = (seen.get("vitals_bytes", 0.0) - vitals0) / seconds
                if room.poll() is not None:
                    raise RuntimeError(f"room exited early with {room.returncode}")
            finally:
                watcher.loop_stop()
                watcher.disconnect()
                for p in procs:
                    p.terminate()
                for p in procs:
                    p.wait(15)
    return {
        "cpu": room_cpu,
        "idle_cpu": idle_cpu,
        "cpu_ns": room_ns,
        "idle_cpu_ns": idle_ns,
        "write": room_wb,
        "idle_write": idle_wb,
        "rss": room_rss,
        "idle_rss": idle_rss,
        "startup": startup,
        "import": import_seconds(code, env),
        "vitals_bps": vitals_bps,
    }


def run(quick: bool = False, code: Path | None = None) -> list[dict[str, Any]]:
    seconds = 30.0 if quick else 180.0
    m = measure_room(seconds, code)
    note = (
        f"{seconds:.0f} s after {WARMUP_S:.0f} s warm-up; baseline = idle interpreter, same imports"
    )
    return [
        row(
            "room: storage writes at 1 Hz vitals",
            m["write"] / 1024,
            "KiB/s",
            m["idle_write"] / 1024,
            "<= 2 KiB/s",
            ratio=None,
            note=note + "; /proc/<pid>/io write_bytes (WAL, checkpoints included)",
        ),
        row(
            "room: vitals payload published",
            m["vitals_bps"] / 1024,
            "KiB/s",
            None,
            "-",
            note="what the writes above carry, for scale",
        ),
        row(
            "room: CPU with a 1 Hz monitor",
            m["cpu"] * 100,
            "% of one core",
            m["idle_cpu"] * 100,
            "<= 0.1 %",
            ratio=(m["cpu"] / m["idle_cpu"]) if m["idle_cpu"] else None,
            note=note,
        ),
        row(
            "room: CPU with a 1 Hz monitor (schedstat)",
            m["cpu_ns"] * 100,
            "% of one core",
            m["idle_cpu_ns"] * 100,
            "<= 0.1 %",
            ratio=None,
            note=note + "; /proc/<pid>/task/*/schedstat: nanoseconds, live threads only",
        ),
        row(
            "room: CPU seconds per hour",
            m["cpu"] * 3600,
            "s/h",
            m["idle_cpu"] * 3600,
            "<= 3.6 s/h",
            ratio=(m["cpu"] / m["idle_cpu"]) if m["idle_cpu"] else None,
        ),
        row("room: peak RSS", m["rss"], "MB", m["idle_rss"], "<= 45 MB"),
        row(
            "room: start-up to retained online + first state",
            m["startup"],
            "s",
            m["import"],
            "measured",
            note=f"median of {STARTS} first starts; baseline = importing the same modules",
        ),
    ]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--code", type=Path, help="run the room from this checkout")
    args = ap.parse_args()
    for r in run(args.quick, args.code):
        print(json.dumps(r))
