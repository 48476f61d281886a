"""The dome above the door as hardware: one lamp, one RGB lamp, or a lamp per colour.

Thin drivers over `room_io.DomeLight` and gpiozero's `RGBLED`: the room core decides what
the dome shows, as layers most urgent first (`controller.core.dome.DomeLayer`); these
classes only choose, by the dome's kind, which layers their lamps can show (`build_dome`
from `dome.kind` in config). Nothing touches GPIO at import time; every class takes
`pin_factory`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from gpiozero import RGBLED

from firmware_py.room_io import DomeLight


class DomeLayerLike(Protocol):
    """What a dome shows of one thing (`controller.core.dome.DomeLayer`)."""

    @property
    def colour(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def on_s(self) -> float: ...
    @property
    def off_s(self) -> float: ...
    @property
    def colour_only(self) -> bool: ...


def _show_top(light: DomeLight, layers: Sequence[DomeLayerLike]) -> None:
    top = layers[0] if layers else None
    if top is None:
        light.apply("off")
    else:
        light.apply(top.kind, top.on_s, top.off_s)


class SingleDome:
    """A single-colour dome: the most urgent layer's pattern (priorities differ by blink);
    colour-only layers (presence, cleaning) are left out, so a lit lamp means a call."""

    def __init__(self, pin: int, pin_factory: Any = None) -> None:
        self.light = DomeLight(pin, pin_factory=pin_factory)

    def show(self, layers: Sequence[DomeLayerLike]) -> None:
        _show_top(self.light, [x for x in layers if not x.colour_only])

    @property
    def pattern(self) -> tuple[str, float, float]:
        return self.light.pattern

    @property
    def is_lit(self) -> bool:
        return self.light.is_lit

    def close(self) -> None:
        self.light.close()


class RgbDome:
    """One RGB dome lamp: the most urgent layer's colour (from the palette) and pattern."""

    def __init__(
        self,
        pins: tuple[int, int, int],
        palette: Mapping[str, tuple[float, float, float]],
        pin_factory: Any = None,
    ) -> None:
        self._led = RGBLED(*pins, pwm=True, pin_factory=pin_factory)
        self._palette = dict(palette)
        self.shown: tuple[str, str, float, float] = ("white", "off", 0.0, 0.0)

    def show(self, layers: Sequence[DomeLayerLike]) -> None:
        top = layers[0] if layers else None
        if top is None or top.kind == "off":
            self._led.off()
            self.shown = ("white", "off", 0.0, 0.0)
            return
        rgb = self._palette.get(top.colour, (1.0, 1.0, 1.0))
        if top.kind == "blink" and top.on_s > 0 and top.off_s > 0:
            self._led.blink(on_time=top.on_s, off_time=top.off_s, on_color=rgb, off_color=(0, 0, 0))
        else:
            self._led.value = rgb
        self.shown = (top.colour, top.kind, float(top.on_s), float(top.off_s))

    @property
    def value(self) -> tuple[float, float, float]:
        red, green, blue = self._led.value
        return (float(red), float(green), float(blue))

    @property
    def is_lit(self) -> bool:
        """Any colour on (what `roomctl room selftest` reads back)."""
        return any(v > 0 for v in self.value)

    def close(self) -> None:
        self._led.close()


class SectionDome:
    """A multi-section dome: one single-colour lamp per colour, each showing the most
    urgent layer of its colour (presence stays lit beneath a call)."""

    def __init__(self, sections: Mapping[str, int], pin_factory: Any = None) -> None:
        self.lights: dict[str, DomeLight] = {}
        try:
            for colour, pin in sections.items():
                self.lights[colour] = DomeLight(pin, pin_factory=pin_factory)
        except Exception:
            self.close()
            raise

    def show(self, layers: Sequence[DomeLayerLike]) -> None:
        for colour, light in self.lights.items():
            _show_top(light, [x for x in layers if x.colour == colour])

    @property
    def is_lit(self) -> bool:
        """Any section on (what `roomctl room selftest` reads back)."""
        return any(light.is_lit for light in self.lights.values())

    def close(self) -> None:
        for light in self.lights.values():
            light.close()


def build_dome(
    kind: str,
    pin: int,
    rgb_pins: tuple[int, int, int] | None,
    sections: Mapping[str, int],
    palette: Mapping[str, tuple[float, float, float]],
    pin_factory: Any = None,
) -> SingleDome | RgbDome | SectionDome:
    """The dome the config describes (`dome.kind`: single, rgb, sections)."""
    if kind == "rgb":
        if rgb_pins is None:
            raise ValueError("an rgb dome needs rgb_pins")
        return RgbDome(rgb_pins, palette, pin_factory=pin_factory)
    if kind == "sections":
        return SectionDome(sections, pin_factory=pin_factory)
    return SingleDome(pin, pin_factory=pin_factory)
