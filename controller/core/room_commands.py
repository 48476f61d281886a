"""The room core's staff commands and the MQTT input that carries them. Part of `RoomCore`
(a mixin: the state lives on the core).

How this works: `_on_message` takes every message the room subscribes to. A logger coming
(back) online asks for the replay window; a call receipt goes to `_on_receipt`; a retained
command, an unknown topic or one without a sender is refused with a `command_refused`
event. A command is validated strictly against its contract model, refused if it is stale
(`_stale`: older than `commands.max_age_s`, or from a clock far ahead) or if `by` is not its
sender (only the configured delegates, the board, act for others), and otherwise applied:
phase, claim, scene or cleaning. Its `request_id` is copied onto every message it caused,
so the sender can match the room's answer. Everything goes out through the core's own
`_emit`, `_set_call`, `_apply_outputs` and `_publish_state`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import ValidationError

from contract import topics
from contract.alert_rules import AlertRule
from contract.messages import EventKind, Phase
from contract.staff import (
    ClaimCommand,
    CleaningCommand,
    PhaseCommand,
    PlaceTestCallCommand,
    SceneCommand,
    SimButton,
)
from controller.config import RoomConfig
from controller.core import alerts, call_lifecycle, lighting, payloads, phases
from controller.core.emit import Emit, Scalar
from controller.core.io_types import Action, Instant, ResendRecent, SimulateButton
from controller.core.settings import short_errors

log = logging.getLogger(__name__)


class CommandInputs:
    """Mixed into `RoomCore`; the attributes and methods below are the core's."""

    if TYPE_CHECKING:
        config: RoomConfig
        site: str
        room: str
        _prefix: str
        link_up: bool
        session: phases.SessionState
        phase_settings: phases.PhaseSettings
        alerts: alerts.AlertState
        alert_rules: dict[Phase, tuple[AlertRule, ...]]
        call: call_lifecycle.CallState
        scene_override: str | None
        _out: list[Action]

        def _set_call(
            self, state: call_lifecycle.CallState, emits: tuple[Emit, ...], now: Instant
        ) -> None: ...
        def _emit(self, emits: list[Emit]) -> None: ...
        def _apply_outputs(self, now: Instant) -> None: ...
        def _publish_state(self) -> None: ...
        def _fade_to_scene(self, now: Instant) -> None: ...
        def _on_receipt(self, payload: bytes, retained: bool, now: Instant) -> None: ...
        def _on_cleaning_cmd(self, cmd: CleaningCommand, now: Instant) -> None: ...
        def _on_test_call_cmd(self, cmd: PlaceTestCallCommand, now: Instant) -> None: ...
        def scene(self) -> lighting.Scene: ...

    def _on_message(self, topic: str, payload: bytes, retained: bool, now: Instant) -> None:
        if topics.parse_logger_status(self.site, topic) is not None:
            # A logger that has just come (back) online may have lost its session (a broker
            # killed before it saved it): what the room sent meanwhile reached no one. Resend
            # the replay window; the logger keeps each (epoch, seq) once. A retained status
            # handed over at subscribe time is not news (the room resent on connect).
            if not retained and payload.strip() == b"online" and self.link_up:
                self._out.append(ResendRecent())
            return
        leaf = topic[len(self._prefix) :] if topic.startswith(self._prefix) else ""
        if topics.split_receipt(leaf) is not None:
            self._on_receipt(payload, retained, now)
            return
        if retained:  # a standing command would act again on every restart
            self._refuse(now, "retained message refused: commands are never retained", None, leaf)
            return
        if leaf == "sim/button":
            self._on_sim_button(payload, now)
            return
        command = topics.split_cmd(leaf)
        if command is None:
            self._refuse(now, f"unknown command topic {topic!r}", None, leaf)
            return
        name, sender = command
        leaf = f"cmd/{name}"
        if sender is None:
            self._refuse(now, f"{leaf} names no sender: commands go to {leaf}/<sender>", None, leaf)
            return
        try:
            cmd = topics.COMMANDS[name].model_validate_json(payload, strict=True)
        except ValidationError as exc:
            self._refuse(now, f"bad {name} command: {short_errors(exc)}", None, leaf)
            return
        first = len(self._out)
        # who acted: the sender the broker authenticated, or whom a delegate (the board)
        # authenticated itself
        actor = cmd.by if sender in self.config.commands.delegates else sender
        problem = self._stale(cmd.issued_at, now)
        if problem is None and cmd.by != actor:
            problem = (
                f"by {cmd.by!r} is not the sender {sender!r}: only "
                f"{', '.join(self.config.commands.delegates) or 'no one'} may act for others"
            )
        if problem is not None:
            self._refuse(now, problem, actor, leaf)
        elif isinstance(cmd, PhaseCommand):
            self._on_phase_cmd(cmd, now)
        elif isinstance(cmd, ClaimCommand):
            outcome = call_lifecycle.claim(self.call, cmd.call_id, cmd.by, now.wall)
            self._set_call(outcome.state, outcome.emits, now)  # a refusal is its emit
        elif isinstance(cmd, SceneCommand):
            self._on_scene_cmd(cmd, now, leaf)
        elif isinstance(cmd, CleaningCommand):
            self._on_cleaning_cmd(cmd, now)
        elif isinstance(cmd, PlaceTestCallCommand):
            self._on_test_call_cmd(cmd, now)
        if cmd.request_id is not None:  # the sender matches the room's answer to its request
            self._out[first:] = [
                payloads.with_request_id(a, cmd.request_id) for a in self._out[first:]
            ]

    def _stale(self, issued_at: datetime, now: Instant) -> str | None:
        """Why a command must not act now (expired, or from a clock far ahead), or None."""
        max_age = self.config.commands.max_age_s
        age = (now.wall - issued_at).total_seconds()
        if age > max_age:
            return f"expired: issued {age:.1f} s ago (max age {max_age:g} s)"
        if age < -max_age:
            return f"issued {-age:.1f} s in the future: the clocks disagree (max {max_age:g} s)"
        return None

    def _on_sim_button(self, payload: bytes, now: Instant) -> None:
        if not self.config.simulate:
            return  # a real room ignores simulation input
        try:
            press = SimButton.model_validate_json(payload, strict=True)
        except ValidationError as exc:
            self._refuse(now, f"bad sim/button payload: {short_errors(exc)}", None, "sim/button")
            return
        self._out.append(SimulateButton(press.button, press.action))

    def _on_phase_cmd(self, cmd: PhaseCommand, now: Instant) -> None:
        wall = now.wall
        session_id = cmd.session_id or f"{self.room}-{wall.strftime('%Y%m%dT%H%M%S')}"
        outcome = phases.request(
            self.session,
            cmd.phase,
            cmd.by,
            wall,
            self.phase_settings,
            session_id,
            cmd.planned_minutes,
        )
        emits = list(outcome.emits)
        if outcome.refused is None:
            self.session = outcome.state
            self.alerts, alert_emits = alerts.on_phase_change(
                self.alerts, self.session.phase, wall, self.alert_rules
            )
            emits.extend(alert_emits)
            if self.scene_override is None:
                self._fade_to_scene(now)
            self._apply_outputs(now)
        self._emit(emits)
        if outcome.refused is None:
            self._publish_state()

    def _on_scene_cmd(self, cmd: SceneCommand, now: Instant, leaf: str) -> None:
        if cmd.scene is not None:
            problem = lighting.check_scene(cmd.scene, lighting.DEFAULT_SCENES)
            if problem:
                self._refuse(now, problem, cmd.by, leaf)
                return
        self.scene_override = cmd.scene
        self._fade_to_scene(now)
        detail: dict[str, Scalar] = {
            "scene": self.scene().name,
            "override": cmd.scene is not None,
        }
        self._emit([Emit(EventKind.SCENE_CHANGED, now.wall, by=cmd.by, detail=detail)])
        self._publish_state()

    def _refuse(self, now: Instant, reason: str, by: str | None, leaf: str) -> None:
        log.warning("refused %s: %s", leaf, reason)
        emit = Emit(
            EventKind.COMMAND_REFUSED, now.wall, by=by, reason=reason[:500], detail={"topic": leaf}
        )
        self._emit([emit])
