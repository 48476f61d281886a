"""The room's GPIO, from config: buttons, dome light, ambient RGB light, status LED.

A thin adapter over `firmware_py.room_io`. It remembers what each output shows so the
daemon can set outputs every tick without restarting a blink, and it turns a GPIO error
into a `fault` health status instead of a crash (the room keeps publishing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from controller.config import RoomConfig
from controller.core.dome import DomeLayer
from controller.core.io_types import (
    Action,
    Button,
    SetAmbient,
    SetBuzzer,
    SetDome,
    SetStatusLed,
    SimulateButton,
)
from firmware_py import dome_lights, room_io
from firmware_py.room_io import ButtonEdge
from firmware_py.status_led import StatusLed

T = TypeVar("T")
log = logging.getLogger(__name__)

# The GPIO driver's edges, as the room core's buttons.
BUTTON_OF_EDGE: dict[ButtonEdge, Button] = {
    ButtonEdge.CALL_PRESSED: Button.CALL,
    ButtonEdge.CALL_HELD: Button.CALL_HELD,
    ButtonEdge.CANCEL_PRESSED: Button.CANCEL,
    ButtonEdge.CANCEL_HELD: Button.CANCEL_HELD,
    ButtonEdge.EMERGENCY_PRESSED: Button.EMERGENCY,
    ButtonEdge.PRESENCE_PRESSED: Button.PRESENCE,
    ButtonEdge.ASSIST_PRESSED: Button.ASSIST,
    ButtonEdge.BATH_PRESSED: Button.BATH,
}
CORD_OF_EDGE = {ButtonEdge.CORD_CLOSED: True, ButtonEdge.CORD_OPENED: False}
OPTIONAL_INPUTS = ("emergency", "presence", "assist", "bath", "cord")


def input_pins(config: RoomConfig) -> dict[str, int | None]:
    """Every input's pin; a `--simulate` room gives each unwired input a free mock pin."""
    g = config.gpio
    pins: dict[str, int | None] = {
        "call": g.call_pin,
        "cancel": g.cancel_pin,
        **{name: getattr(g, f"{name}_pin") for name in OPTIONAL_INPUTS},
    }
    if config.simulate:
        used = {getattr(g, f) for f in type(g).model_fields if f.endswith("_pin")}
        used |= set(config.dome.rgb_pins or ()) | set(config.dome.sections.values())
        free = iter(p for p in range(27, -1, -1) if p not in used)
        pins = {name: pin if pin is not None else next(free) for name, pin in pins.items()}
    return pins


class RoomHardware:
    def __init__(
        self,
        config: RoomConfig,
        on_button: Callable[[Button], None],
        pin_factory: Any = None,
        on_cord: Callable[[bool], None] | None = None,
    ):
        g = config.gpio
        if pin_factory is None and config.simulate:
            pin_factory = room_io.mock_pin_factory()
        self.pin_factory = pin_factory
        self.ok = True
        self._dome: tuple[object, ...] | None = None
        self._ambient: tuple[float, float, float] | None = None
        self._status: tuple[tuple[bool, float], ...] | None = None
        pins = input_pins(config)

        def post(edge: ButtonEdge) -> None:
            if edge in CORD_OF_EDGE:
                if on_cord is not None:
                    on_cord(CORD_OF_EDGE[edge])
            else:
                on_button(BUTTON_OF_EDGE[edge])

        self.sim: room_io.SimulatedButtons | None = None
        self.sim_pins: dict[str, int] = {}
        if config.simulate:
            self.sim_pins = {name: pin for name, pin in pins.items() if pin is not None}
            self.sim = room_io.SimulatedButtons(pin_factory, self.sim_pins)
        self.buttons = room_io.RoomButtons(
            pins["call"] or g.call_pin,
            pins["cancel"] or g.cancel_pin,
            pins["emergency"],
            post,
            long_press_s=g.long_press_s,
            bounce_s=g.bounce_s or None,
            pin_factory=pin_factory,
            extra_pins={name: pins[name] for name in ("presence", "assist", "bath", "cord")},
            cleaning_hold_s=config.cleaning.hold_s,
        )
        if self.sim is not None:
            self.sim.apply("cord", "close")  # a simulated room starts with its cord plugged in
        self.dome = dome_lights.build_dome(
            config.dome.kind,
            g.dome_pin,
            config.dome.rgb_pins,
            config.dome.sections,
            config.dome.full_palette(),
            pin_factory=pin_factory,
        )
        self.ambient = room_io.AmbientLight(
            g.ambient_red_pin, g.ambient_green_pin, g.ambient_blue_pin, pin_factory=pin_factory
        )
        self.status = StatusLed(g.status_pin, pin_factory=pin_factory)
        self.buzzer = (
            room_io.RoomBuzzer(g.buzzer_pin, pin_factory=pin_factory)
            if g.buzzer_pin is not None
            else None
        )

    def cord_closed(self) -> bool | None:
        """Whether the call-cord loop is closed now (None: the room has no cord input)."""
        try:
            return self.buttons.cord_closed()
        except Exception:
            log.exception("reading the cord loop")
            return None

    def inputs(self) -> dict[str, bool]:
        """Each call input by name: does it read as pressed now (the self-test's check)."""
        b = self.buttons
        found = {"call": b.call, "cancel": b.cancel, "emergency": b.emergency, **b.inputs}
        return {name: bool(btn.is_pressed) for name, btn in found.items() if btn is not None}

    def dome_lit(self) -> bool:
        """Whether any lamp of the dome is on now (the self-test's read-back)."""
        dome: Any = self.dome
        if hasattr(dome, "lights"):  # a lamp per colour
            return any(light.is_lit for light in dome.lights.values())
        if hasattr(dome, "is_lit"):
            return bool(dome.is_lit)
        return any(channel > 0 for channel in dome.value)  # one RGB lamp

    def _guard(self, what: str, action: Callable[[], T]) -> T | None:
        try:
            return action()
        except Exception:  # a GPIO fault must not stop the room
            if self.ok:
                log.exception("GPIO fault on %s", what)
            self.ok = False
            return None

    def set_dome(
        self,
        kind: str,
        on_s: float = 0.0,
        off_s: float = 0.0,
        colour: str = "white",
        layers: Sequence[DomeLayer] = (),
    ) -> None:
        if not layers and kind != "off":  # an action built by hand: one layer
            layers = (DomeLayer(colour, kind, on_s, off_s),)
        want = tuple((x.colour, x.kind, x.on_s, x.off_s) for x in layers)
        if want != self._dome:
            self._dome = want
            self._guard("dome light", lambda: self.dome.show(layers))

    def set_ambient(self, rgb: Sequence[float]) -> None:
        want = (round(rgb[0], 3), round(rgb[1], 3), round(rgb[2], 3))
        if want != self._ambient:
            self._ambient = want
            self._guard("ambient light", lambda: self.ambient.set(want))

    def set_status(self, sequence: Sequence[tuple[bool, float]]) -> None:
        want = tuple(sequence)
        if want != self._status:
            self._status = want
            self._guard("status LED", lambda: self.status.show(want))

    def step_status(self, now: float) -> float | None:
        """Step the status LED's cycle (the daemon's loop drives it); seconds until it next
        changes, None if it never does (or its GPIO failed)."""
        return self._guard("status LED", lambda: self.status.step(now))

    @property
    def status_late_s(self) -> float:
        """How late the status LED's next change may come (0 for blink codes)."""
        return self.status.late_s

    def simulate(self, button: str, action: str) -> None:
        if self.sim is None:
            return
        if button not in self.sim_pins:
            log.warning("simulated %s button is not configured", button)
            return
        self.sim.apply(button, action)

    def perform(self, action: Action) -> None:
        """Set one output the room core asked for (other actions are not the hardware's)."""
        match action:
            case SetDome(kind=kind, on_s=on_s, off_s=off_s, colour=colour, layers=layers):
                self.set_dome(kind, on_s, off_s, colour, layers)
            case SetAmbient(rgb=rgb):
                self.set_ambient(rgb)
            case SetStatusLed(sequence=sequence):
                self.set_status(sequence)
            case SetBuzzer(on=on):
                buzzer = self.buzzer
                if buzzer is not None:
                    self._guard("buzzer", lambda: buzzer.set(on))
            case SimulateButton(button=button, action=press):
                self.simulate(button, press)

    def close(self) -> None:
        for dev in (self.buttons, self.dome, self.ambient, self.status, self.buzzer):
            if dev is None:
                continue
            try:
                dev.close()
            except Exception:
                log.exception("closing %s", type(dev).__name__)
