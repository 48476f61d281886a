"""The room's HL7 (MLLP) listener admits only the monitor: a peer outside `allowed_peers` is
refused, squatters that connected first cannot lock the monitor out, and a connection that
brings no HL7 message is closed. Real sockets on loopback (127.0.0.2 plays the monitor's
address: Linux routes all of 127/8 to lo)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from controller.config import ConfigError, build_config
from firmware_py.monitors.link import MonitorLink
from firmware_py.monitors.transports import parse_peers, peer_allowed
from tests.support.monitor_events import WAIT, Events
from tests.support.monitor_fixtures import DATA, load
from tests.support.polling import poll

MESSAGE = load(DATA / "hl7" / "ge_b40_pcd01_cuff_nibp.hl7")
MONITOR_ADDRESS = "127.0.0.2"


@contextmanager
def _link(events: Events, **options: object) -> Iterator[tuple[MonitorLink, int]]:
    link = MonitorLink(
        "hl7",
        "mllp-listen",
        "127.0.0.1:0",
        events.on_reading,
        on_state=events.on_state,
        **options,  # type: ignore[arg-type]
    )
    link.start()
    try:
        port = link.wait_listening(WAIT)
        assert port
        yield link, port
    finally:
        assert link.stop()


def _connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT, source_address=(source, 0))


def _ack(sock: socket.socket) -> bytes:
    buf = b""
    for _ in range(100):  # bounded
        if b"\x1c\r" in buf:
            return buf
        chunk = sock.recv(4096)
        assert chunk, "the listener closed the monitor's connection"
        buf += chunk
    raise AssertionError("no ACK")


def _closed_by_listener(sock: socket.socket) -> bool:
    """True when the listener closed it (EOF or reset) within WAIT."""
    sock.settimeout(WAIT)
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True


def test_a_peer_outside_allowed_peers_is_refused_and_the_monitor_gets_through() -> None:
    events = Events()
    with _link(events, allowed_peers=[MONITOR_ADDRESS]) as (link, port):
        with _connect(port) as stranger:  # from 127.0.0.1: not the monitor
            assert _closed_by_listener(stranger)
        with _connect(port, MONITOR_ADDRESS) as monitor:
            monitor.sendall(MESSAGE)
            assert b"MSA|AA" in _ack(monitor)
            assert events.reading().nibp_sys == 142.0
        stats = link.stats()
        assert stats["refused_peers"] == 1 and stats["frames_accepted"] == 1


def test_squatters_that_connected_first_do_not_lock_the_monitor_out() -> None:
    events = Events()
    with _link(events, max_connections=4) as (link, port):
        squatters = [_connect(port) for _ in range(4)]
        try:
            poll(lambda: link.stats()["connections"] == 4, WAIT, "4 squatters in", interval=0.01)
            with _connect(port, MONITOR_ADDRESS) as monitor:
                monitor.sendall(MESSAGE)
                assert b"MSA|AA" in _ack(monitor)
                assert events.reading().nibp_sys == 142.0
                # Another squatter: the oldest silent one gives way, not the monitor.
                late = _connect(port)
                squatters.append(late)
                monitor.sendall(MESSAGE)
                assert b"MSA|AA" in _ack(monitor)
                assert events.reading().nibp_sys == 142.0
            assert sum(_closed_by_listener(s) for s in squatters[:2]) == 2
            assert link.stats()["evicted"] == 2
        finally:
            for sock in squatters:
                sock.close()


def test_a_rapid_stream_of_squatters_never_evicts_the_monitor() -> None:
    events = Events()
    with _link(events, max_connections=4) as (link, port), _connect(
        port, MONITOR_ADDRESS
    ) as monitor:
        monitor.sendall(MESSAGE)
        assert b"MSA|AA" in _ack(monitor)
        assert events.reading().nibp_sys == 142.0
        squatters = []
        try:
            for _ in range(20):  # each newer than the monitor's last message
                squatters.append(_connect(port))
            poll(
                lambda: link.stats()["evicted"] >= 17,
                WAIT,
                "squatters evicting squatters",
                interval=0.01,
            )
            monitor.sendall(MESSAGE)
            assert b"MSA|AA" in _ack(monitor)  # still connected, still served
            assert events.reading().nibp_sys == 142.0
        finally:
            for sock in squatters:
                sock.close()


def test_a_connection_that_brings_no_hl7_message_is_closed() -> None:
    events = Events()
    with _link(events, idle_timeout_s=0.5) as (link, port):
        with _connect(port) as silent:
            assert _closed_by_listener(silent)
        with _connect(port) as garbage:  # bytes, but never a whole message
            garbage.sendall(b"\x0bMSH|^~\\&|half a message")
            assert _closed_by_listener(garbage)
        assert link.stats()["idle_closed"] == 2


def test_listening_beyond_loopback_needs_allowed_peers() -> None:
    base = {"site": "s1", "room": "101", "simulate": True}
    monitor = {"protocol": "hl7", "transport": "mllp-listen", "address": "0.0.0.0:2575"}
    with pytest.raises(ConfigError, match=r"monitor\.allowed_peers is required"):
        build_config({**base, "monitor": monitor})
    with pytest.raises(ConfigError, match=r"10\.0\.0\.300"):
        build_config({**base, "monitor": {**monitor, "allowed_peers": ["10.0.0.300"]}})
    ok = build_config({**base, "monitor": {**monitor, "allowed_peers": ["10.20.102.50"]}})
    assert ok.monitor.allowed_peers == ("10.20.102.50",)
    assert build_config({**base, "monitor": {**monitor, "address": "127.0.0.1:2575"}})


def test_peer_matching_covers_networks_and_mapped_addresses() -> None:
    nets = parse_peers(["10.20.102.50", "10.20.103.0/28"])
    assert peer_allowed("10.20.102.50", nets)
    assert peer_allowed("::ffff:10.20.103.7", nets)
    assert not peer_allowed("10.20.102.51", nets) and not peer_allowed("10.20.103.16", nets)
    assert not peer_allowed("not an address", nets)
    assert peer_allowed("192.0.2.1", ())
