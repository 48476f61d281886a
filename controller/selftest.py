"""`roomctl room selftest`: what a technician checks when commissioning a room, in one run.

How this works: with the room controller stopped (the state folder's lock tells), it checks
in order, printing one line per check (`PASS`, `WARN`, `FAIL`, or `LOOK` for what only a
person in the room can confirm): the config and the files it names; the state folder is
writable; the wall clock is synchronised; no call input reads as pressed at rest (a short or
a stuck button); the outputs, driven one by one (dome, ambient red/green/blue, status LED)
for `--look-s` seconds each, read back from the pins; the broker accepts the room's
certificate (connecting as the room without touching its persistent session or its Will);
the monitor sends a reading within `--monitor-wait` seconds. Exit 0 when nothing failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.vitals import Reading
from controller.config import ConfigError, RoomConfig, load_config
from controller.config_check import file_problems
from controller.state_lock import StateLocked, state_lock

PASS, WARN, FAIL, LOOK = "PASS", "WARN", "FAIL", "LOOK"


@dataclass(frozen=True)
class Check:
    status: str
    what: str
    detail: str


Report = Callable[[Check], None]


def _config(args: argparse.Namespace, report: Report) -> RoomConfig | None:
    try:
        config = load_config(args.config, {"simulate": True} if args.simulate else None)
    except ConfigError as exc:
        for problem in exc.problems:
            report(Check(FAIL, "config", problem))
        return None
    errors, warnings = file_problems(config)
    for line in errors:
        report(Check(FAIL, "config", line))
    for line in warnings:
        report(Check(WARN, "config", line))
    if not errors:
        report(Check(PASS, "config", f"{args.config}: site {config.site}, room {config.room}"))
    return config


def _state_dir(config: RoomConfig, report: Report) -> None:
    folder = Path(config.state_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".selftest-") as fh:
            fh.write(b"x")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        report(Check(FAIL, "state folder", f"{folder}: cannot write ({exc.strerror or exc})"))
        return
    free = os.statvfs(folder)
    mib = free.f_bavail * free.f_frsize / 2**20
    status = PASS if mib >= 100 else WARN
    report(Check(status, "state folder", f"{folder}: writable, {mib:,.0f} MiB free"))


def _clock(config: RoomConfig, report: Report) -> None:
    from controller.clock_sync import ClockSync

    if ClockSync(config.clock).synced():
        report(Check(PASS, "clock", "synchronised"))
    else:
        report(Check(WARN, "clock", "not synchronised (check NTP: timedatectl status)"))


def _hardware(config: RoomConfig, report: Report, look_s: float) -> None:
    from controller.room_hardware import RoomHardware

    try:
        hw = RoomHardware(config, lambda _button: None)
    except Exception as exc:  # gpiozero's errors name the pin
        report(Check(FAIL, "gpio", f"cannot open the pins: {exc}"))
        return
    try:
        for name, pressed in hw.inputs().items():
            if pressed:
                report(Check(FAIL, f"input {name}", "reads pressed at rest: stuck button, "
                             "short, or a normally-open/closed wiring mix-up"))  # fmt: skip
            else:
                report(Check(PASS, f"input {name}", "released at rest"))
        cord = hw.buttons.cord_closed()
        if cord is not None:  # a normally-closed loop: closed at rest
            if cord:
                report(Check(PASS, "cord loop", "closed (pendant plugged in)"))
            else:
                report(Check(FAIL, "cord loop", "open: pendant unplugged or the loop broken"))
        steps: list[tuple[str, Callable[[], None], Callable[[], bool]]] = [
            ("dome", lambda: hw.set_dome("steady"), hw.dome_lit),
            ("ambient red", lambda: hw.set_ambient((1, 0, 0)),
             lambda: hw.ambient.value == (1.0, 0.0, 0.0)),
            ("ambient green", lambda: hw.set_ambient((0, 1, 0)),
             lambda: hw.ambient.value == (0.0, 1.0, 0.0)),
            ("ambient blue", lambda: hw.set_ambient((0, 0, 1)),
             lambda: hw.ambient.value == (0.0, 0.0, 1.0)),
            ("status LED", lambda: hw.set_status(((True, 1.0),)), lambda: hw.status.is_lit),
        ]  # fmt: skip
        for name, drive, lit in steps:
            drive()
            if not hw.ok or not lit():
                report(Check(FAIL, name, "the pin did not take the value"))
            elif hw.pin_factory is not None and config.simulate:
                report(Check(PASS, name, "driven and read back (simulated pins)"))
            else:
                report(Check(LOOK, name, f"on for {look_s:g} s now: is it lit in the room?"))
            time.sleep(look_s)  # for the person looking at the light, not for a result
            hw.set_dome("off")
            hw.set_ambient((0, 0, 0))
            hw.set_status(())
    finally:
        hw.close()


def _broker(config: RoomConfig, report: Report, wait_s: float) -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from contract.mqtt import BrokerEndpoint, close_client, make_client

    b = config.broker
    endpoint = BrokerEndpoint.from_url(b.url, b.ca, b.cert, b.key)
    client = make_client(endpoint, f"roomctl-{config.site}-{config.room}")
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
        outcome["rc"] = rc
        done.set()

    client.on_connect = on_connect
    # resume the room's persistent session as it is (clean_start False, its own expiry) and
    # set no Will: the room's session, queued commands and `availability` are left alone
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = b.session_expiry_s
    started = time.monotonic()
    try:
        client.connect(endpoint.host, endpoint.port, keepalive=30, clean_start=False,
                       properties=props)  # fmt: skip
        client.loop_start()
        if not done.wait(wait_s):
            report(Check(FAIL, "broker", f"{b.url}: no answer within {wait_s:g} s"))
        elif getattr(outcome["rc"], "is_failure", False):
            report(Check(FAIL, "broker", f"{b.url}: refused ({outcome['rc']})"))
        else:
            ms = (time.monotonic() - started) * 1000
            report(Check(PASS, "broker", f"{b.url}: connected in {ms:.0f} ms"))
    except (OSError, ValueError) as exc:  # DNS, refused, TLS handshake
        report(Check(FAIL, "broker", f"{b.url}: {exc}"))
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
        close_client(client)


def _monitor(config: RoomConfig, report: Report, wait_s: float) -> None:
    m = config.monitor
    if m.protocol is None or m.address is None:
        report(Check(WARN, "monitor", "none configured"))
        return
    from firmware_py.monitors.link import MonitorLink

    got: list[Reading] = []
    first = threading.Event()

    def on_reading(reading: Reading) -> None:
        got.append(reading)
        first.set()

    link = MonitorLink(m.protocol, m.transport, m.address, on_reading, baudrate=m.baudrate)
    link.start()
    try:
        if first.wait(wait_s):
            r = got[0]
            shown = ", ".join(f"{k} {v:g}" for k, v in r.vitals().items() if v is not None)
            report(Check(PASS, "monitor", f"{m.protocol} on {m.address}: {shown or 'a reading'}"))
        else:
            hint = "cable, port, baud rate, the monitor's output setting?"
            where = f"{m.protocol} on {m.address}"
            report(Check(FAIL, "monitor", f"{where}: no reading within {wait_s:g} s ({hint})"))
    finally:
        link.stop()


def run(args: argparse.Namespace, report: Report) -> int:
    """All checks; the exit code is 1 when any failed."""
    failed = False

    def counted(check: Check) -> None:
        nonlocal failed
        failed = failed or check.status == FAIL
        report(check)

    config = _config(args, counted)
    if config is None:
        return 1
    try:
        with state_lock(Path(config.state_dir)):
            _state_dir(config, counted)
            _clock(config, counted)
            if not args.no_outputs:
                _hardware(config, counted, args.look_s)
            _broker(config, counted, args.broker_wait)
            _monitor(config, counted, args.monitor_wait)
    except StateLocked as exc:
        counted(Check(FAIL, "room controller", f"{exc}: stop it first "
                      "(systemctl stop roomctl-room), then run the self-test"))  # fmt: skip
    return 1 if failed else 0


def lines(check: Check) -> Iterator[str]:
    yield f"{check.status:<4}  {check.what:<16} {check.detail}"
