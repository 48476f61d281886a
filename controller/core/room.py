"""The room core: every input of a room in, every output and message out. No I/O.

How this works: `RoomCore.handle(event, now)` takes one typed event (`io_types`) with the
time (`Instant`: wall and monotonic clock) and returns the actions to perform, in order.
It combines the table-driven machines (`phases`, `call_lifecycle`, `alerts`, `lighting`)
and builds the body of every message from the contract's models; the daemon only performs
the actions. Order matters and is kept: the dome is set before the messages that report a
call, so a press lights the dome before anything touches disk or network.

The room's durable state (session, call, alerts, scene) is `state_blobs()`; the daemon
stores it with every batch of messages, and a new core restores from it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from contract import topics
from contract.messages import (
    ClaimCommand,
    CleaningCommand,
    EventKind,
    HealthMessage,
    PhaseCommand,
    PlaceTestCallCommand,
    SceneCommand,
    SimButton,
    VitalsMessage,
)
from contract.vitals import Reading, vitals_fields
from controller.config import RoomConfig
from controller.core import (
    alerts,
    call_lifecycle,
    clock,
    cord,
    dome,
    health,
    lighting,
    monitor_alarms,
    payloads,
    phases,
    presence,
    receipts,
)
from controller.core.emit import Emit, Scalar
from controller.core.io_types import (
    Action,
    ButtonPressed,
    CordChanged,
    Event,
    Instant,
    LinkDown,
    LinkUp,
    MessageReceived,
    Publish,
    ReadingReceived,
    ResendRecent,
    RoomFacts,
    SetAmbient,
    SetDome,
    SetStatusLed,
    SimulateButton,
    Started,
    Tick,
)
from controller.core.room_nurse_call import NurseCallInputs
from controller.core.settings import RoomSettings, restore, short_errors

log = logging.getLogger(__name__)

FADE_TICK_S = 0.05
IDLE_WAIT_S = 60.0  # nothing due at all: the daemon still ticks this often
SILENCE_SLACK_S = 0.01  # tick just after the monitor's silence limit, not on it

SavedState = Mapping[str, Mapping[str, Any] | None]
# the blobs of `state_blobs()`
STATE_KEYS = ("session", "call", "alerts", "scene", "modes", "cord", "monitor_alarms")


class RoomCore(NurseCallInputs):
    """One room's behaviour. Not thread-safe: the daemon's one thread owns it.

    The nurse-call inputs (buttons, presence, cleaning, the cord loop) and the dome's layers
    are in `room_nurse_call.NurseCallInputs`."""

    def __init__(
        self,
        config: RoomConfig,
        saved: SavedState,
        now: Instant,
        *,
        version: str,
        new_call_id: Callable[[], str] | None = None,
    ):
        self.config = config
        self.site, self.room = config.site, config.room
        self.version = version
        self._new_call_id = new_call_id or (lambda: f"{self.room}-{uuid.uuid4().hex[:12]}")
        settings = RoomSettings.from_config(config)
        self.phase_settings = settings.phases
        self.call_settings = settings.calls
        self.alert_rules = settings.alert_rules
        self.phase_scenes = settings.phase_scenes
        self.settings = settings
        self.call_table = settings.calls.table
        self._prefix = topics.room_prefix(self.site, self.room) + "/"

        self.session = restore(
            "session", saved.get("session"), phases.from_dict, phases.initial(now.wall)
        )
        self.call = restore(
            "call", saved.get("call"), call_lifecycle.from_dict, call_lifecycle.idle()
        )
        self.alerts = restore("alerts", saved.get("alerts"), alerts.from_dict, alerts.initial())
        no_modes: tuple[presence.Presence | None, presence.Cleaning | None] = (None, None)
        self.presence, self.cleaning = restore(
            "modes", saved.get("modes"), presence.from_dict, no_modes
        )
        self.cord = restore("cord", saved.get("cord"), cord.from_dict, cord.CordState())
        self.monitor_alarms = restore(
            "monitor_alarms",
            saved.get("monitor_alarms"),
            monitor_alarms.from_dict,
            monitor_alarms.AlarmState(),
        )
        self.receipts = restore(
            "receipts", saved.get("receipts"), receipts.from_dict, receipts.ReceiptState()
        )
        self.scene_override: str | None = (saved.get("scene") or {}).get("override")
        self.restored = saved.get("session") is not None or saved.get("call") is not None
        self.fade = lighting.fade_to(None, self.scene().color, now.wall, 0.0)

        self.started_mono = now.mono
        self._last_instant = now
        self._last_reading_mono: float | None = None
        self.monitor_ok = True  # until silence_s passes with no reading (grace at start)
        self.link_up = False
        self.facts = RoomFacts()
        # Health is built from the facts the daemon samples with every Tick: an event that
        # changes it (link, monitor) marks it due, and the Tick that follows (in the same
        # round of the daemon loop) publishes it with fresh facts.
        self._health = health.HealthCadence(config.timing.health_every_s)
        self._conditions = health.Conditions()  # journal lines when conditions start/end
        self._out: list[Action] = []

    # -- the one entry point ------------------------------------------------------------

    def handle(self, event: Event, now: Instant) -> list[Action]:
        """Feed one event; return what to do, in order."""
        self._out = []
        step = clock.clock_step(self._last_instant, now)
        self._last_instant = now
        if step is not None:
            self._on_clock_step(step, now)
        match event:
            case Started(facts=facts):
                self._on_start(facts, now)
            case ButtonPressed(button=button):
                self._on_button(button, now)
            case CordChanged(closed=closed):
                self._on_cord(closed, now)
            case ReadingReceived(reading=reading):
                self._on_reading(reading, now)
            case MessageReceived(topic=topic, payload=payload, retained=retained):
                self._on_message(topic, payload, retained, now)
            case LinkUp():
                self.link_up = True
                # Retained topics are republished on every (re)connect, after the backlog.
                self._out.append(ResendRecent())
                self._publish_state()
                self._publish_call()
                self._health.due = True
            case LinkDown(reason=reason):
                self.link_up = False
                log.warning("broker link down: %s", reason)
                self._health.due = True
            case Tick(facts=facts):
                self._on_tick(facts, now)
        return self._out

    def durable_key(self) -> tuple[Any, ...]:
        """The durable state as frozen values: equal keys mean equal `state_blobs()` (cheap to
        compare; the daemon builds and compares the blobs only when this changed)."""
        return (
            self.session, self.call, self.alerts, self.scene_override, self.presence,
            self.cleaning, self.cord, self.monitor_alarms, self.receipts,
        )  # fmt: skip

    def state_blobs(self) -> dict[str, dict[str, Any]]:
        """The durable state, stored with every batch of messages."""
        return {
            "session": phases.to_dict(self.session),
            "call": call_lifecycle.to_dict(self.call),
            "alerts": alerts.to_dict(self.alerts),
            "scene": {"override": self.scene_override},
            "modes": presence.to_dict(self.presence, self.cleaning),
            "cord": cord.to_dict(self.cord),
            "monitor_alarms": monitor_alarms.to_dict(self.monitor_alarms),
            "receipts": receipts.to_dict(self.receipts),
        }

    def seconds_to_next_deadline(self, now: Instant) -> float:
        """How long the daemon may sleep before the next `Tick` is due (0: tick now).

        Every timer of the core is a deadline here, so an idle room sleeps instead of
        ticking: phase and call timers, the monitor's silence limit, the health cadence,
        and a fade (ticked every FADE_TICK_S only while it runs).
        """
        if self._health.due:
            return 0.0
        waits = [IDLE_WAIT_S, self._health.seconds_to_next(now.mono)]
        if self.facts.monitor.enabled and self.monitor_ok:
            since = self._last_reading_mono or self.started_mono
            waits.append(since + self.config.monitor.silence_s + SILENCE_SLACK_S - now.mono)
        for deadline in (
            phases.next_deadline(self.session, self.phase_settings),
            call_lifecycle.next_deadline(self.call, self.call_settings),
            self.nurse_call_deadline(),
            receipts.next_deadline(self.receipts, self.call.calls, self.receipt_timeout_s),
        ):
            if deadline is not None:
                waits.append((deadline - now.wall).total_seconds())
        if not lighting.fade_done(self.fade, now.wall):
            waits.append(FADE_TICK_S)
        return max(0.0, min(waits))

    def scene(self) -> lighting.Scene:
        return lighting.scene_for(
            self.session.phase, self.scene_override, self.phase_scenes, lighting.DEFAULT_SCENES
        )

    # -- inputs -------------------------------------------------------------------------

    def _on_clock_step(self, step: timedelta, now: Instant) -> None:
        """Keep every elapsed time on the monotonic clock: move the kept wall times too."""
        log.warning(
            "wall clock stepped by %+.1f s: timers follow the monotonic clock", step.total_seconds()
        )
        self.session = clock.shifted(self.session, step)
        self.call = clock.shifted(self.call, step)
        self.alerts = clock.shifted(self.alerts, step)
        self.presence = clock.shifted(self.presence, step)
        self.cleaning = clock.shifted(self.cleaning, step)
        self.cord = clock.shifted(self.cord, step)
        self.monitor_alarms = clock.shifted(self.monitor_alarms, step)
        self.fade = clock.shifted(self.fade, step)
        detail: dict[str, Scalar] = {"step_s": round(step.total_seconds(), 3)}
        self._emit([Emit(EventKind.CLOCK_STEPPED, now.wall, detail=detail)])
        self._publish_state()
        if self.call.active:
            self._publish_call()

    def _on_start(self, facts: RoomFacts, now: Instant) -> None:
        self.facts = facts
        self._apply_outputs(now)
        detail: dict[str, Scalar] = {"version": self.version, "restored": self.restored}
        self._emit([Emit(EventKind.DAEMON_STARTED, now.wall, detail=detail)])
        self._publish_state()
        self._publish_call()
        self._publish_health(now, force=True)

    def _set_call(
        self, state: call_lifecycle.CallState, emits: tuple[Emit, ...], now: Instant
    ) -> None:
        changed = state != self.call
        self.call = state
        if changed:
            self._apply_outputs(now)  # the dome first: a press shows at once
        self._emit(list(emits))
        if changed:
            self._publish_call()

    def _on_reading(self, reading: Reading, now: Instant) -> None:
        self._last_reading_mono = now.mono
        self._out.append(Publish(VitalsMessage, vitals_fields(reading)))
        before = self._active_alerts()
        self.alerts, emits = alerts.evaluate(
            self.alerts, reading.alert_values(), now.wall, self.session.phase, self.alert_rules
        )
        self.monitor_alarms, alarm_emits = monitor_alarms.evaluate(
            self.monitor_alarms, reading.alert_alarms(), now.wall, self.settings.alarms
        )
        if emits or alarm_emits:
            self._apply_outputs(now)
            self._emit([*emits, *alarm_emits])
        if self._active_alerts() != before:
            self._publish_state()
        if not self.monitor_ok:
            self.monitor_ok = True
            log.warning("monitor link restored (%s)", reading.protocol)
            detail = {"protocol": reading.protocol}
            self._emit([Emit(EventKind.MONITOR_LINK_RESTORED, now.wall, detail=detail)])
            self._apply_outputs(now)
            self._health.due = True

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

    # -- timers -------------------------------------------------------------------------

    def _on_tick(self, facts: RoomFacts, now: Instant) -> None:
        self.facts = facts
        for level, line in self._conditions.update(facts):
            log.log(level, "%s", line)
        self.session, emits = phases.tick(self.session, now.wall, self.phase_settings)
        if emits:
            self._emit(list(emits))
            self._publish_state()
        state, emits = call_lifecycle.tick(self.call, now.wall, self.call_settings)
        if state != self.call:
            self._set_call(state, emits, now)
        self._nurse_call_tick(now)
        self._receipt_tick(now)
        self._out.append(SetAmbient(lighting.color_at(self.fade, now.wall)))
        self._check_monitor(now)
        self._publish_health(now)

    def _check_monitor(self, now: Instant) -> None:
        mon = self.facts.monitor
        if not mon.enabled or not self.monitor_ok:
            return
        age = now.mono - (self._last_reading_mono or self.started_mono)
        if age > self.config.monitor.silence_s:
            self.monitor_ok = False
            log.warning("monitor link lost: no reading for %.1f s", age)
            self._emit(
                [
                    Emit(
                        EventKind.MONITOR_LINK_LOST,
                        now.wall,
                        reason=f"no reading for {age:.1f} s",
                        detail={"connected": mon.connected},
                    )
                ]
            )
            self._apply_outputs(now)
            self._health.due = True

    # -- outputs ------------------------------------------------------------------------

    def _fade_to_scene(self, now: Instant) -> None:
        scene = self.scene()
        self.fade = lighting.fade_to(self.fade, scene.color, now.wall, scene.fade_s)

    def _apply_outputs(self, now: Instant) -> None:
        layers = self.dome_layers()
        top = dome.top(layers)
        kind: Literal["off", "steady", "blink"] = top.kind  # type: ignore[assignment]
        self._out.append(SetDome(kind, top.on_s, top.off_s, top.colour, layers))
        self._out.append(SetAmbient(lighting.color_at(self.fade, now.wall)))

    def _emit(self, emits: list[Emit]) -> None:
        self._out.extend(payloads.event(e) for e in emits)

    def _publish_state(self) -> None:
        self._out.append(
            payloads.state(
                self.session,
                self._active_alerts(),
                self.scene(),
                self.scene_override,
                self.presence,
                self.cleaning,
                ("cord",) if not self.cord.closed else (),
            )
        )

    def _publish_call(self) -> None:
        self._out.append(payloads.call(self.call, self.call_table))

    def _publish_health(self, now: Instant, force: bool = False) -> None:
        """Publish health on a change of what it says, every health_every_s, or when due."""
        key = health.health_key(self.facts, self.link_up, self.monitor_ok)
        changed, publish = self._health.step(key, now.mono, force)
        if changed:
            code = health.status_code(self.facts, self.link_up, self.monitor_ok)
            self._out.append(SetStatusLed(lighting.blink_sequence(code)))
        if publish:
            body = health.health_body(
                self.config,
                self.facts,
                link_up=self.link_up,
                monitor_ok=self.monitor_ok,
                uptime_s=now.mono - self.started_mono,
                version=self.version,
            )
            self._out.append(Publish(HealthMessage, body))
