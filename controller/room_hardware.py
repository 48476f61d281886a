"""The room's GPIO, from config: buttons, dome light, ambient RGB light, status LED.

A thin adapter over `firmware_py.room_io`. It remembers what each output shows so the
daemon can set outputs every tick without restarting a blink, and it turns a GPIO error
into a `fault` health status instead of a crash (the room keeps publishing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from controller.config import RoomConfig
from controller.core.io_types import (
    Action,
    Button,
    SetAmbient,
    SetDome,
    SetStatusLed,
    SimulateButton,
)
from firmware_py import room_io
from firmware_py.room_io import ButtonEdge

log = logging.getLogger(__name__)

# The GPIO driver's edges, as the room core's buttons.
BUTTON_OF_EDGE: dict[ButtonEdge, Button] = {
    ButtonEdge.CALL_PRESSED: Button.CALL,
    ButtonEdge.CALL_HELD: Button.CALL_HELD,
    ButtonEdge.CANCEL_PRESSED: Button.CANCEL,
    ButtonEdge.EMERGENCY_PRESSED: Button.EMERGENCY,
}


class RoomHardware:
    def __init__(
        self, config: RoomConfig, on_button: Callable[[Button], None], pin_factory: Any = None
    ):
        g = config.gpio
        if pin_factory is None and config.simulate:
            pin_factory = room_io.mock_pin_factory()
        self.pin_factory = pin_factory
        self.ok = True
        self._dome: tuple[str, float, float] | None = None
        self._ambient: tuple[float, float, float] | None = None
        self._status: tuple[tuple[bool, float], ...] | None = None
        self.buttons = room_io.RoomButtons(
            g.call_pin,
            g.cancel_pin,
            g.emergency_pin,
            lambda edge: on_button(BUTTON_OF_EDGE[edge]),
            long_press_s=g.long_press_s,
            bounce_s=g.bounce_s or None,
            pin_factory=pin_factory,
        )
        self.dome = room_io.DomeLight(g.dome_pin, pin_factory=pin_factory)
        self.ambient = room_io.AmbientLight(
            g.ambient_red_pin, g.ambient_green_pin, g.ambient_blue_pin, pin_factory=pin_factory
        )
        self.status = room_io.StatusLed(g.status_pin, pin_factory=pin_factory)
        self.sim: room_io.SimulatedButtons | None = None
        self.sim_pins: dict[str, int] = {}
        if config.simulate:
            pins = {"call": g.call_pin, "cancel": g.cancel_pin}
            if g.emergency_pin is not None:
                pins["emergency"] = g.emergency_pin
            self.sim = room_io.SimulatedButtons(pin_factory, pins)
            self.sim_pins = pins

    def inputs(self) -> dict[str, bool]:
        """Each call input by name: does it read as pressed now (the self-test's check)."""
        b = self.buttons
        found = {"call": b.call, "cancel": b.cancel, "emergency": b.emergency}
        return {name: bool(btn.is_pressed) for name, btn in found.items() if btn is not None}

    def _guard(self, what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception:  # a GPIO fault must not stop the room
            if self.ok:
                log.exception("GPIO fault on %s", what)
            self.ok = False

    def set_dome(self, kind: str, on_s: float = 0.0, off_s: float = 0.0) -> None:
        want = (kind, on_s, off_s)
        if want != self._dome:
            self._dome = want
            self._guard("dome light", lambda: self.dome.apply(kind, on_s, off_s))

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

    def simulate(self, button: str, action: str) -> None:
        if self.sim is None:
            return
        if button not in self.sim_pins:
            log.warning("simulated %s button is not configured", button)
            return
        if action == "press":
            self.sim.press(button)
        else:
            self.sim.release(button)

    def perform(self, action: Action) -> None:
        """Set one output the room core asked for (other actions are not the hardware's)."""
        match action:
            case SetDome(kind=kind, on_s=on_s, off_s=off_s):
                self.set_dome(kind, on_s, off_s)
            case SetAmbient(rgb=rgb):
                self.set_ambient(rgb)
            case SetStatusLed(sequence=sequence):
                self.set_status(sequence)
            case SimulateButton(button=button, action=press):
                self.simulate(button, press)

    def close(self) -> None:
        for dev in (self.buttons, self.dome, self.ambient, self.status):
            try:
                dev.close()
            except Exception:
                log.exception("closing %s", type(dev).__name__)
