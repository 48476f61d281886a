"""A staff command that waited for an offline room does not act when the room comes back.

Issue 13, reproduced as it was found: a `cmd/phase` published while the room is offline sits in
the room's persistent session and used to be applied whenever the room reconnected. Here it is
sent without an MQTT message expiry (as an old client or a forged one would) and 40 s old, so
only the room's own max-age check stands between it and the patient's room.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from broker.mosquitto.run import Mosquitto
from contract import topics
from contract.timefmt import format_ts, utcnow
from tests.support.mqtt import Recorder, retained
from tests.support.room_process import ROOM, SITE, is_event, start_room, stop_room


def test_a_command_queued_while_the_room_was_offline_is_refused_as_expired(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    state_dir = tmp_path / "room"
    state_dir.mkdir()
    prefix = topics.room_prefix(SITE, ROOM)
    with Recorder(mosquitto.url, [prefix + "/#"]) as rec:
        proc = start_room(mosquitto.url, state_dir, SITE, ROOM)
        try:
            rec.wait_for(lambda m: m.topic.endswith("/availability") and m.payload == b"online", 20)
            stop_room(proc)
            rec.wait_for(lambda m: m.topic.endswith("/availability") and m.payload == b"offline")
            stale = {
                "phase": "pre_check",
                "by": "nurse.kim",
                "issued_at": format_ts(utcnow() - timedelta(seconds=40)),
                "request_id": "late-1",
            }
            # queued in the room's persistent session
            rec.publish(topics.cmd(SITE, ROOM, "phase", "board"), stale)
            n_before = len(rec.messages)
            proc = start_room(mosquitto.url, state_dir, SITE, ROOM)
            refused = rec.wait_for(is_event("command_refused"), 20, since=n_before).json()
        finally:
            stop_room(proc)
    assert refused["detail"]["request_id"] == "late-1"
    assert refused["reason"].startswith("expired") and refused["detail"]["topic"] == "cmd/phase"
    assert not rec.matching(is_event("phase_changed"))
    assert retained(mosquitto.url, topics.state(SITE, ROOM)).json()["phase"] == "idle"
