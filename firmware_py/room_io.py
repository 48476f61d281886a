"""gpiozero drivers for one treatment room: buttons, dome light, ambient RGB light, buzzer
(the status LED is `status_led.py`).

How this works:

* Thin adapters only: the decisions (which pattern, which colour, which blink code) are
  made by `controller.core.lighting` and the call/phase cores; these classes only drive pins.
* Nothing touches GPIO at import time. Every class takes `pin_factory=None` and passes it
  to each gpiozero device, so tests (and `--simulate` rooms) use `mock_pin_factory()`.
* Button callbacks run on gpiozero's event thread and only post a `ButtonEdge` through
  `on_event` (the daemon puts it on its queue); they never touch state.
* Buttons are wired to ground with the Pi's internal pull-up (`pull_up=True`): pressed =
  pin low. A mock button is pressed with `pin.drive_low()` (see `SimulatedButtons`).

Events posted by `RoomButtons`:

| event               | when                                                   |
|---------------------|--------------------------------------------------------|
| `call_pressed`      | call button goes down (at once)                        |
| `call_held`         | call button still down after `long_press_s` (emergency) |
| `cancel_pressed`    | cancel button goes down                                |
| `cancel_held`       | cancel button still down after `cleaning_hold_s`        |
| `emergency_pressed` | emergency input (code switch, second button) goes down |
| `presence_pressed`  | staff presence input goes down                         |
| `assist_pressed`    | staff assist button goes down                          |
| `bath_pressed`      | restroom pull cord pulled                              |
| `cord_closed`       | call-cord loop closed (cord plugged in)                |
| `cord_opened`       | call-cord loop open (cord out, or a cut wire)          |

A long press therefore posts `call_pressed` then `call_held`: the call is placed at once and
raised to emergency when the hold is recognised.

The call-cord jack is a normally-closed loop to ground: closed reads as a pressed button
(pin low), so an unplugged cord is a release. `SimulatedButtons` opens and closes it.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gpiozero import LED, RGBLED, Buzzer, DigitalInputDevice

log = logging.getLogger(__name__)

BUTTON_NAMES = ("call", "cancel", "emergency", "presence", "assist", "bath", "cord")


class ButtonEdge(enum.StrEnum):
    """What `RoomButtons` posts (the table in the module docstring)."""

    CALL_PRESSED = "call_pressed"
    CALL_HELD = "call_held"
    CANCEL_PRESSED = "cancel_pressed"
    CANCEL_HELD = "cancel_held"
    EMERGENCY_PRESSED = "emergency_pressed"
    PRESENCE_PRESSED = "presence_pressed"
    ASSIST_PRESSED = "assist_pressed"
    BATH_PRESSED = "bath_pressed"
    CORD_CLOSED = "cord_closed"
    CORD_OPENED = "cord_opened"


def _post(on_event: Callable[[ButtonEdge], None], name: ButtonEdge) -> Callable[[], None]:
    def callback() -> None:
        try:
            on_event(name)
        except Exception:  # a failing sink must not kill gpiozero's event thread
            log.exception("posting button event %s failed", name)

    return callback


class Button(DigitalInputDevice):  # type: ignore[misc]  # gpiozero is untyped
    """A push button (pulled up, pressed = low) whose long press is a timer, not a poll.

    gpiozero's `Button` runs a hold thread per button that wakes ten times a second, pressed
    or not (issue 17: no busy ticking on a Pi). Here a press starts a one-shot timer of
    `hold_time` seconds that fires `when_held` if the button is still pressed; a release
    cancels it. `when_pressed` and `when_released` run on the pin's edges, as with
    gpiozero's button.
    """

    def __init__(
        self,
        pin: int,
        *,
        pull_up: bool = True,
        bounce_time: float | None = None,
        hold_time: float = 1.0,
        pin_factory: Any = None,
    ) -> None:
        self.hold_time = hold_time
        self.when_pressed: Callable[[], None] | None = None
        self.when_released: Callable[[], None] | None = None
        self.when_held: Callable[[], None] | None = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        super().__init__(pin, pull_up=pull_up, bounce_time=bounce_time, pin_factory=pin_factory)

    @property
    def is_pressed(self) -> bool:
        return bool(self.is_active)

    def _fire_activated(self) -> None:
        super()._fire_activated()
        with self._lock:
            self._cancel_timer()
            if self.when_held is not None:
                self._timer = threading.Timer(self.hold_time, self._held)
                self._timer.daemon = True
                self._timer.start()
        if self.when_pressed is not None:
            self.when_pressed()

    def _fire_deactivated(self) -> None:
        with self._lock:
            self._cancel_timer()
        super()._fire_deactivated()
        if self.when_released is not None:
            self.when_released()

    def _held(self) -> None:
        callback = self.when_held
        if callback is not None and not self.closed and self.is_active:
            callback()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        with self._lock:
            self._cancel_timer()
        super().close()


class RoomButtons:
    """The room's call, cancel and (optional) emergency inputs.

    Args:
        call_pin: GPIO (BCM) of the patient call button.
        cancel_pin: GPIO of the cancel/presence button.
        emergency_pin: GPIO of the emergency input, or None if the room has none.
        on_event: Receives the event names listed in the module docstring; called on
            gpiozero's thread, so it must be quick and thread-safe (e.g. `queue.put_nowait`).
        long_press_s: How long the call button must be held to become an emergency.
        bounce_s: Debounce time for the GPIO driver, or None.
        pin_factory: gpiozero pin factory (None = gpiozero's default).
        extra_pins: Optional inputs by name (`presence`, `assist`, `bath`, `cord`); None
            or absent when the room has no such input.
        cleaning_hold_s: How long the cancel button must be held to start/end cleaning.
    """

    def __init__(
        self,
        call_pin: int,
        cancel_pin: int,
        emergency_pin: int | None,
        on_event: Callable[[ButtonEdge], None],
        long_press_s: float = 2.0,
        bounce_s: float | None = 0.05,
        pin_factory: Any = None,
        extra_pins: Mapping[str, int | None] | None = None,
        cleaning_hold_s: float = 5.0,
    ) -> None:
        self._buttons: list[Button] = []
        extra = {k: v for k, v in (extra_pins or {}).items() if v is not None}
        unknown = set(extra) - {"presence", "assist", "bath", "cord"}
        if unknown:
            raise ValueError(f"unknown inputs: {sorted(unknown)}")
        try:
            self.call = self._button(call_pin, bounce_s, pin_factory, hold_time=long_press_s)
            self.call.when_pressed = _post(on_event, ButtonEdge.CALL_PRESSED)
            self.call.when_held = _post(on_event, ButtonEdge.CALL_HELD)
            self.cancel = self._button(cancel_pin, bounce_s, pin_factory, cleaning_hold_s)
            self.cancel.when_pressed = _post(on_event, ButtonEdge.CANCEL_PRESSED)
            self.cancel.when_held = _post(on_event, ButtonEdge.CANCEL_HELD)
            self.emergency: Button | None = None
            if emergency_pin is not None:
                self.emergency = self._button(emergency_pin, bounce_s, pin_factory)
                self.emergency.when_pressed = _post(on_event, ButtonEdge.EMERGENCY_PRESSED)
            self.inputs: dict[str, Button] = {}
            for name, edge in (
                ("presence", ButtonEdge.PRESENCE_PRESSED),
                ("assist", ButtonEdge.ASSIST_PRESSED),
                ("bath", ButtonEdge.BATH_PRESSED),
            ):
                if name in extra:
                    self.inputs[name] = self._button(extra[name], bounce_s, pin_factory)
                    self.inputs[name].when_pressed = _post(on_event, edge)
            self.cord: Button | None = None
            if "cord" in extra:
                self.cord = self._button(extra["cord"], bounce_s, pin_factory)
                self.cord.when_pressed = _post(on_event, ButtonEdge.CORD_CLOSED)
                self.cord.when_released = _post(on_event, ButtonEdge.CORD_OPENED)
        except Exception:
            self.close()
            raise

    def _button(
        self, pin: int, bounce_s: float | None, pin_factory: Any, hold_time: float = 1.0
    ) -> Button:
        button = Button(
            pin,
            pull_up=True,
            bounce_time=bounce_s,
            hold_time=hold_time,
            pin_factory=pin_factory,
        )
        self._buttons.append(button)
        return button

    def cord_closed(self) -> bool | None:
        """Whether the call-cord loop is closed now (None: no cord input)."""
        return None if self.cord is None else bool(self.cord.is_pressed)

    def close(self) -> None:
        """Release every pin (idempotent)."""
        for button in self._buttons:
            button.close()
        self._buttons.clear()


class DomeLight:
    """The dome (corridor) light above the door: off, steady or blinking.

    Args:
        pin: GPIO driving the dome light (through a transistor/relay, active high).
        pin_factory: gpiozero pin factory.
    """

    def __init__(self, pin: int, pin_factory: Any = None) -> None:
        self._led = LED(pin, pin_factory=pin_factory)
        self._current: tuple[str, float, float] = ("off", 0.0, 0.0)

    def apply(self, kind: str, on_s: float = 0, off_s: float = 0) -> None:
        """Show a pattern; re-applying the current pattern does nothing (no blink restart).

        Args:
            kind: "off", "steady" or "blink" (`controller.core.lighting.DomePattern.kind`).
            on_s: Blink on time.
            off_s: Blink off time. A blink with a non-positive time is shown steady.

        Raises:
            ValueError: For an unknown kind (the light is left as it was).
        """
        if kind not in ("off", "steady", "blink"):
            raise ValueError(f"unknown dome pattern {kind!r}")
        if kind == "blink" and not all(math.isfinite(t) and t > 0 for t in (on_s, off_s)):
            kind = "steady"
        wanted = (kind, float(on_s), float(off_s)) if kind == "blink" else (kind, 0.0, 0.0)
        if wanted == self._current:
            return
        if kind == "off":
            self._led.off()
        elif kind == "steady":
            self._led.on()
        else:
            self._led.blink(on_time=on_s, off_time=off_s, background=True)
        self._current = wanted

    @property
    def pattern(self) -> tuple[str, float, float]:
        """The pattern last applied, as (kind, on_s, off_s)."""
        return self._current

    @property
    def is_lit(self) -> bool:
        """Whether the light is on at this instant (toggles while blinking)."""
        return bool(self._led.is_lit)

    def close(self) -> None:
        """Stop blinking and release the pin."""
        self._led.close()


def _clamp(value: float) -> float:
    if math.isnan(value):
        return 0.0
    return min(1.0, max(0.0, float(value)))


class AmbientLight:
    """The room's ambient RGB light (PWM on three channels).

    Args:
        red_pin: GPIO of the red channel.
        green_pin: GPIO of the green channel.
        blue_pin: GPIO of the blue channel.
        pin_factory: gpiozero pin factory (must support PWM; `mock_pin_factory()` does).
    """

    def __init__(
        self, red_pin: int, green_pin: int, blue_pin: int, pin_factory: Any = None
    ) -> None:
        self._led = RGBLED(red_pin, green_pin, blue_pin, pwm=True, pin_factory=pin_factory)

    def set(self, rgb: Sequence[float]) -> None:
        """Set the colour; each channel is clamped to 0..1 (NaN = 0)."""
        red, green, blue = rgb
        self._led.value = (_clamp(red), _clamp(green), _clamp(blue))

    @property
    def value(self) -> tuple[float, float, float]:
        """The colour currently shown."""
        red, green, blue = self._led.value
        return (float(red), float(green), float(blue))

    def close(self) -> None:
        """Release the pins."""
        self._led.close()


class RoomBuzzer:
    """An active buzzer, if the room has one: on while the central side is blind to a call."""

    def __init__(self, pin: int, pin_factory: Any = None) -> None:
        self._dev = Buzzer(pin, pin_factory=pin_factory)

    def set(self, on: bool) -> None:
        if on:
            self._dev.on()
        else:
            self._dev.off()

    @property
    def is_on(self) -> bool:
        return bool(self._dev.is_active)

    def close(self) -> None:
        self._dev.close()


def mock_pin_factory() -> Any:
    """A gpiozero `MockFactory` whose pins support PWM (tests and simulated rooms)."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    return MockFactory(pin_class=MockPWMPin)


class SimulatedButtons:
    """Presses and releases the mock button pins of a simulated room.

    Args:
        factory: The mock pin factory the `RoomButtons` were built with.
        pins: Input name (`BUTTON_NAMES`: "call", "cancel", ..., "cord") -> GPIO number.
    """

    def __init__(self, factory: Any, pins: Mapping[str, int]) -> None:
        unknown = set(pins) - set(BUTTON_NAMES)
        if unknown:
            raise ValueError(f"unknown button names: {sorted(unknown)}")
        self._factory = factory
        self._pins = dict(pins)

    def _pin(self, name: str) -> Any:
        if name not in self._pins:
            raise ValueError(f"no simulated {name!r} button; have {sorted(self._pins)}")
        return self._factory.pin(self._pins[name])

    def press(self, name: str) -> None:
        """Press a button (pull-up wiring: drive the pin low)."""
        self._pin(name).drive_low()

    def release(self, name: str) -> None:
        """Release a button (the pull-up takes the pin high again)."""
        self._pin(name).drive_high()

    def apply(self, name: str, action: str) -> None:
        """`press`/`release` a button, `open`/`close` the cord loop (closed = pin low)."""
        if action in ("press", "close"):
            self.press(name)
        elif action in ("release", "open"):
            self.release(name)
        else:
            raise ValueError(f"unknown action {action!r}")
