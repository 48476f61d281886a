"""A broker killed with SIGKILL forgets what it acknowledged since its last autosave.

The room keeps acknowledged rows for a replay window and resends them on every reconnect,
so the logger still ends up with every (site, room, seq) exactly once.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from broker.mosquitto.run import Mosquitto, dev_config, free_port
from contract import topics
from tests.support.mqtt import Recorder, retained, staff_command, wait_until
from tests.support.room_process import ROOM, SITE, RunningRoom, is_event, room_config

pytestmark = pytest.mark.broker


def _logger(url: str, db: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controller.cli",
            "logger",
            "--broker",
            url,
            "--db",
            str(db),
            "--site",
            SITE,
            "--client-id",
            "replay-logger",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stored(db: Path) -> set[int]:
    if not db.exists():
        return set()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {r[0] for r in con.execute("SELECT seq FROM messages WHERE room = ?", (ROOM,))}
    except sqlite3.Error:
        return set()
    finally:
        con.close()


def test_broker_sigkill_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "mosquitto"
    state.mkdir()
    # autosave once an hour: a SIGKILL loses everything the broker took in since it started
    text = dev_config(port, state).replace("autosave_interval 1", "autosave_interval 3600")
    broker = Mosquitto(state, port=port, config_text=text).start()
    db = tmp_path / "log.sqlite3"
    logger = _logger(broker.url, db)
    room = RunningRoom(
        room_config(
            broker,
            tmp_path / "room",
            broker={
                "url": broker.url,
                "reconnect_min_s": 0.5,
                "reconnect_max_s": 1,
                "replay_window_s": 600,
            },
        )
    )
    room.thread.start()
    try:
        with Recorder(broker.url, [topics.events(SITE, ROOM)]) as rec:
            rec.wait_for(is_event("daemon_started"), 20)
            wait_until(lambda: len(_stored(db)) >= 3, 20, "logger storing")
            logger.terminate()  # the logger is away: its persistent session queues at the broker
            logger.wait(15)
            rec.publish(
                topics.cmd(SITE, ROOM, "phase", "board"), staff_command(phase="pre_check", by="kim")
            )
            room.press(room.config.gpio.call_pin)
            rec.wait_for(is_event("call_placed"), 10)
        wait_until(lambda: room.daemon.outbox.depth == 0, 10, "the broker acknowledged all")
        last = room.daemon.outbox.last_seq
        broker.kill()  # SIGKILL: its queue for the logger was never saved
        broker.start()
        logger = _logger(broker.url, db)
        wait_until(lambda: _stored(db) >= set(range(1, last + 1)), 30, "every seq stored")
    finally:
        logger.terminate()
        logger.wait(15)
        room.daemon.stop()
        room.thread.join(15)
        broker.stop()
    stored = _stored(db)
    assert set(range(1, last + 1)) <= stored


def test_dev_broker_persists_when_run_as_any_user(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "m").start()
    with Recorder(broker.url, ["keep/#"]) as rec:
        rec.publish("keep/me", b"1", retain=True)
    broker.stop()  # a clean stop saves the persistence file, owned by us
    assert (tmp_path / "m" / "mosquitto.db").exists()
    broker.start()
    try:
        assert retained(broker.url, "keep/me").payload == b"1"
    finally:
        broker.stop()
