"""The simulated monitors: the trace, the fault modes, and the runners on real ptys and
loopback sockets, read back through MonitorLink (the code the room uses)."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from firmware_py.monitors.link import MonitorLink
from firmware_py.monitors.parsers import make_parser
from firmware_py.monitors.session_trace import INFUSION_S, PRE_CHECK_S, SESSION_S, KetamineTrace
from firmware_py.monitors.simulate import (
    DeviceSignal,
    SimulatorOptions,
    run_hl7_client,
    run_pty,
    run_tcp_server,
)
from tests.support.monitor_events import WAIT, Events


def test_trace_rises_in_infusion_and_settles_in_recovery() -> None:
    trace = KetamineTrace(seed=7)
    pre = trace.at(PRE_CHECK_S - 10)
    peak = trace.at(PRE_CHECK_S + INFUSION_S - 10)
    settled = trace.at(SESSION_S + 600)
    assert peak.heart_rate >= pre.heart_rate + 10
    assert peak.nibp_sys >= pre.nibp_sys + 15 and peak.nibp_dia > pre.nibp_dia
    assert abs(settled.heart_rate - pre.heart_rate) <= 6
    assert abs(settled.nibp_sys - pre.nibp_sys) <= 8
    assert [trace.phase_at(t) for t in (0, PRE_CHECK_S, PRE_CHECK_S + INFUSION_S, SESSION_S)] == [
        "pre_check", "infusion", "recovery", "discharge_ready"
    ]


def test_trace_is_deterministic_and_desaturation_is_optional() -> None:
    times = [t * 5.0 for t in range(int(SESSION_S / 5))]
    a = [KetamineTrace(seed=3, desat=True).at(t) for t in times]
    assert a == [KetamineTrace(seed=3, desat=True).at(t) for t in times]
    assert a != [KetamineTrace(seed=4, desat=True).at(t) for t in times]
    assert min(p.spo2 for p in a) < 90
    assert min(KetamineTrace(seed=3).at(t).spo2 for t in times) >= 94
    for p in a:  # every value the encoders send is inside the contract's limits
        assert 0 < p.spo2 <= 100 and 30 < p.heart_rate < 200 and 15 <= p.temp_c <= 46


@pytest.mark.parametrize("protocol", ["masimo", "nonin-df2", "nonin-df7", "hl7"])
def test_sensor_off_fault_is_no_value_not_zero(protocol: str) -> None:
    opts = SimulatorOptions(protocol, fault="sensor-off", speed=60)
    signal = DeviceSignal(opts)
    parser = make_parser(protocol)
    parser.feed(signal.chunk(1.0, 0.0))
    parser.feed(signal.chunk(12.0, 0.0))  # inside the 10-18 s fault window
    normal, off = list(parser.readings())
    assert normal.spo2 is not None and normal.pulse_rate is not None
    assert off.spo2 is None and off.pulse_rate is None and off.quality
    assert parser.frames_rejected == 0


@pytest.mark.parametrize("protocol", ["masimo", "nonin-df2", "hl7"])
def test_garbage_fault_is_survived(protocol: str) -> None:
    signal = DeviceSignal(SimulatorOptions(protocol, fault="garbage", seed=5))
    parser = make_parser(protocol)
    ticks = [10.0 + k * signal.period for k in range(12)]  # all inside the window
    data = b"".join(signal.chunk(t, 0.0) for t in ticks)
    clean = DeviceSignal(SimulatorOptions(protocol))
    assert len(data) > sum(len(clean.chunk(t, 0.0)) for t in ticks)
    parser.feed(data)
    assert len(list(parser.readings())) >= len(ticks) - 1


def test_unplug_window_and_bad_options() -> None:
    signal = DeviceSignal(SimulatorOptions("masimo", fault="unplug"))
    assert [signal.unplugged(t) for t in (5.0, 10.0, 17.9, 18.0, 40.0)] == [
        False, True, True, False, True
    ]
    with pytest.raises(ValueError):
        DeviceSignal(SimulatorOptions("philips"))
    with pytest.raises(ValueError):
        DeviceSignal(SimulatorOptions("hl7", fault="fire"))


class LineSink(io.StringIO):
    """The simulator's stdout; `line()` waits (with a timeout) for the first line."""

    def __init__(self) -> None:
        super().__init__()
        self.wrote = threading.Event()

    def write(self, s: str) -> int:
        n = super().write(s)
        self.wrote.set()
        return n

    def line(self) -> str:
        assert self.wrote.wait(WAIT)
        return self.getvalue().splitlines()[0]


def test_pty_simulator_with_unplug_drives_a_serial_link(tmp_path: Path) -> None:
    by_id = tmp_path / "usb-Masimo_Rad-8-if00"
    opts = SimulatorOptions(
        "masimo", speed=60, fault="unplug", seed=2,
        fault_every_s=100.0, fault_start_s=2.2, fault_len_s=1.0,
    )
    out = LineSink()
    stop = threading.Event()
    done: dict[str, int] = {}
    sim = threading.Thread(target=lambda: done.update(run_pty(opts, out, stop, by_id)))
    events = Events()
    sim.start()
    try:
        assert out.line().startswith("/dev/pts/")
        events_link = MonitorLink("masimo", "serial", str(by_id), events.on_reading,
                                  reconnect_min_s=0.05, reconnect_max_s=0.2,
                                  on_state=events.on_state)
        events_link.start()
        events.state(True)
        first = events.reading()
        assert first.spo2 is not None and first.protocol == "masimo"
        events.state(False)  # unplugged at 2.2 s
        events.state(True)  # plugged back at 3.2 s, new pty behind the same symlink
        after = events.reading()
        assert after.received_at > first.received_at
        assert events_link.stop()
    finally:
        stop.set()
        sim.join(WAIT)
    assert not sim.is_alive()
    assert done["unplugs"] == 1
    assert len(out.getvalue().splitlines()) == 2  # a path line per plug-in
    assert not by_id.exists()


def test_tcp_bridge_simulator_feeds_a_tcp_client_link() -> None:
    opts = SimulatorOptions("nonin-df7", speed=30, seed=1)
    out = LineSink()
    stop = threading.Event()
    done: dict[str, int] = {}
    sim = threading.Thread(
        target=lambda: done.update(run_tcp_server(opts, "127.0.0.1:0", out, stop))
    )
    sim.start()
    events = Events()
    link: MonitorLink | None = None
    try:
        address = out.line()
        link = MonitorLink("nonin-df7", "tcp-client", address, events.on_reading,
                           reconnect_min_s=0.05, on_state=events.on_state)
        link.start()
        readings = [events.reading() for _ in range(4)]
        assert all(r.spo2 is not None and 90 <= r.spo2 <= 100 for r in readings)
    finally:
        if link is not None:
            assert link.stop()
        stop.set()
        sim.join(WAIT)
    assert done["clients"] >= 1 and done["sent"] >= 4


def test_hl7_simulator_pushes_to_an_mllp_listener_and_gets_acks() -> None:
    events = Events()
    link = MonitorLink("hl7", "mllp-listen", "127.0.0.1:0", events.on_reading,
                       on_state=events.on_state)
    link.start()
    try:
        port = link.wait_listening(WAIT)
        opts = SimulatorOptions("hl7", speed=120, duration=3.0, desat=True, seed=9)
        stats = run_hl7_client(opts, f"127.0.0.1:{port}", io.StringIO(), threading.Event())
        assert stats["sent"] == 3 and stats["acked_aa"] == 3 and stats["ack_timeouts"] == 0
        readings = [events.reading() for _ in range(3)]
        assert all(r.nibp_sys is not None and r.heart_rate is not None for r in readings)
        assert link.stats()["frames_accepted"] == 3
    finally:
        assert link.stop()
