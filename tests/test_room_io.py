"""gpiozero drivers on MockFactory: buttons post events, lights drive the right pin states.

No sleeps: button tests wait on a threading.Event set by the event callback; light tests
use a mock pin that notifies a Condition on every state change and wait for the expected
states with a generous timeout (only a failure ever waits that long).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from controller.core import dome as room_dome
from controller.core import lighting
from firmware_py import room_io
from firmware_py.status_led import SLOW_LATE_S, StatusLed

TIMEOUT = 5.0
CALL, CANCEL, EMERGENCY = 17, 27, 22
DOME, STATUS = 5, 6
RED, GREEN, BLUE = 12, 13, 19

_changed = threading.Condition()


class WatchedPin(MockPWMPin):
    """A MockPWMPin that wakes waiters whenever its state changes."""

    def _change_state(self, value: Any) -> bool:
        with _changed:
            changed: bool = super()._change_state(value)
            _changed.notify_all()
        return changed


def wait_until(predicate: Callable[[], bool]) -> bool:
    with _changed:
        return _changed.wait_for(predicate, timeout=TIMEOUT)


class EventLog:
    """Collects posted events; `wait_for(name)` blocks until that event arrived."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self._lock = threading.Lock()
        self._seen: dict[str, threading.Event] = {}

    def _flag(self, name: str) -> threading.Event:
        with self._lock:
            return self._seen.setdefault(name, threading.Event())

    def __call__(self, name: str) -> None:
        with self._lock:
            self.events.append(name)
        self._flag(name).set()

    def wait_for(self, name: str) -> bool:
        return self._flag(name).wait(TIMEOUT)


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory(pin_class=WatchedPin)
    yield f
    f.reset()


@pytest.fixture
def log() -> EventLog:
    return EventLog()


@pytest.fixture
def buttons(factory: MockFactory, log: EventLog) -> Iterator[room_io.RoomButtons]:
    b = room_io.RoomButtons(
        CALL, CANCEL, EMERGENCY, log, long_press_s=0.05, bounce_s=None, pin_factory=factory
    )
    yield b
    b.close()


@pytest.fixture
def sim(factory: MockFactory) -> room_io.SimulatedButtons:
    return room_io.SimulatedButtons(
        factory, {"call": CALL, "cancel": CANCEL, "emergency": EMERGENCY}
    )


# -- buttons ---------------------------------------------------------------------------


def test_buttons_use_pull_up(factory: MockFactory, buttons: room_io.RoomButtons) -> None:
    for pin in (CALL, CANCEL, EMERGENCY):
        assert factory.pin(pin).pull == "up"
        assert factory.pin(pin).state  # idle = high
    assert not buttons.call.is_pressed


def test_short_press_posts_call_pressed_only(
    buttons: room_io.RoomButtons, sim: room_io.SimulatedButtons, log: EventLog
) -> None:
    # A 10 s hold time so the release certainly comes first; nothing else to wait for.
    buttons.call.hold_time = 10
    sim.press("call")
    assert log.events == ["call_pressed"]  # posted synchronously on the edge
    sim.release("call")
    assert log.events == ["call_pressed"]


def test_long_press_posts_held(
    buttons: room_io.RoomButtons, sim: room_io.SimulatedButtons, log: EventLog
) -> None:
    sim.press("call")
    assert log.wait_for("call_held")
    sim.release("call")
    assert log.events == ["call_pressed", "call_held"]


def test_cancel_and_emergency(
    buttons: room_io.RoomButtons, sim: room_io.SimulatedButtons, log: EventLog
) -> None:
    sim.press("cancel")
    sim.release("cancel")
    sim.press("emergency")
    sim.release("emergency")
    assert log.events == ["cancel_pressed", "emergency_pressed"]


def test_no_emergency_pin(factory: MockFactory, log: EventLog) -> None:
    b = room_io.RoomButtons(CALL, CANCEL, None, log, pin_factory=factory)
    try:
        assert b.emergency is None
        sim = room_io.SimulatedButtons(factory, {"cancel": CANCEL})
        sim.press("cancel")
        sim.release("cancel")
        assert log.events == ["cancel_pressed"]
    finally:
        b.close()


def test_failing_sink_does_not_break_buttons(
    factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(name: str) -> None:
        raise RuntimeError("queue full")

    b = room_io.RoomButtons(CALL, CANCEL, None, broken, pin_factory=factory)
    try:
        sim = room_io.SimulatedButtons(factory, {"cancel": CANCEL})
        sim.press("cancel")
        sim.release("cancel")
        assert "cancel_pressed" in caplog.text
    finally:
        b.close()


def test_close_releases_pins_for_reuse(factory: MockFactory, log: EventLog) -> None:
    b = room_io.RoomButtons(CALL, CANCEL, EMERGENCY, log, pin_factory=factory)
    b.close()
    b.close()  # idempotent
    again = room_io.RoomButtons(CALL, CANCEL, EMERGENCY, log, pin_factory=factory)
    again.close()


def test_pin_clash_releases_already_built_buttons(factory: MockFactory, log: EventLog) -> None:
    with pytest.raises(Exception):  # noqa: B017 - gpiozero's GPIOPinInUse
        room_io.RoomButtons(CALL, CALL, None, log, pin_factory=factory)
    room_io.RoomButtons(CALL, CANCEL, None, log, pin_factory=factory).close()


def test_simulated_buttons_reject_unknown_names(factory: MockFactory) -> None:
    with pytest.raises(ValueError):
        room_io.SimulatedButtons(factory, {"panic": 4})
    sim = room_io.SimulatedButtons(factory, {"call": CALL})
    with pytest.raises(ValueError):
        sim.press("cancel")


def test_mock_pin_factory_supports_pwm() -> None:
    f = room_io.mock_pin_factory()
    assert isinstance(f, MockFactory)
    assert f.pin_class is MockPWMPin
    light = room_io.AmbientLight(RED, GREEN, BLUE, pin_factory=f)
    try:
        light.set((0.25, 0.5, 0.75))
        assert light.value == (0.25, 0.5, 0.75)
    finally:
        light.close()
        f.reset()


# -- dome light ------------------------------------------------------------------------


@pytest.fixture
def dome(factory: MockFactory) -> Iterator[room_io.DomeLight]:
    d = room_io.DomeLight(DOME, pin_factory=factory)
    yield d
    d.close()


def test_dome_steady_and_off(factory: MockFactory, dome: room_io.DomeLight) -> None:
    pin = factory.pin(DOME)
    assert not dome.is_lit
    dome.apply("steady")
    assert dome.is_lit and pin.state
    dome.apply("off")
    assert not dome.is_lit
    pin.assert_states([False, True, False])


def test_dome_blinks_in_background(factory: MockFactory, dome: room_io.DomeLight) -> None:
    pin = factory.pin(DOME)
    dome.apply("blink", 0.01, 0.01)
    assert wait_until(lambda: len(pin.states) >= 5)
    pin.assert_states([False, True, False, True, False])
    dome.apply("steady")
    assert dome.is_lit
    count = len(pin.states)
    dome.apply("steady")  # same pattern: no change
    assert len(pin.states) == count


def test_dome_reapplying_same_blink_does_not_restart(dome: room_io.DomeLight) -> None:
    dome.apply("blink", 10, 10)
    thread = dome._led._blink_thread
    dome.apply("blink", 10, 10)
    assert dome._led._blink_thread is thread
    assert dome.pattern == ("blink", 10.0, 10.0)


def test_dome_follows_lighting_patterns(factory: MockFactory, dome: room_io.DomeLight) -> None:
    pattern = room_dome.PATTERNS["steady"]
    dome.apply(pattern.kind, pattern.on_s, pattern.off_s)
    assert dome.is_lit
    pattern = room_dome.PATTERNS["off"]
    dome.apply(pattern.kind, pattern.on_s, pattern.off_s)
    assert not dome.is_lit


def test_dome_rejects_unknown_kind_and_degenerate_blink(dome: room_io.DomeLight) -> None:
    with pytest.raises(ValueError):
        dome.apply("disco")
    assert dome.pattern == ("off", 0.0, 0.0)
    dome.apply("blink", 0, 1)
    assert dome.pattern == ("steady", 0.0, 0.0)
    assert dome.is_lit


# -- ambient light ---------------------------------------------------------------------


def test_ambient_sets_pwm_duty_and_clamps(factory: MockFactory) -> None:
    light = room_io.AmbientLight(RED, GREEN, BLUE, pin_factory=factory)
    try:
        light.set((0.2, 0.4, 0.6))
        assert light.value == pytest.approx((0.2, 0.4, 0.6))
        assert factory.pin(GREEN).state == pytest.approx(0.4)
        light.set((1.5, -0.1, float("nan")))
        assert light.value == (1.0, 0.0, 0.0)
        factory.pin(RED).assert_states([0.0, 0.2, 1.0])
    finally:
        light.close()


# -- status LED ------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def status(factory: MockFactory, clock: FakeClock) -> Iterator[StatusLed]:
    s = StatusLed(STATUS, pin_factory=factory, clock=clock)
    yield s
    s.close()


def test_status_led_repeats_cycle_as_its_loop_steps_it(
    factory: MockFactory, status: StatusLed, clock: FakeClock
) -> None:
    """No thread: the owner's loop calls step() and sleeps for what it returns."""
    pin = factory.pin(STATUS)
    status.show([(True, 0.1), (False, 2.9)])
    assert pin.state == 1.0  # the first step at once
    seen = []
    for _ in range(6):  # follow the LED as the daemon would: sleep until the next change
        wait = status.step()
        assert wait is not None and wait > 0
        seen.append((round(wait, 6), pin.state))
        clock.t += wait
    assert seen == [(0.1, 1.0), (2.9, 0.0)] * 3
    pin.assert_states([False, True, False, True, False, True, False])
    assert not any(t.name == "status-led" for t in threading.enumerate())


def test_a_late_wake_skips_no_step_and_each_step_keeps_its_length(
    factory: MockFactory, status: StatusLed, clock: FakeClock
) -> None:
    """A loop that woke late (a long round) shows the next step, for its whole length."""
    pin = factory.pin(STATUS)
    status.show([(True, 0.25), (False, 0.35)])
    clock.t += 0.9  # woke 0.65 s late: the off step comes now, not the step "due" now
    assert status.step() == pytest.approx(0.35)
    assert pin.state == 0.0
    clock.t += 0.35
    assert status.step() == pytest.approx(0.25) and pin.state == 1.0
    pin.assert_states([False, True, False, True])


def test_a_heartbeat_follows_a_1_hz_monitors_wake_ups_and_blink_codes_do_not(
    factory: MockFactory, status: StatusLed, clock: FakeClock
) -> None:
    """The heartbeat (1 s on, 2 s off) changes at the wake-ups a 1 Hz monitor causes, even
    with their jitter, so it needs none of its own; a blink code may not wait."""
    pin = factory.pin(STATUS)
    status.show(lighting.blink_sequence(lighting.StatusCode.OK))
    assert status.late_s == SLOW_LATE_S > 1.0
    changes = []
    for k in range(1, 31):  # readings at 0.37 s past each second, +-20 ms of jitter
        clock.t = 100.0 + 0.37 + k + (0.02 if k % 3 else -0.02)
        lit = pin.state
        wait = status.step()
        assert wait is not None and wait + status.late_s > 1.0  # the loop waits for a reading
        if pin.state != lit:
            changes.append(clock.t)
    lengths = [round(b - a) for a, b in pairwise(changes)]
    assert len(lengths) >= 8 and set(lengths) == {1, 2}
    assert all(x + y == 3 for x, y in pairwise(lengths))
    status.show(lighting.blink_sequence(lighting.StatusCode.MONITOR_SILENT))
    assert status.late_s == 0.0


def test_status_led_replaces_sequence_cleanly(
    factory: MockFactory, status: StatusLed, clock: FakeClock
) -> None:
    pin = factory.pin(STATUS)
    status.show([(True, 0.5), (False, 0.5)])
    clock.t += 0.7
    status.step()
    assert pin.state == 0.0
    status.show([(True, 60.0)])  # steady on
    assert pin.state == 1.0
    assert status.sequence == ((True, 60.0),)
    assert status.step() is None  # never changes: the loop need not wake for it
    count = len(pin.states)
    status.show([(True, 60.0)])  # same sequence: not restarted
    clock.t += 30
    status.step()
    assert len(pin.states) == count


def test_status_led_with_lighting_codes(
    factory: MockFactory, status: StatusLed, clock: FakeClock
) -> None:
    seq = lighting.blink_sequence(lighting.StatusCode.MONITOR_SILENT)
    status.show(seq)
    assert status.sequence == seq
    assert factory.pin(STATUS).state == 1.0
    blinks = 0
    for _ in range(40):  # one whole cycle: count the blinks the technician would count
        was = factory.pin(STATUS).state
        wait = status.step()
        assert wait is not None
        clock.t += wait
        status.step()
        if was == 0.0 and factory.pin(STATUS).state == 1.0:
            blinks += 1
        if clock.t - 100.0 >= sum(s for _, s in seq) - 1e-9:
            break
    assert blinks == int(lighting.StatusCode.MONITOR_SILENT)


def test_status_led_empty_sequence_is_off(factory: MockFactory, status: StatusLed) -> None:
    status.show([(True, 1.0)])
    status.show([(True, 0.0), (False, float("nan"))])
    assert status.sequence == ()
    assert not status.is_lit
    assert status.step() is None


def test_close_releases_the_pin(factory: MockFactory) -> None:
    s = StatusLed(STATUS, pin_factory=factory)
    s.show([(True, 0.005), (False, 0.005)])
    s.close()
    assert s.sequence == ()
    StatusLed(STATUS, pin_factory=factory).close()  # the pin is free again
