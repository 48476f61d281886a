"""A room over TLS with its client certificate, against the generated Mosquitto config and ACL."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract import topics
from contract.certs import cert_not_after
from contract.timefmt import format_ts
from tests.support.clinic import SITE, Clinic
from tests.support.mqtt import Recorder, staff_command, wait_until
from tests.support.room_process import RunningRoom

pytestmark = pytest.mark.broker


def test_room_runs_over_mutual_tls_within_its_acl(clinic: Clinic, tmp_path: Path) -> None:
    config = clinic.room_config("101", tmp_path / "room")
    room = RunningRoom(config)
    room.thread.start()
    staff = clinic.endpoint("staff-alice")
    try:
        with Recorder(clinic.url, [topics.room_prefix(SITE, "101") + "/#"], endpoint=staff) as rec:
            rec.wait_for(lambda m: m.topic.endswith("/availability") and m.payload == b"online", 20)
            # its health says when its certificate expires (the board warns 30 days ahead)
            health = rec.wait_for(lambda m: m.topic.endswith("/health"), 20).json()
            assert config.broker.cert is not None
            expected = cert_not_after(config.broker.cert)
            assert health["cert_not_after"] == format_ts(expected)
            # staff commands reach the room (it reads its own cmd/), its answers reach staff
            cmd = staff_command(phase="pre_check", by="alice")
            rec.publish(topics.cmd(SITE, "101", "phase", "alice"), cmd)
            rec.wait_for(lambda m: m.topic.endswith("/state") and m.json()["phase"] == "pre_check")
            room.press(config.gpio.call_pin)
            placed = rec.wait_for(
                lambda m: m.topic.endswith("/call") and m.json()["status"] == "placed"
            ).json()
            rec.publish(
                topics.cmd(SITE, "101", "claim", "alice"),
                staff_command(call_id=placed["call_id"], by="alice"),
            )
            rec.wait_for(lambda m: m.topic.endswith("/call") and m.json()["claimed_by"] == "alice")
        # nothing the room sent was refused by the ACL
        assert room.daemon.publisher.refused == 0
        wait_until(lambda: room.daemon.outbox.depth == 0, 10, "outbox drained over TLS")
    finally:
        room.daemon.stop()
        room.thread.join(15)


def test_production_acl_has_no_simulation_grants(tmp_path: Path) -> None:
    from broker.mosquitto.conf import acl_text
    from broker.mosquitto.pki import Pki

    pki = Pki.init(tmp_path / "pki", SITE)
    pki.issue("room", "101")
    pki.issue("staff", "alice")
    assert "sim/" not in acl_text(SITE, pki.inventory())
    simulated = acl_text(SITE, pki.inventory(), simulation=True)
    assert f"topic read clinic/{SITE}/room/101/sim/button" in simulated
    assert f"topic write clinic/{SITE}/room/+/sim/button" in simulated
