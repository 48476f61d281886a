"""The room core's nurse-call inputs: call buttons, presence, cleaning mode, the cord loop,
and what the dome shows. Part of `RoomCore` (a mixin: the state lives on the core).

How this works: `_on_button` maps a button to a call type through `gpio.call_types` (a long
press is always an emergency), ignores it in cleaning mode when its row says so (one
`input_ignored` event), and otherwise places the call (`call_lifecycle.place`). Cancel ends
every call its row lets the cancel button end; presence toggles and, starting, answers the
routine calls; holding cancel (or `cmd/cleaning`) starts or ends cleaning; the cord loop's
edges and the passing time go through `cord` and place or end the `cord_out` call.
Everything it changes goes out through the core's own `_set_call`, `_emit`,
`_apply_outputs` and `_publish_state`, so the dome is always set before the messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import ValidationError

from contract.messages import ActiveAlert, CallType, EventKind, Phase
from contract.staff import CallReceipt, CleaningCommand, PlaceTestCallCommand
from contract.timefmt import format_ts
from controller.config import CallInput, RoomConfig
from controller.core import alerts, call_lifecycle, dome, monitor_alarms, receipts
from controller.core import cord as cord_loop
from controller.core import presence as modes
from controller.core.call_types import CallTable, EndedBy
from controller.core.emit import Emit, Scalar
from controller.core.io_types import Action, Button, Instant, SetBuzzer
from controller.core.phases import SessionState
from controller.core.settings import RoomSettings

log = logging.getLogger(__name__)

# The call inputs, as the input names of `gpio.call_types`.
CALL_INPUTS: dict[Button, CallInput] = {
    Button.CALL: "call",
    Button.EMERGENCY: "emergency",
    Button.ASSIST: "assist",
    Button.BATH: "bath",
}


class NurseCallInputs:
    """Mixed into `RoomCore`; the attributes and methods below are the core's."""

    if TYPE_CHECKING:
        config: RoomConfig
        settings: RoomSettings
        call: call_lifecycle.CallState
        call_settings: call_lifecycle.CallSettings
        call_table: CallTable
        session: SessionState
        presence: modes.Presence | None
        cleaning: modes.Cleaning | None
        cord: cord_loop.CordState
        alerts: alerts.AlertState
        monitor_alarms: monitor_alarms.AlarmState
        monitor_ok: bool
        receipts: receipts.ReceiptState
        _out: list[Action]
        _new_call_id: Callable[[], str]

        def _set_call(
            self, state: call_lifecycle.CallState, emits: tuple[Emit, ...], now: Instant
        ) -> None: ...
        def _emit(self, emits: list[Emit]) -> None: ...
        def _apply_outputs(self, now: Instant) -> None: ...
        def _publish_state(self) -> None: ...
        def _refuse(self, now: Instant, reason: str, by: str | None, leaf: str) -> None: ...

    def nurse_call_deadline(self) -> datetime | None:
        """The next timer of presence, cleaning and cord supervision (None: none running)."""
        times = [
            t
            for t in (
                self.presence.until if self.presence is not None else None,
                self.cleaning.until if self.cleaning is not None else None,
                cord_loop.next_deadline(self.cord, self.settings.cord),
            )
            if t is not None
        ]
        return min(times, default=None)

    def _on_button(self, button: Button, now: Instant) -> None:
        wall = now.wall
        if button is Button.CANCEL:
            self._set_call(
                *call_lifecycle.end(self.call, EndedBy.CANCEL, wall, self.call_settings), now
            )
            return
        if button is Button.CANCEL_HELD:
            if self.cleaning is None:
                self._start_cleaning(now, self.settings.cleaning_minutes, None)
            else:
                self._end_cleaning(now, "ended by holding the cancel button")
            return
        if button is Button.PRESENCE:
            self._toggle_presence(now)
            return
        if button is Button.CALL_HELD:
            call_type = CallType.EMERGENCY  # a long press is always an emergency
        else:
            name = CALL_INPUTS[button]
            call_type = self.config.gpio.call_types.get(name, CallType.NORMAL)
        if self.cleaning is not None and not self.call_table[call_type].in_cleaning:
            detail: dict[str, Scalar] = {"input": button.value, "call_type": call_type.value}
            self._emit([Emit(EventKind.INPUT_IGNORED, wall, reason="cleaning mode", detail=detail)])
            return
        self._place(call_type, now)

    def _place(self, call_type: CallType, now: Instant) -> None:
        state, emits = call_lifecycle.place(
            self.call,
            call_type,
            now.wall,
            self.session.phase,
            self._new_call_id(),
            self.call_settings,
        )
        self._set_call(state, emits, now)

    def _toggle_presence(self, now: Instant) -> None:
        if self.presence is not None:
            self._end_presence(now, "second press")
            return
        self.presence = modes.start_presence(now.wall, self.settings.presence_max_s)
        state, ended = call_lifecycle.end(self.call, EndedBy.PRESENCE, now.wall, self.call_settings)
        detail: dict[str, Scalar] = {"answered": len(ended)}
        if self.presence.until is not None:
            detail["until"] = format_ts(self.presence.until)
        if state == self.call:
            self._apply_outputs(now)  # the dome shows presence; _set_call does it otherwise
        self._set_call(
            state, (Emit(EventKind.PRESENCE_STARTED, now.wall, detail=detail), *ended), now
        )
        self._publish_state()

    def _end_presence(self, now: Instant, reason: str) -> None:
        assert self.presence is not None
        present_s = round((now.wall - self.presence.since).total_seconds(), 3)
        self.presence = None
        self._apply_outputs(now)
        detail: dict[str, Scalar] = {"present_s": present_s}
        self._emit([Emit(EventKind.PRESENCE_ENDED, now.wall, reason=reason, detail=detail)])
        self._publish_state()

    def _start_cleaning(self, now: Instant, minutes: float, by: str | None) -> None:
        self.cleaning = modes.start_cleaning(now.wall, minutes, by)
        self._apply_outputs(now)
        until = format_ts(self.cleaning.until)
        detail: dict[str, Scalar] = {"minutes": minutes, "until": until}
        self._emit([Emit(EventKind.CLEANING_STARTED, now.wall, by=by, detail=detail)])
        self._publish_state()

    def _end_cleaning(self, now: Instant, reason: str, by: str | None = None) -> None:
        if self.cleaning is None:
            return
        lasted = round((now.wall - self.cleaning.since).total_seconds(), 3)
        self.cleaning = None
        self._apply_outputs(now)
        detail: dict[str, Scalar] = {"cleaning_s": lasted}
        self._emit([Emit(EventKind.CLEANING_ENDED, now.wall, by=by, reason=reason, detail=detail)])
        self._publish_state()

    def _on_cord(self, closed: bool, now: Instant) -> None:
        self.cord, signals = cord_loop.changed(self.cord, closed, now.wall, self.settings.cord)
        self._cord_signals(signals, now)

    def _cord_signals(self, signals: tuple[cord_loop.Signal, ...], now: Instant) -> None:
        for signal in signals:
            if signal is cord_loop.Signal.FLAPPING:
                detail: dict[str, Scalar] = {
                    "loop": "cord",
                    "edges": len(self.cord.edges),
                    "window_s": self.settings.cord.flap_window_s,
                }
                reason = "call cord loop opening and closing: check the jack"
                self._emit([Emit(EventKind.CORD_FLAPPING, now.wall, reason=reason, detail=detail)])
            elif signal is cord_loop.Signal.RAISE:
                self._place(CallType.CORD_OUT, now)
            else:
                self._set_call(
                    *call_lifecycle.end(
                        self.call, EndedBy.CORD, now.wall, self.call_settings, CallType.CORD_OUT
                    ),
                    now,
                )
        if signals:
            self._publish_state()

    def _active_alerts(self) -> list[ActiveAlert]:
        """Vital-rule alerts, then the monitor's own alarms (the retained `state.alerts`)."""
        return [*alerts.active_list(self.alerts), *monitor_alarms.active_list(self.monitor_alarms)]

    def dome_layers(self) -> tuple[dome.DomeLayer, ...]:
        return dome.layers(
            self.call.calls,
            self.call_table,
            self._active_alerts(),
            # the corridor dome shows monitor trouble only while a patient is in session
            not self.monitor_ok and self.session.phase is not Phase.IDLE,
            cleaning=self.cleaning is not None,
            presence=self.presence is not None,
            roles=self.settings.dome_roles,
            blind=self.receipts.blind,
        )

    # -- proof of delivery (issue 15): a call no screen and no phone confirmed -----------

    @property
    def receipt_timeout_s(self) -> float:
        return self.config.timing.central_receipt_s

    def _on_receipt(self, payload: bytes, retained: bool, now: Instant) -> None:
        if retained:  # a receipt is news, never a standing fact
            return
        try:
            got = CallReceipt.model_validate_json(payload)
        except ValidationError:
            log.warning("bad receipt ignored")
            return
        before = self.receipts.blind
        self.receipts, emits = receipts.on_receipt(
            self.receipts, got.call_id, got.by, got.via, now.wall
        )
        self._receipts_changed(before, emits, now)

    def _receipt_tick(self, now: Instant) -> None:
        before = self.receipts.blind
        self.receipts, emits = receipts.tick(
            self.receipts, self.call.calls, now.wall, self.receipt_timeout_s
        )
        self._receipts_changed(before, emits, now)

    def _receipts_changed(self, before: frozenset[str], emits: list[Emit], now: Instant) -> None:
        if emits:
            self._emit(emits)
        if self.receipts.blind != before:
            if self.receipts.blind:
                log.warning("no screen or phone confirmed call(s) %s: escalating in the room",
                            ", ".join(sorted(self.receipts.blind)))  # fmt: skip
            self._out.append(SetBuzzer(bool(self.receipts.blind)))
            self._apply_outputs(now)

    def _on_cleaning_cmd(self, cmd: CleaningCommand, now: Instant) -> None:
        minutes = cmd.minutes or self.settings.cleaning_minutes
        if cmd.minutes == 0:
            self._end_cleaning(now, "ended by staff", cmd.by)
            return
        if self.cleaning is not None:
            self._end_cleaning(now, "restarted by staff", cmd.by)
        self._start_cleaning(now, minutes, cmd.by)

    def _on_test_call_cmd(self, cmd: PlaceTestCallCommand, now: Instant) -> None:
        """Staff asked for a test call (`cmd/test_call`): placed like a press, `by` them (a
        test call already up is placed again by nobody: the command is refused, in words)."""
        if self.call.of_type(CallType.TEST) is not None:
            self._refuse(now, "a test call is already up in this room", cmd.by, "cmd/test_call")
            return
        state, emits = call_lifecycle.place(
            self.call, CallType.TEST, now.wall, self.session.phase, self._new_call_id(),
            self.call_settings,
        )  # fmt: skip
        self._set_call(state, tuple(replace(e, by=cmd.by) for e in emits), now)

    def _nurse_call_tick(self, now: Instant) -> None:
        if modes.expired(self.presence, now.wall):
            self._end_presence(now, "presence time over")
        if modes.expired(self.cleaning, now.wall):
            self._end_cleaning(now, "cleaning time over")
        self.cord, signals = cord_loop.tick(self.cord, now.wall, self.settings.cord)
        self._cord_signals(signals, now)
