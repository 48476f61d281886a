"""Site brokers bridged to a central broker (issue 16): the configs `roomctl broker config
--bridge-to` and `--central` write, run by real Mosquittos on loopback with real TLS.

Room data goes out to the centre and commands come in, at QoS 1; a WAN outage (the central
broker stopped) as long as ten minutes of the site's traffic loses nothing and stores nothing
twice; a site's bridge cannot write into another site's topics.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.mosquitto.bridge import BridgeSettings, bridge_text, central_acl_text, day_queue
from broker.mosquitto.pki import Identity
from contract import topics
from controller.cli import main
from tests.support.clinic import open_session, running_logger
from tests.support.clinic_rooms import FakeRoom, poll
from tests.support.group import ClinicGroup
from tests.support.postgres import pg_count, pg_seqs

pytestmark = pytest.mark.broker
NOT_AUTHORIZED = 0x87
ROOMS = ("101", "102", "103")


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ClinicGroup]:
    with ClinicGroup(tmp_path, sites=("s1", "s2"), rooms=(*ROOMS, "104")) as started:
        yield started


def test_the_bridge_carries_room_data_out_and_commands_in_at_qos_1(tmp_path: Path) -> None:
    text = bridge_text(
        BridgeSettings("s1", "central.lan", 8883, tmp_path / "ca", tmp_path / "c", tmp_path / "k")
    )
    lines = text.splitlines()
    assert "address central.lan:8883" in lines and "cleansession false" in lines
    assert "remote_clientid bridge-s1" in lines and "bridge_insecure false" in lines
    out = sorted(line for line in lines if line.endswith(" out 1"))
    assert out == sorted(
        f"topic clinic/s1/room/+/{leaf} out 1"
        for leaf in ("availability", "state", "call", "events", "vitals", "health")
    )
    assert [line for line in lines if line.endswith(" in 1")] == [
        "topic clinic/s1/room/+/cmd/# in 1",  # staff commands
        "topic clinic/s1/room/+/receipt/# in 1",  # central screens and phones have the call
        "topic clinic/s1/room/+/page/# in 1",  # the central notifier's page reports
        "topic clinic/s1/logger/# in 1",  # a central logger back online: rooms resend
    ]
    assert day_queue(50) >= 50 * 86_400  # a day of 50 rooms at (at least) 1 Hz
    acl = central_acl_text([Identity("bridge", "s1"), Identity("logger", None)])
    assert "topic write clinic/s1/room/+/vitals" in acl and "clinic/s2" not in acl


def test_broker_config_writes_a_bridged_site_and_a_central_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    central, site = tmp_path / "central", tmp_path / "site"
    assert main(["pki", "init", str(central), "--site", "central"]) == 0
    assert main(["pki", "issue", str(central), "bridge", "s1"]) == 0
    assert main(["pki", "init", str(site), "--site", "s1"]) == 0
    conf = tmp_path / "site.conf"
    bridge = [
        "--bridge-to", "central.lan:8883", "--bridge-ca", str(central / "ca.crt"),
        "--bridge-cert", str(central / "clients" / "bridge-s1.crt"),
        "--bridge-key", str(central / "clients" / "bridge-s1.key"), "--bridge-rooms", "80",
    ]  # fmt: skip
    base = ["broker", "config", "--pki", str(site), "--site", "s1", "--out", str(conf)]
    assert main([*base, *bridge]) == 0
    text = conf.read_text()
    assert "connection central-s1" in text
    assert f"max_queued_messages {max(1_000_000, day_queue(80))}" in text
    assert main([*base, "--bridge-to", "central.lan"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    central_conf = tmp_path / "central.conf"
    argv = ["broker", "config", "--pki", str(central), "--site", "central", "--central"]
    assert main([*argv, "--out", str(central_conf)]) == 0
    acl = central_conf.with_suffix(".acl").read_text()
    assert "user bridge-s1\ntopic write clinic/s1/room/+/availability" in acl


def test_a_sites_bridge_cannot_write_into_another_sites_topics(group: ClinicGroup) -> None:
    bridge = open_session(group.endpoint("bridge-s1"))
    try:
        assert not bridge.publish(topics.vitals("s1", "101"), b"{}").is_failure
        assert bridge.publish(topics.vitals("s2", "101"), b"{}").value == NOT_AUTHORIZED
        assert bridge.publish(topics.state("s2", "101"), b"{}", retain=True).value == (
            NOT_AUTHORIZED
        )
        command = topics.cmd("s1", "101", "claim", "central")
        assert bridge.publish(command, b"{}").value == NOT_AUTHORIZED
        assert bridge.publish(topics.logger_status("s1"), b"online").value == NOT_AUTHORIZED
        # a site cannot forge the central notifier's page reports either: they only come in
        assert bridge.publish(topics.page("s1", "101", "main"), b"{}").value == NOT_AUTHORIZED
    finally:
        bridge.stop()


def test_the_central_notifiers_page_reports_reach_their_site_only(group: ClinicGroup) -> None:
    here = open_session(group.sites["s1"].endpoint("logger"))
    there = open_session(group.sites["s2"].endpoint("logger"))
    notifier = open_session(group.endpoint("notifier-main"))
    try:
        for sess in (here, there):
            sess.subscribe("clinic/#")
        report = b'{"page": 1}'  # the broker carries bytes; the logger judges them
        assert not notifier.publish(topics.page("s1", "101", "main"), report).is_failure
        assert here.wait_message(topics.page("s1", "101", "main")).payload == report
        # s2's broker got nothing of s1's: its own sentinel, sent after, arrives alone
        assert not notifier.publish(topics.page("s2", "102", "main"), b"sentinel").is_failure
        there.wait_message(topics.page("s2", "102", "main"))
        assert [m.topic for m in there.messages if "/page/" in m.topic] == [
            topics.page("s2", "102", "main")
        ]
    finally:
        for sess in (here, there, notifier):
            sess.stop()


@pytest.mark.slow
def test_a_ten_minute_wan_outage_loses_nothing(group: ClinicGroup, pg_url: str) -> None:
    site = group.sites["s1"]
    rooms = [FakeRoom(site, r) for r in ROOMS]
    # a room's commands come in from the centre through the bridge
    room_104 = open_session(site.endpoint("room-104"))
    room_104.subscribe(topics.cmd_filter("s1", "104"))
    staff = open_session(group.endpoint("staff-central"))

    def all_stored(what: str) -> None:
        total = sum(r.seq for r in rooms)
        poll(lambda: pg_count(url) >= total, 120, f"all {total} rows at the centre: {what}")

    url = pg_url
    try:
        with running_logger(group.logger_config(url, "s1")) as logger:
            assert logger.subscribed.wait(10)
            for r in rooms:
                r.send_mix(100)
            all_stored("bridge up")
            group.central.stop()  # the WAN is down: the site broker queues for the bridge
            # ten minutes of these rooms' traffic (1.2 messages/s each), all accepted on site
            for r in rooms:
                r.send_mix(720)
            for r in rooms:
                r.wait_all_acked()  # the rooms never waited for the WAN
            assert pg_count(url) == 300
            group.central.start()
            all_stored("after the outage")
            assert pg_seqs(url) == {r.room: list(range(1, r.seq + 1)) for r in rooms}
            assert pg_count(url, "SELECT COUNT(*) FROM quarantine") == 0
            assert logger.totals.inserted == 300 + 3 * 720
            command = topics.cmd("s1", "104", "scene", "central")
            assert not staff.publish(command, b'{"scene":"x"}').is_failure
            got = room_104.wait_message(command, timeout=20)
            assert got.payload == b'{"scene":"x"}'
    finally:
        for r in rooms:
            r.stop()
        room_104.stop()
        staff.stop()
