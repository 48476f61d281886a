"""A room on a Pi's budget (issue 17). Through the real daemon and a real Mosquitto: vitals
the broker acknowledges never touch the disk; with the broker down they are stored in groups
and delivered in order when it returns; a call is stored before it is published. And a room
imports nothing it does not use. (The figures themselves are in bench/bench_footprint.py.)"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.mosquitto.run import Mosquitto
from contract import topics
from contract.messages import HealthMessage
from contract.vitals import Reading
from controller.outbox import SEQ_BLOCK, Outbox
from tests.support.mqtt import Recorder, wait_until
from tests.support.room_process import ROOM, SITE, RunningRoom, room_config


def stored_kinds(room: RunningRoom) -> dict[str, int]:
    """Rows in the room's outbox per kind, read from another connection."""
    db = sqlite3.connect(f"file:{room.config.state_dir / 'outbox.sqlite3'}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT kind, COUNT(*) FROM outbox GROUP BY kind").fetchall())
    finally:
        db.close()


def post_readings(room: RunningRoom, n: int) -> None:
    for i in range(n):
        room.daemon._post_reading(
            Reading("masimo", 0.0, spo2=96.0 + i % 4, pulse_rate=70.0 + i % 5)
        )


@pytest.fixture
def room(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[RunningRoom]:
    r = RunningRoom(room_config(mosquitto, tmp_path / "room", outbox={"group_commit_s": 0.5}))
    r.thread.start()
    try:
        wait_until(lambda: r.daemon.link.connected, 10, "room connected")
        yield r
    finally:
        r.daemon.stop()
        r.thread.join(15)
        assert not r.thread.is_alive(), "daemon did not stop"


@pytest.mark.broker
def test_vitals_the_broker_acknowledges_never_touch_the_disk(
    room: RunningRoom, mosquitto: Mosquitto
) -> None:
    with Recorder(mosquitto.url, [topics.vitals(SITE, ROOM)]) as rec:
        wait_until(lambda: room.daemon.publisher._caught_up, 10, "start-up messages delivered")
        post_readings(room, 30)
        wait_until(lambda: len(rec.messages) >= 30, 10, "30 vitals delivered")
        wait_until(lambda: room.daemon.publisher.seconds_to_store() is None, 10, "all acked")
    seqs = [m.json()["seq"] for m in rec.messages]
    assert seqs == sorted(set(seqs))  # unique and in order
    assert stored_kinds(room).get("vitals", 0) == 0
    assert room.daemon.publisher.stored_telemetry == 0


@pytest.mark.broker
def test_vitals_with_the_broker_down_are_stored_in_groups_and_delivered_in_order(
    room: RunningRoom, mosquitto: Mosquitto
) -> None:
    mosquitto.stop()
    wait_until(lambda: not room.daemon.link.connected, 10, "room noticed the broker is gone")
    post_readings(room, 20)
    wait_until(lambda: stored_kinds(room).get("vitals", 0) == 20, 10, "20 vitals stored")
    room.press(room.config.gpio.call_pin)  # a call while vitals wait: stored at once
    wait_until(lambda: stored_kinds(room).get("call", 0) >= 1, 5, "call stored")
    mosquitto.start()
    with Recorder(mosquitto.url, [topics.vitals(SITE, ROOM), topics.call(SITE, ROOM)]) as rec:
        wait_until(
            lambda: len(rec.matching(lambda m: m.topic.endswith("/vitals"))) >= 20, 20, "vitals"
        )
        rec.wait_for(lambda m: m.topic.endswith("/call") and m.json()["status"] == "placed", 10)
    vitals = [m.json()["seq"] for m in rec.messages if m.topic.endswith("/vitals")]
    first = list(dict.fromkeys(vitals))  # a replay after the reconnect may repeat some
    assert len(first) == 20 and first == sorted(first)
    call_seq = max(m.json()["seq"] for m in rec.messages if m.topic.endswith("/call"))
    assert call_seq > max(vitals)  # the call came after the vitals held before it


@pytest.mark.broker
def test_a_puback_of_telemetry_sent_from_memory_does_not_wake_the_loop(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """One loop round per reading, not two: the PUBACK is taken at the next round (the next
    reading or the hold bound), and the vitals still never touch the disk."""
    room = RunningRoom(room_config(mosquitto, tmp_path / "room"))  # the 5 s hold bound
    rounds: list[int] = []
    take = room.daemon._take_acks
    room.daemon._take_acks = lambda _=None: (rounds.append(1), take())[1]  # type: ignore[method-assign]
    room.thread.start()
    try:
        with Recorder(mosquitto.url, [topics.vitals(SITE, ROOM)]) as rec:
            wait_until(lambda: room.daemon.publisher._caught_up, 10, "start-up delivered")
            before = len(rounds)
            for i in range(20):
                post_readings(room, 1)
                wait_until(lambda n=i + 1: len(rec.messages) >= n, 10, f"reading {i} delivered")
            wait_until(lambda: room.daemon.publisher.seconds_to_store() is None, 15, "acks taken")
        assert len(rounds) - before < 30  # 20 readings: 40 rounds if every PUBACK woke it
        assert stored_kinds(room).get("vitals", 0) == 0
    finally:
        room.daemon.stop()
        room.thread.join(15)
    assert not room.thread.is_alive()


@pytest.mark.broker
def test_seqs_skipped_after_an_unclean_stop_are_in_the_rooms_health(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    state = tmp_path / "room"
    killed = Outbox(state / "outbox.sqlite3")
    sent = [killed.take_seq() for _ in range(3)]  # telemetry sent from memory, then SIGKILL
    epoch = killed.epoch  # this store's: not a retained health another test left
    del killed
    room = RunningRoom(room_config(mosquitto, state))
    with Recorder(mosquitto.url, [topics.health(SITE, ROOM)]) as rec:
        room.thread.start()
        try:
            health = rec.wait_for(lambda m: m.json()["epoch"] == epoch, 10).json()
        finally:
            room.daemon.stop()
            room.thread.join(15)
    gap = [sent[0], sent[0] + SEQ_BLOCK - 1]
    assert health["outbox"]["seq_gaps"] == [gap]
    assert health["outbox"]["seqs_skipped"] == SEQ_BLOCK
    HealthMessage.model_validate(health)


def test_the_room_asks_glibc_for_one_malloc_arena() -> None:
    """`roomctl room run` makes glibc use one arena for all its threads (0.6 MB of RSS)."""
    code = "from controller.room_cli import one_malloc_arena; print(one_malloc_arena())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "True"  # glibc (Debian, Raspberry Pi OS) accepts it


# Modules a room never uses: the central side, tools, the simulators, other monitors' parsers.
NOT_IN_A_ROOM = (
    "broker",
    "tools",
    "bench",
    "cryptography",
    "rich",
    "starlette",
    "uvicorn",
    "jinja2",
    "hl7",
    "firmware_py.monitors.simulate",
    "firmware_py.monitors.hl7_pcd01",
    "firmware_py.monitors.nonin",
    "controller.monitor_cli",
    "controller.schema_cli",
)


def test_a_room_imports_nothing_it_does_not_use() -> None:
    """`roomctl room run` with a Masimo monitor: what the process has imported once running."""
    code = (
        "import sys; from controller import cli; cli.build_parser('room'); "
        "import controller.daemon, firmware_py.monitors.link; "
        "from firmware_py.monitors.parsers import make_parser; make_parser('masimo'); "
        "print(' '.join(sorted(sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = proc.stdout.split()
    assert "controller.daemon" in loaded and "firmware_py.monitors.masimo" in loaded
    unused = [m for m in loaded if any(m == n or m.startswith(n + ".") for n in NOT_IN_A_ROOM)]
    assert unused == []


@pytest.mark.broker
def test_the_room_runs_its_io_and_its_heartbeat_on_the_daemons_thread(room: RunningRoom) -> None:
    """No paho network thread, no monitor reader, no status-LED thread: the loop's own select
    does it all, and the heartbeat (1 s on, 2 s off) is stepped by that loop."""
    names = {t.name for t in threading.enumerate()}
    assert not any(n.startswith(("paho-mqtt-client", "status-led")) for n in names), names
    assert room.daemon.hardware.status.sequence == ((True, 1.0), (False, 2.0))
    pin = room.factory.pin(room.config.gpio.status_pin)
    before = len(pin.states)
    wait_until(lambda: len(pin.states) >= before + 2, 10, "the heartbeat to blink")
    post_readings(room, 3)  # readings step it too (it waits for them when it may)
    wait_until(lambda: len(pin.states) >= before + 4, 10, "the heartbeat to blink again")


class _BrokenPort:
    """A monitor whose port number is no longer valid (select refuses it)."""

    def fileno(self) -> int:
        return -1

    def service(self) -> None:
        raise AssertionError("never readable")



@pytest.mark.broker
def test_a_bad_descriptor_in_the_loops_wait_is_counted_and_the_room_goes_on(
    room: RunningRoom, mosquitto: Mosquitto
) -> None:
    room.daemon.io.monitor = _BrokenPort()
    room.daemon.events.wake()
    wait_until(lambda: room.daemon.internal_errors > 0, 10, "the error counted")
    room.daemon.io.monitor = None
    with Recorder(mosquitto.url, [topics.room_topic(SITE, ROOM, "vitals")]) as rec:
        post_readings(room, 1)
        rec.wait_for(lambda m: m.topic.endswith("/vitals"))
