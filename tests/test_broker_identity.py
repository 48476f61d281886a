"""Identities that cannot be borrowed: on the TLS listener the broker takes the client id
from the certificate (`use_username_as_clientid` after `use_identity_as_username`), against a
real Mosquitto running the generated configuration.

Without it, any clinic certificate may connect with another client's id: with the logger's
id and clean_start=False it throws the logger off and resumes its persistent session, and
the broker drops what arrives meanwhile (the thief may not read it); with a room's id it
throws the room off and the room's will marks it offline. The thief here is a raw socket
that never reads nor reconnects, so nothing depends on timing: a takeover happens while the
broker handles the thief's CONNECT, before its CONNACK, and everything after is ordered.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from broker.logger.service import Logger
from contract import topics
from contract.mqtt import BrokerEndpoint
from tests.support.clinic import Clinic, open_session, raw_session
from tests.support.clinic_rooms import FakeRoom, db_seqs

pytestmark = pytest.mark.broker


@pytest.fixture
def clinic_rooms() -> tuple[str, ...]:
    """102 is the thief; 103 a neighbour that has nothing to do with it."""
    return ("101", "102", "103")


def _watch_disconnects(logger: Logger) -> threading.Event:
    """An event set when the logger's MQTT connection drops (its own handler still runs)."""
    dropped = threading.Event()
    own = logger.client.on_disconnect

    def on_disconnect(*args: Any, **kwargs: Any) -> None:
        dropped.set()
        own(*args, **kwargs)

    logger.client.on_disconnect = on_disconnect
    return dropped


def test_a_room_certificate_cannot_take_the_loggers_session(clinic: Clinic, tmp_path: Any) -> None:
    db = tmp_path / "log.db"
    logger = Logger(clinic.logger_config(db)).start()
    room = FakeRoom(clinic, "101")
    try:
        assert logger.subscribed.wait(10)
        dropped = _watch_disconnects(logger)
        cert, key = clinic.creds("room-102")
        with raw_session(
            clinic.tls_port, clinic.pki.ca_cert, cert, key, client_id=logger.client_id
        ) as connack:
            assert connack == 0  # connected, but as itself (room-102), not as the logger
            room.send_mix(60)
            room.wait_all_acked()
            stored = logger.wait_committed(lambda t: t.inserted >= 60, timeout=15)
            assert not dropped.is_set(), "the room's certificate threw the logger off"
            assert stored, "messages published while the thief held the session were lost"
        assert db_seqs(db) == {"101": list(range(1, 61))}
    finally:
        room.stop()
        logger.stop()


def test_a_room_certificate_cannot_flip_another_rooms_availability(clinic: Clinic) -> None:
    site = clinic.site
    watcher = open_session(clinic.endpoint("staff-alice"))
    watcher.subscribe(f"{topics.site_prefix(site)}/room/+/availability")
    avail_101 = topics.availability(site, "101")
    # The daemon's client id (controller/daemon.py) and will.
    room = open_session(
        clinic.endpoint("room-101"), client_id=f"roomctl-{site}-101", will=(avail_101, "offline")
    )
    neighbour = open_session(clinic.endpoint("room-103"))
    try:
        room.publish(avail_101, "online", retain=True)
        watcher.wait_message(avail_101)
        cert, key = clinic.creds("room-102")
        with raw_session(
            clinic.tls_port, clinic.pki.ca_cert, cert, key, client_id=f"roomctl-{site}-101"
        ) as connack:
            assert connack == 0
            # Sentinels, both after the thief's CONNACK: a will would already be queued to
            # the watcher before the neighbour's message, and a kicked room would have seen
            # its DISCONNECT before this PUBACK.
            neighbour.publish(topics.availability(site, "103"), "online", retain=True)
            watcher.wait_message(topics.availability(site, "103"))
            assert not room.publish(topics.room_topic(site, "101", "health"), "{}").is_failure
        seen_101 = [m.payload for m in watcher.messages if m.topic == avail_101]
        assert seen_101 == [b"online"], seen_101
        assert room.disconnects == 0
    finally:
        room.stop()
        neighbour.stop()
        watcher.stop()


def test_one_certificate_is_one_client_whatever_id_it_asks_for(clinic: Clinic) -> None:
    """So each process needs its own identity: the board is `staff-board`, not a person's."""
    first = open_session(clinic.endpoint("staff-alice"), client_id="board-a")
    first.client.reconnect_delay_set(60, 120)  # kicked once is enough: no flapping
    try:
        second = open_session(clinic.endpoint("staff-alice"), client_id="board-b")
        try:
            with first.cond:
                assert first.cond.wait_for(lambda: first.disconnects > 0, 10)
            assert second.disconnects == 0
        finally:
            second.stop()
    finally:
        first.stop()


def test_the_development_listener_keeps_the_id_the_client_asks_for(tmp_path: Any) -> None:
    with Clinic(tmp_path / "clinic", dev_port=True) as clinic:
        assert clinic.dev_port is not None
        dev = BrokerEndpoint.from_url(f"mqtt://127.0.0.1:{clinic.dev_port}")
        one = open_session(dev, client_id="roomctl-s1-101")
        two = open_session(dev, client_id="roomctl-s1-102")
        try:
            assert not one.publish("clinic/s1/room/101/health", "{}").is_failure
            assert one.disconnects == 0 and two.disconnects == 0
        finally:
            one.stop()
            two.stop()
