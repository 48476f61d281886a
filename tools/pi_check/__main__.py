"""`make pi-check` / `python -m tools.pi_check`: the room on the Pi's architecture (issue 17).

Builds (once, then cached) an arm64 Debian 12 root under qemu user-mode emulation,
provisions a fresh copy with the project's Ansible room role from aarch64 wheels, runs
`roomctl room check-config` inside it, then the room daemon for at least `--seconds`
against a Mosquitto on this host with a simulated Masimo monitor, and proves: the room comes
online, publishes vitals, a simulated press places a call, and the logger on the host
stores it. Prints one line with what it proved (exit 0) or what failed (exit 1).
Needs root. Slow: see docs/PROVISIONING.md ("Checking a release on arm64").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from broker.logger.store import open_store
from broker.mosquitto.run import Mosquitto, free_port, wait_port
from tools.pi_check import root as pi

SITE, ROOM = "picheck", "101"
PREFIX = f"clinic/{SITE}/room/{ROOM}/"
TICKS = os.sysconf("SC_CLK_TCK")


class Watch:
    """Everything the host's subscriber saw of the room (paho's thread fills it)."""

    def __init__(self, port: int):
        self.cond = threading.Condition()
        self.online_at: float | None = None
        self.vitals = 0
        self.call_status: str | None = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, "pi-check", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe(PREFIX + "#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        leaf = msg.topic.removeprefix(PREFIX)
        with self.cond:
            if leaf == "availability" and msg.payload == b"online" and self.online_at is None:
                self.online_at = time.monotonic()
            elif leaf == "vitals":
                self.vitals += 1
            elif leaf == "call":
                self.call_status = json.loads(msg.payload)["status"]
            self.cond.notify_all()

    def wait(self, what: str, predicate: object, timeout: float) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):  # type: ignore[arg-type]
                raise pi.CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")

    def press(self) -> None:
        for action in ("press", "release"):
            payload = json.dumps({"button": "call", "action": action})
            self.client.publish(PREFIX + "sim/button", payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@contextlib.contextmanager
def mounted_proc(root: Path) -> Iterator[None]:
    (root / "proc").mkdir(exist_ok=True)
    pi.run(["mount", "-t", "proc", "proc", root / "proc"], "mounting /proc in the root")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(root / "proc")], check=False)


def logger_stored_call(db: Path) -> int | None:
    """The seq of the room's call_placed event in the logger's store, if it is there."""
    if not db.exists():
        return None
    try:
        store = open_store(db, readonly=True)
    except (sqlite3.Error, OSError):
        return None  # the logger has not created it yet
    try:
        events = store.events(SITE, ROOM, "1970-01-01T00:00:00Z")
    except sqlite3.Error:
        return None
    finally:
        store.close()
    placed = [e for e in events if e["kind"] == "call_placed"]
    return int(placed[0]["seq"]) if placed else None


def check(work: Path, seconds: float) -> str:
    t0 = time.monotonic()
    pi.ensure_binfmt()
    pi.root_tarball()
    t_root = time.monotonic()
    root = pi.unpack_root(work / "root")
    wheels, n_wheels = pi.aarch64_wheels(work / "wheels")
    broker_port, monitor_port = free_port(), free_port()
    inv = work / "inventory.json"
    inv.write_text(json.dumps(pi.inventory(root, wheels, broker_port, monitor_port), indent=1))
    pi.provision(work, inv)
    t_prov = time.monotonic()
    roomctl = "/opt/roomctl/venv/bin/roomctl"
    pi.run(
        ["chroot", root, roomctl, "room", "check-config", "/etc/roomctl/room.toml"],
        "roomctl room check-config in the root",
        timeout=300,
    )
    machine = pi.run(["chroot", root, "/usr/bin/uname", "-m"], "uname in the root").strip()
    py = pi.run(["chroot", root, "/usr/bin/python3", "-V"], "python3 in the root").strip()
    bin_dir = Path(sys.executable).parent
    simulator: list[str | Path] = [bin_dir / "roomctl", "monitor", "simulate"]
    simulator += ["--protocol", "masimo", "--tcp", f"127.0.0.1:{monitor_port}", "--speed", "1"]
    procs: list[subprocess.Popen[bytes]] = []
    with Mosquitto(work / "mosquitto", port=broker_port) as broker, mounted_proc(root):
        watch = Watch(broker_port)
        try:
            db = work / "logger.sqlite3"
            procs.append(
                subprocess.Popen(
                    [
                        bin_dir / "roomctl",
                        "logger",
                        "--broker",
                        broker.url,
                        "--db",
                        db,
                        "--site",
                        SITE,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            procs.append(
                subprocess.Popen(
                    simulator,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            wait_port("127.0.0.1", monitor_port, 30)
            started = time.monotonic()
            log = (work / "room.log").open("wb")
            room = subprocess.Popen(
                ["chroot", str(root), roomctl, "room", "run", "--config", "/etc/roomctl/room.toml"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            procs.append(room)
            watch.wait("the retained online", lambda: watch.online_at is not None, 180)
            assert watch.online_at is not None
            online_s = watch.online_at - started
            watch.wait("vitals", lambda: watch.vitals >= 3, 60)
            watch.press()
            watch.wait("the call placed", lambda: watch.call_status == "placed", 30)
            deadline = time.monotonic() + 60
            stored = logger_stored_call(db)
            while stored is None and time.monotonic() < deadline:
                time.sleep(0.2)  # the logger commits in batches: poll its database
                stored = logger_stored_call(db)
            if stored is None:
                raise pi.CheckFailed("the logger on the host did not store the call_placed event")
            cpu0, t_cpu = cpu_seconds(room.pid), time.monotonic()
            left = started + seconds - time.monotonic()
            if left > 0:
                time.sleep(left)  # the room keeps running for the whole window
            if room.poll() is not None:
                raise pi.CheckFailed(f"the room exited with {room.returncode}: see {log.name}")
            cpu = (cpu_seconds(room.pid) - cpu0) / max(1e-9, time.monotonic() - t_cpu)
            ran = time.monotonic() - started
            vitals = watch.vitals
        finally:
            watch.close()
            for p in reversed(procs):
                p.terminate()
            for p in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(20)
    return (
        f"pi-check ok: {machine} Debian 12 root under qemu user mode ({py}), provisioned by "
        f"the room_controller role from {n_wheels} aarch64 wheels; check-config ok; the room "
        f"ran {ran:.0f} s: online {online_s:.1f} s after start, {vitals} vitals, a simulated "
        f"press placed a call and the host's logger stored call_placed (seq {stored}); "
        f"room CPU under emulation {cpu * 100:.1f} % of a core; root "
        f"{t_root - t0:.0f} s, provisioning {t_prov - t_root:.0f} s, "
        f"total {time.monotonic() - t0:.0f} s"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.pi_check", description=__doc__)
    ap.add_argument("--seconds", type=float, default=40.0, help="how long the room runs")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args(argv)
    work = Path(
        tempfile.mkdtemp(
            prefix="pi-check-", dir=pi.BUILD.parent if pi.BUILD.parent.exists() else None
        )
    )
    try:
        print(check(work, max(30.0, args.seconds)), flush=True)
        return 0
    except (pi.CheckFailed, subprocess.TimeoutExpired, OSError) as exc:
        print(f"pi-check FAILED: {exc} (work folder {work})", flush=True)
        args.keep = True
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
