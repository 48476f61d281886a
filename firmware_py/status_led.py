"""The technician's status LED: one blink cycle, stepped by its owner's loop (no thread).

Split from `room_io.py` (the room's other gpiozero drivers); the decisions (which blink
code) are the room core's (`controller.core.lighting.blink_sequence`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from gpiozero import LED

STEP_EARLY_S = 1e-3  # a step this close to its end counts as over (the loop woke at it)
SLOW_STEP_S = 1.0  # a cycle whose steps all last at least this long (the heartbeat) ...
SLOW_EARLY_S = 0.25  # ... may change this much early
SLOW_LATE_S = 1.2  # ... or this late: a 1 Hz monitor wakes the loop once a second anyway


class StatusLed:
    """The technician's status LED, repeating one blink cycle, stepped by its owner's loop.

    No thread of its own (issue 17): the room daemon calls `step()` at every wake-up of its
    loop and sleeps at most until the next change plus `late_s`, so the heartbeat costs no
    wake-up of another thread and shows the daemon's loop alive: a room whose loop hangs
    stops blinking. Each step lasts its length from the moment it was shown, and no step is
    skipped however late the loop wakes. A slow cycle (the heartbeat: every step at least
    1 s) may change up to `SLOW_EARLY_S` early or `late_s` late, so a room reading a 1 Hz
    monitor steps it at the wake-ups it makes for the readings (1 s on, 2 s off, in step
    with them), not at wake-ups of its own. Blink codes (0.25 s steps) are stepped on time.

    Args:
        pin: GPIO of the status LED.
        pin_factory: gpiozero pin factory.
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(
        self, pin: int, pin_factory: Any = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._led = LED(pin, pin_factory=pin_factory)
        self._lit = False  # what was last written (the pin is not read back every step)
        self._clock = clock
        self._sequence: tuple[tuple[bool, float], ...] = ()
        self._index = 0
        self._next = 0.0  # when the step shown now ends (monotonic)
        self._early = STEP_EARLY_S
        self.late_s = 0.0  # how late the owner may step the current cycle

    def show(self, sequence: Sequence[tuple[bool, float]]) -> None:
        """Repeat `sequence` of (led_on, seconds) from now on, replacing the previous one, and
        set the LED for its first step at once.

        Showing the sequence already running does nothing (the cycle is not restarted).
        Steps with a non-positive or non-finite duration are skipped; an empty cycle turns
        the LED off.
        """
        steps = tuple((bool(on), float(s)) for on, s in sequence if math.isfinite(s) and s > 0)
        if steps == self._sequence:
            return
        self._sequence = steps
        if not steps:
            self._led.off()
            self._lit = False
            return
        slow = all(s >= SLOW_STEP_S for _, s in steps)
        self._early = SLOW_EARLY_S if slow else STEP_EARLY_S
        self.late_s = SLOW_LATE_S if slow else 0.0
        self._index = 0
        self._next = self._clock() + steps[0][1]
        self._write(steps[0][0])

    def step(self, now: float | None = None) -> float | None:
        """Show the next step if the current one is over at `now` (default: the clock);
        return the seconds until the LED is due to change next (None: it never does)."""
        steps = self._sequence
        if not steps or all(on == steps[0][0] for on, _ in steps):
            return None
        now = self._clock() if now is None else now
        if now >= self._next - self._early:
            self._index = (self._index + 1) % len(steps)
            on, seconds = steps[self._index]
            self._write(on)
            self._next = now + seconds
        return max(0.0, self._next - now)

    def _write(self, on: bool) -> None:
        if self._lit != on:
            self._led.value = on
            self._lit = on

    @property
    def sequence(self) -> tuple[tuple[bool, float], ...]:
        """The cycle being shown."""
        return self._sequence

    @property
    def is_lit(self) -> bool:
        """Whether the LED is on at this instant."""
        return bool(self._led.is_lit)

    def close(self) -> None:
        """Release the pin."""
        self._sequence = ()
        self._led.close()
