"""MonitorLink over real transports: a pty with pyserial (incl. the port vanishing and
coming back), a TCP serial bridge, and the MLLP listener with ACKs over loopback TCP.

Serial and TCP run both ways: read on the link's own thread, and read by an owner's loop
(`owner_wake`, as the room daemon does: the transport's thread only opens, backs off and
closes, the owner's `select` reads)."""

from __future__ import annotations

import os
import select
import socket
import threading
import tty
from collections.abc import Iterator
from pathlib import Path

import hl7
import pytest

from contract.backoff import Backoff
from contract.vitals import Reading
from firmware_py.monitors.link import MonitorLink
from firmware_py.monitors.mllp import mllp_frame
from firmware_py.monitors.transports import parse_host_port
from tests.support.monitor_events import WAIT, Events
from tests.support.monitor_fixtures import DATA, load
from tests.support.owner_loop import OwnerLoop

MASIMO_LINE = (DATA / "masimo" / "rad8_yahnatan_ascii1.txt").read_bytes().replace(b"\n", b"\r\n")


class Pty:
    """A pseudo-terminal whose slave is reached through a by-id style symlink."""

    def __init__(self, link_path: Path) -> None:
        self.link_path = link_path
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        link_path.unlink(missing_ok=True)
        link_path.symlink_to(os.ttyname(self.slave))

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def unplug(self) -> None:
        os.close(self.master)
        os.close(self.slave)
        self.link_path.unlink()


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def by_id(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"
    yield path


@pytest.fixture(params=["thread", "owner"])
def owner(request: pytest.FixtureRequest) -> Iterator[OwnerLoop | None]:
    """None: the link reads on its own thread; else the owner's loop reads."""
    if request.param == "thread":
        yield None
        return
    loop = OwnerLoop()
    yield loop
    loop.stop()


def make_link(
    protocol: str, transport: str, address: str, events: Events, owner: OwnerLoop | None = None
) -> MonitorLink:
    link = MonitorLink(
        protocol,
        transport,
        address,
        events.on_reading,
        reconnect_min_s=0.02,
        reconnect_max_s=0.2,
        on_state=events.on_state,
        owner_wake=None if owner is None else owner.inbox.wake,
    )
    if owner is not None:
        owner.run(link)
    return link


def stop(link: MonitorLink, owner: OwnerLoop | None) -> bool:
    """The room daemon stops its loop before the monitor (it stops it from that loop)."""
    if owner is not None:
        owner.stop()
    return link.stop()




def test_serial_pty_reads_and_reconnects_when_the_port_comes_back(
    by_id: Path, events: Events, owner: OwnerLoop | None
) -> None:
    port = Pty(by_id)
    link = make_link("masimo", "serial", str(by_id), events, owner)
    link.start()
    try:
        events.state(True)
        port.write(MASIMO_LINE * 2)
        assert events.reading().spo2 == 98.0
        assert events.reading().pulse_rate == 97.0
        first = link.stats()
        assert first["connected"] and first["frames_accepted"] == 2
        assert first["last_reading_at"] is not None

        port.unplug()  # the USB adapter is pulled: EIO on the slave, the path is gone
        events.state(False)
        assert link.stats()["connected"] is False

        port = Pty(by_id)  # plugged back in: the by-id link points at the new tty
        events.state(True)
        port.write(MASIMO_LINE)
        assert events.reading().spo2 == 98.0
        stats = link.stats()
        assert stats["connects"] == 2 and stats["frames_accepted"] == 3
        assert stats["transport"] == "serial" and stats["protocol"] == "masimo"
        assert events.threads == {"owner" if owner is not None else "monitor-serial"}
    finally:
        assert stop(link, owner)
        os.close(port.master)
        os.close(port.slave)


def test_serial_pty_nonin_stream_with_garbage(by_id: Path, events: Events) -> None:
    port = Pty(by_id)
    link = make_link("nonin-df2", "serial", str(by_id), events)
    link.start()
    try:
        events.state(True)
        port.write(b"\x13\x37\x00" + load(DATA / "nonin" / "df2_normal.hex"))
        assert [events.reading().pulse_rate for _ in range(2)] == [72.0, 130.0]
    finally:
        assert link.stop()
        os.close(port.master)
        os.close(port.slave)


def test_hl7_over_serial_is_acked_on_the_same_port(
    by_id: Path, events: Events, owner: OwnerLoop | None
) -> None:
    port = Pty(by_id)
    link = make_link("hl7", "serial", str(by_id), events, owner)
    link.start()
    try:
        events.state(True)
        port.write(load(DATA / "hl7" / "ge_b40_pcd01_cuff_nibp.hl7"))
        assert events.reading().spo2 == 97.0
        ack = b""
        for _ in range(50):  # bounded; each wait ends when the link has written
            assert select.select([port.master], [], [], WAIT)[0], "no ACK on the port"
            ack += os.read(port.master, 4096)
            if ack.endswith(b"\x1c\r"):
                break
        msg = hl7.parse(ack.strip(b"\x0b\x1c\r").decode())
        assert str(msg.segment("MSA")(1)) == "AA" and str(msg.segment("MSA")(2)) == "GE000123"
    finally:
        assert stop(link, owner)
        os.close(port.master)
        os.close(port.slave)


def test_missing_serial_port_is_retried_not_fatal(tmp_path: Path, events: Events) -> None:
    link = make_link("masimo", "serial", str(tmp_path / "no-such-tty"), events)
    link.start()
    try:
        detail = events.state(False)
        assert "no-such-tty" in detail or "Errno" in detail
        events.state(False)  # and again: it keeps trying with backoff
        assert link.stats()["last_error"]
    finally:
        assert link.stop()


def test_tcp_client_reads_a_bridge_and_reconnects(
    events: Events, owner: OwnerLoop | None
) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(WAIT)
    port = server.getsockname()[1]
    link = make_link("nonin-df7", "tcp-client", f"127.0.0.1:{port}", events, owner)
    link.start()
    try:
        conn, _ = server.accept()
        events.state(True)
        conn.sendall(load(DATA / "nonin" / "df7_normal.hex"))
        assert [events.reading().spo2 for _ in range(2)] == [97.0, 95.0]
        conn.close()  # the bridge drops the connection
        events.state(False)
        conn, _ = server.accept()
        events.state(True)
        conn.sendall(load(DATA / "nonin" / "df7_checksum_and_missed.hex"))
        assert events.reading().pulse_rate == 76.0
        stats = link.stats()
        assert stats["connects"] == 2 and stats["frames_rejected"] == 2
        assert events.threads == {"owner" if owner is not None else "monitor-tcp-client"}
        conn.close()
    finally:
        assert stop(link, owner)
        server.close()


def read_acks(sock: socket.socket, count: int) -> list[hl7.Message]:
    buf = b""
    for _ in range(100):
        if buf.count(b"\x1c\r") >= count:
            break
        chunk = sock.recv(4096)
        assert chunk, "listener closed the connection"
        buf += chunk
    frames = [f for f in buf.split(b"\x1c\r") if f]
    assert len(frames) == count
    return [hl7.parse(f.lstrip(b"\x0b").decode()) for f in frames]


def test_mllp_listener_acks_every_message_over_tcp(events: Events) -> None:
    link = make_link("hl7", "mllp-listen", "127.0.0.1:0", events)
    link.start()
    try:
        port = link.wait_listening(WAIT)
        assert port
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            events.state(True)
            two = load(DATA / "hl7" / "masimo_psn_embedded_fs_two_messages.mllp")
            sock.sendall(two[:37])  # partial frame first
            sock.sendall(two[37:])
            acks = read_acks(sock, 2)
            assert [str(a.segment("MSA")(2)) for a in acks] == ["PSN-1", "PSN-2"]
            assert all(str(a.segment("MSA")(1)) == "AA" for a in acks)
            assert [events.reading().spo2 for _ in range(2)] == [93.0, 94.0]
            sock.sendall(mllp_frame(b"not hl7 at all"))
            (ae,) = read_acks(sock, 1)
            assert str(ae.segment("MSA")(1)) == "AE"
            sock.sendall(load(DATA / "hl7" / "ge_b40_pcd01_cuff_nibp.hl7"))
            (aa,) = read_acks(sock, 1)
            assert str(aa.segment("MSA")(2)) == "GE000123"
            assert events.reading().nibp_sys == 142.0
        events.state(False)
        stats = link.stats()
        assert stats["frames_accepted"] == 3 and stats["frames_rejected"] == 1
        assert stats["readings"] == 3 and stats["transport"] == "mllp-listen"
    finally:
        assert link.stop()


def test_callback_errors_do_not_kill_the_reader(events: Events) -> None:
    got = threading.Event()

    def bad(reading: Reading) -> None:
        got.set()
        raise RuntimeError("daemon bug")

    link = MonitorLink("hl7", "mllp-listen", "127.0.0.1:0", bad, reconnect_min_s=0.02)
    link.start()
    try:
        port = link.wait_listening(WAIT)
        assert port
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            sock.sendall(load(DATA / "hl7" / "ge_b40_pcd01_cuff_nibp.hl7") * 2)
            assert len(read_acks(sock, 2)) == 2
        assert got.wait(WAIT)
        assert link.stats()["callback_errors"] == 2
    finally:
        assert link.stop()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="protocol"):
        MonitorLink("philips", "serial", "/dev/null", print)
    with pytest.raises(ValueError, match="transport"):
        MonitorLink("hl7", "udp", "127.0.0.1:1", print)
    with pytest.raises(ValueError, match="HOST:PORT"):
        MonitorLink("hl7", "mllp-listen", "2575", print)
    assert parse_host_port("[::1]:2575") == ("::1", 2575)


def test_backoff_doubles_and_resets() -> None:
    b = Backoff(0.5, 3.0)
    assert [b.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next() == 0.5
