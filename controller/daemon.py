"""The room daemon: wires the pure cores to GPIO, the monitor, the outbox and MQTT.

How this works: one thread (the daemon loop) owns all state. gpiozero callbacks, paho
callbacks and the monitor reader thread only post small events to `self.events`. The loop
takes an event (or times out at the next deadline of a core), feeds it to the cores,
performs the actions they return (lights first, then outbox, then the MQTT link), ticks
the timers (escalation, overrun reminders, fades, monitor silence, health, watchdog) and
pumps the outbox. A press therefore lights the dome before anything touches disk or
network, and works with no broker at all.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from controller import __version__, alerts, call_lifecycle, lighting, phases, topics
from controller.clock_sync import ClockSync
from controller.config import RoomConfig
from controller.contract import (
    COMMANDS,
    ClaimCommand,
    EventKind,
    Phase,
    PhaseCommand,
    SceneCommand,
    SimButton,
)
from controller.core_types import Emit
from controller.mqtt_connect import BrokerEndpoint
from controller.mqtt_link import Inbound, LinkDown, LinkUp, MqttLink, PubAck
from controller.outbox import Outbox, OutboxFull
from controller.publisher import Publisher
from controller.room_hardware import RoomHardware
from controller.sdnotify import SystemdNotifier

log = logging.getLogger(__name__)

FADE_TICK_S = 0.05
SHUTDOWN_DRAIN_S = 3.0
PURGE_EVERY_S = 10.0
CLOCK_CHECK_S = 10.0


@dataclass(frozen=True)
class ButtonEvent:
    name: str  # call_pressed, call_held, cancel_pressed, emergency_pressed


@dataclass(frozen=True)
class ReadingEvent:
    reading: Any  # firmware_py.monitors.Reading


@dataclass(frozen=True)
class Stop:
    reason: str


def utcnow() -> datetime:
    return datetime.now(UTC)


class RoomDaemon:
    def __init__(
        self,
        config: RoomConfig,
        *,
        pin_factory: Any = None,
        notifier: SystemdNotifier | None = None,
    ):
        self.config = config
        self.site, self.room = config.site, config.room
        self.events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.notifier = notifier or SystemdNotifier()
        self.started_mono = time.monotonic()
        self.internal_errors = 0
        self._clock = ClockSync(config.clock)
        self._clock_synced = self._clock.synced()
        self._clock_checked = time.monotonic()
        self._purged = time.monotonic()

        t = config.timing
        self.phase_settings = phases.PhaseSettings(
            planned_pre_check_s=t.planned_pre_check_min * 60,
            planned_infusion_s=t.planned_infusion_min * 60,
            planned_recovery_s=t.planned_recovery_min * 60,
            min_recovery_s=t.min_recovery_min * 60,
            reminder_every_s=t.reminder_every_min * 60,
        )
        self.call_settings = call_lifecycle.CallSettings(escalate_after_s=t.escalate_after())
        self.alert_rules = _alert_rules(config)
        self.phase_scenes = {**lighting.DEFAULT_PHASE_SCENES, **(config.scenes or {})}

        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(config.state_dir / "outbox.sqlite3", max_rows=config.outbox.max_rows)
        self.publisher = Publisher(
            self.outbox,
            self.site,
            self.room,
            lambda: self._clock_synced,
            utcnow,
            config.outbox.window,
        )
        self._load_state(utcnow())
        self._staged: list[tuple[str, dict[str, Any]]] = []  # stored by _flush
        self._unstored: list[tuple[str, dict[str, Any]]] = []  # kept while the disk is full

        self.hardware = RoomHardware(config, self._post_button, pin_factory=pin_factory)
        self.monitor = self._make_monitor()
        self._monitor_ok = True  # until silence_s passes with no reading (grace at start)
        self._last_health_mono = 0.0
        self._health_key: tuple[Any, ...] | None = None

        endpoint = BrokerEndpoint.from_url(
            config.broker.url, config.broker.ca, config.broker.cert, config.broker.key
        )
        subs = [topics.cmd_filter(self.site, self.room)]
        if config.simulate:
            subs.append(topics.sim_button(self.site, self.room))
        self.link = MqttLink(
            endpoint,
            client_id=f"roomctl-{self.site}-{self.room}",
            will_topic=topics.availability(self.site, self.room),
            subscriptions=subs,
            post=self.events.put,
            keepalive_s=config.broker.keepalive_s,
            reconnect_min_s=config.broker.reconnect_min_s,
            reconnect_max_s=config.broker.reconnect_max_s,
            session_expiry_s=config.broker.session_expiry_s,
            max_inflight=config.outbox.window,
        )

    # -- state persistence -----------------------------------------------------------

    def _load_state(self, now: datetime) -> None:
        """Restore phase, call, alerts and scene; corrupt state falls back to a clean start."""
        saved = self.outbox.load_state
        self.session = _restore("session", saved("session"), phases.from_dict, phases.initial(now))
        self.call = _restore("call", saved("call"), call_lifecycle.from_dict, call_lifecycle.idle())
        self.alerts = _restore("alerts", saved("alerts"), alerts.from_dict, alerts.initial())
        self.scene_override: str | None = (saved("scene") or {}).get("override")
        self.restored = saved("session") is not None or saved("call") is not None
        scene = self._scene()
        self.fade: lighting.Fade = lighting.fade_to(None, scene.color, now, 0.0)

    def _state_blobs(self) -> dict[str, dict[str, Any]]:
        return {
            "session": phases.to_dict(self.session),
            "call": call_lifecycle.to_dict(self.call),
            "alerts": alerts.to_dict(self.alerts),
            "scene": {"override": self.scene_override},
        }

    # -- inputs (any thread) -----------------------------------------------------------

    def _post_button(self, name: str) -> None:
        self.events.put(ButtonEvent(name))

    def _post_reading(self, reading: Any) -> None:
        self.events.put(ReadingEvent(reading))

    def stop(self, reason: str = "stop requested") -> None:
        self.events.put(Stop(reason))

    # -- run ---------------------------------------------------------------------------

    def run(self) -> None:
        now = utcnow()
        self._apply_outputs(now)
        self._emit(
            [
                Emit(
                    EventKind.DAEMON_STARTED,
                    now,
                    detail={"version": __version__, "restored": self.restored},
                )
            ]
        )
        self._publish_state()
        self._publish_call()
        self._publish_health(force=True)
        self._flush()
        if self.monitor is not None:
            self.monitor.start()
        self.link.start()
        self.notifier.ready(f"room {self.room} running")
        try:
            self._loop()
        finally:
            self._shutdown()

    def _loop(self) -> None:
        while True:
            ev = self._next_event()
            batch = [] if ev is None else [ev]
            while len(batch) < 500:  # drain what is ready, bounded
                try:
                    batch.append(self.events.get_nowait())
                except queue.Empty:
                    break
            for item in batch:
                if isinstance(item, Stop):
                    log.info("stopping: %s", item.reason)
                    return
                self._guarded(self._handle, item)
            self._guarded(self._tick, utcnow())
            self._guarded(self._deliver, None)
            self.notifier.ping_if_due()

    def _guarded(self, func: Any, arg: object) -> None:
        """Nothing crashes the daemon: a bug in one handler is logged and counted."""
        try:
            func(arg)
        except Exception:
            self.internal_errors += 1
            log.exception("internal error handling %r", arg)
        finally:
            self._flush()

    def _flush(self) -> None:
        """Store everything the last handler produced, with the room state, in one transaction.

        A call, its events and its snapshot become durable together with one fsync. On a
        full disk, calls, events and snapshots stay in memory and are retried on the next
        flush; vitals are counted as thinned by the outbox.
        """
        staged = self._unstored + self._staged
        self._staged, self._unstored = [], []
        if not staged:
            return
        try:
            self.publisher.enqueue_many(staged, state=self._state_blobs())
        except (OutboxFull, sqlite3.Error) as exc:
            dropped = sum(1 for leaf, _ in staged if leaf == "vitals")
            self.outbox.count_dropped_vitals(dropped)
            self._unstored = _keep_unstored(staged)
            log.error(
                "cannot store messages (%s): %d vitals counted as thinned, %d calls/events "
                "kept in memory until they can be stored",
                exc,
                dropped,
                len(self._unstored),
            )

    def _deliver(self, _: object) -> None:
        self.publisher.flush_acks()
        self.publisher.pump(self.link)

    def _next_event(self) -> object | None:
        timeout = self._seconds_to_next_deadline()
        try:
            return self.events.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def _seconds_to_next_deadline(self) -> float:
        now = utcnow()
        waits = [1.0]
        for deadline in (
            phases.next_deadline(self.session, self.phase_settings),
            call_lifecycle.next_deadline(self.call, self.call_settings),
        ):
            if deadline is not None:
                waits.append((deadline - now).total_seconds())
        if not lighting.fade_done(self.fade, now):
            waits.append(FADE_TICK_S)
        wd = self.notifier.watchdog_due()
        if wd is not None:
            waits.append(wd)
        return min(waits)

    def _drain_before_stop(self, seconds: float) -> None:
        """On a clean stop, deliver what is stored (bounded); the rest waits on disk."""
        deadline = time.monotonic() + seconds
        while self.link.connected and self.outbox.depth > 0 and time.monotonic() < deadline:
            self.publisher.pump(self.link)
            try:
                item = self.events.get(timeout=0.05)
            except queue.Empty:
                continue
            if isinstance(item, PubAck):
                self.publisher.on_puback(item.mid, item.ok, item.reason)
                self.publisher.flush_acks()

    def _shutdown(self) -> None:
        self.notifier.stopping()
        if self.monitor is not None:
            self.monitor.stop()
        try:
            self._drain_before_stop(SHUTDOWN_DRAIN_S)
        finally:
            self.link.stop()
            self.hardware.close()
            self.outbox.close()
            self.notifier.close()

    # -- event handling ----------------------------------------------------------------

    def _handle(self, item: object) -> None:
        now = utcnow()
        if isinstance(item, ButtonEvent):
            self._on_button(item.name, now)
        elif isinstance(item, ReadingEvent):
            self._on_reading(item.reading, now)
        elif isinstance(item, PubAck):
            self.publisher.on_puback(item.mid, item.ok, item.reason)
        elif isinstance(item, Inbound):
            self._on_inbound(item, now)
        elif isinstance(item, LinkUp):
            replayed = self.publisher.replay_recent(self.config.broker.replay_window_s)
            log.info(
                "broker connected (session present: %s); resending %d recent messages",
                item.session_present,
                replayed,
            )
            # Retained topics are republished on every (re)connect, after the backlog.
            self._publish_state()
            self._publish_call()
            self._publish_health(force=True)
        elif isinstance(item, LinkDown):
            log.warning("broker link down: %s", item.reason)
            self._publish_health(force=True)

    def _on_button(self, name: str, now: datetime) -> None:
        new_id = f"{self.room}-{uuid.uuid4().hex[:12]}"
        if name == "call_pressed":
            self._set_call(*call_lifecycle.press(self.call, now, self.session.phase, new_id))
        elif name in ("call_held", "emergency_pressed"):
            self._set_call(*call_lifecycle.emergency(self.call, now, new_id))
        elif name == "cancel_pressed":
            self._set_call(*call_lifecycle.cancel(self.call, now))
        else:
            log.warning("unknown button event %r", name)

    def _set_call(self, state: call_lifecycle.CallState, emits: tuple[Emit, ...]) -> None:
        changed = state != self.call
        self.call = state
        if changed:
            self._apply_outputs(utcnow())  # the dome first: a press shows at once
        self._emit(list(emits))
        if changed:
            self._publish_call()

    def _on_inbound(self, msg: Inbound, now: datetime) -> None:
        prefix = topics.room_prefix(self.site, self.room) + "/"
        leaf = msg.topic[len(prefix) :] if msg.topic.startswith(prefix) else ""
        if leaf == "sim/button":
            self._on_sim_button(msg.payload)
            return
        name = leaf.removeprefix("cmd/") if leaf.startswith("cmd/") else ""
        model = COMMANDS.get(name)
        if model is None:
            self._refuse(now, f"unknown command topic {msg.topic!r}", None, leaf)
            return
        try:
            cmd = model.model_validate_json(msg.payload, strict=True)
        except ValidationError as exc:
            self._refuse(now, f"bad {name} command: {_short_errors(exc)}", None, leaf)
            return
        if isinstance(cmd, PhaseCommand):
            self._on_phase_cmd(cmd, now)
        elif isinstance(cmd, ClaimCommand):
            outcome = call_lifecycle.claim(self.call, cmd.call_id, cmd.by, now)
            self._set_call(outcome.state, outcome.emits)  # a refusal is its COMMAND_REFUSED emit
        elif isinstance(cmd, SceneCommand):
            self._on_scene_cmd(cmd, now, leaf)

    def _on_sim_button(self, payload: bytes) -> None:
        if not self.config.simulate:
            return  # a real room ignores simulation input
        try:
            press = SimButton.model_validate_json(payload, strict=True)
        except ValidationError as exc:
            self._refuse(
                utcnow(), f"bad sim/button payload: {_short_errors(exc)}", None, "sim/button"
            )
            return
        self.hardware.simulate(press.button, press.action)

    def _on_phase_cmd(self, cmd: PhaseCommand, now: datetime) -> None:
        session_id = cmd.session_id or f"{self.room}-{now.strftime('%Y%m%dT%H%M%S')}"
        outcome = phases.request(
            self.session,
            cmd.phase,
            cmd.by,
            now,
            self.phase_settings,
            session_id,
            cmd.planned_minutes,
        )
        emits = list(outcome.emits)
        if outcome.refused is None:
            self.session = outcome.state
            self.alerts, alert_emits = alerts.on_phase_change(
                self.alerts, self.session.phase, now, self.alert_rules
            )
            emits.extend(alert_emits)
            if self.scene_override is None:
                self._fade_to_scene(now)
            self._apply_outputs(now)
        self._emit(emits)
        if outcome.refused is None:
            self._publish_state()

    def _on_scene_cmd(self, cmd: SceneCommand, now: datetime, leaf: str) -> None:
        if cmd.scene is not None:
            problem = lighting.check_scene(cmd.scene, lighting.DEFAULT_SCENES)
            if problem:
                self._refuse(now, problem, cmd.by, leaf)
                return
        self.scene_override = cmd.scene
        self._fade_to_scene(now)
        self._emit(
            [
                Emit(
                    EventKind.SCENE_CHANGED,
                    now,
                    by=cmd.by,
                    detail={"scene": self._scene().name, "override": cmd.scene is not None},
                )
            ]
        )
        self._publish_state()

    def _refuse(self, now: datetime, reason: str, by: str | None, leaf: str) -> None:
        log.warning("refused %s: %s", leaf, reason)
        self._emit(
            [
                Emit(
                    EventKind.COMMAND_REFUSED,
                    now,
                    by=by,
                    reason=reason[:500],
                    detail={"topic": leaf},
                )
            ]
        )

    def _on_reading(self, reading: Any, now: datetime) -> None:
        fields: dict[str, Any] = dict(reading.vitals())
        fields.update(
            protocol=reading.protocol,
            device_time=reading.device_time,
            alarms=list(reading.alarms),
            quality=list(reading.quality),
            alarm_raw=reading.alarm_raw,
            exc_raw=reading.exc_raw,
        )
        self._staged.append(("vitals", fields))
        before = alerts.active_list(self.alerts)
        self.alerts, emits = alerts.evaluate(
            self.alerts, reading.vitals(), now, self.session.phase, self.alert_rules
        )
        if emits:
            self._apply_outputs(now)
            self._emit(list(emits))
        if alerts.active_list(self.alerts) != before:
            self._publish_state()
        if not self._monitor_ok:
            self._monitor_ok = True
            self._emit(
                [Emit(EventKind.MONITOR_LINK_RESTORED, now, detail={"protocol": reading.protocol})]
            )
            self._apply_outputs(now)
            self._publish_health(force=True)

    # -- timers ------------------------------------------------------------------------

    def _tick(self, now: datetime) -> None:
        self.session, emits = phases.tick(self.session, now, self.phase_settings)
        if emits:
            self._emit(list(emits))
            self._publish_state()
        before = self.call
        state, emits = call_lifecycle.tick(self.call, now, self.call_settings)
        if state != before:
            self._set_call(state, emits)
        self.hardware.set_ambient(lighting.color_at(self.fade, now))
        self._check_monitor(now)
        mono = time.monotonic()
        if mono - self._purged >= PURGE_EVERY_S:
            self._purged = mono
            self.outbox.purge_acked(self.config.broker.replay_window_s)
            if self.outbox.disk_full and self.outbox.ensure_ballast():
                log.info("disk space is back: the outbox reserve is in place again")
        if mono - self._clock_checked >= CLOCK_CHECK_S:
            self._clock_checked = mono
            self._clock_synced = self._clock.synced()
        self._publish_health()

    def _check_monitor(self, now: datetime) -> None:
        if self.monitor is None:
            return
        stats = self.monitor.stats()
        last = stats.get("last_reading_at")
        age = time.time() - last if last else time.monotonic() - self.started_mono
        silent = age > self.config.monitor.silence_s
        if silent and self._monitor_ok:
            self._monitor_ok = False
            self._emit(
                [
                    Emit(
                        EventKind.MONITOR_LINK_LOST,
                        now,
                        reason=f"no reading for {age:.1f} s",
                        detail={"connected": bool(stats.get("connected"))},
                    )
                ]
            )
            self._apply_outputs(now)
            self._publish_health(force=True)

    # -- outputs -----------------------------------------------------------------------

    def _scene(self) -> lighting.Scene:
        return lighting.scene_for(
            self.session.phase, self.scene_override, self.phase_scenes, lighting.DEFAULT_SCENES
        )

    def _fade_to_scene(self, now: datetime) -> None:
        scene = self._scene()
        self.fade = lighting.fade_to(self.fade, scene.color, now, scene.fade_s)

    def _apply_outputs(self, now: datetime) -> None:
        pattern = lighting.dome_pattern(
            self.call.status,
            self.call.priority,
            bool(alerts.active_list(self.alerts)),
            not self._monitor_ok,
        )
        self.hardware.set_dome(pattern.kind, pattern.on_s, pattern.off_s)
        self.hardware.set_ambient(lighting.color_at(self.fade, now))

    def _emit(self, emits: list[Emit]) -> None:
        for e in emits:
            fields = {
                "kind": e.kind,
                "call_id": e.call_id,
                "priority": e.priority,
                "phase": e.phase,
                "from_phase": e.from_phase,
                "session_id": e.session_id,
                "by": e.by,
                "reason": e.reason,
                "detail": dict(e.detail),
            }
            self._staged.append(("events", fields))

    def _publish_state(self) -> None:
        s = self.session
        scene = self._scene()
        self._enqueue_snapshot(
            "state",
            {
                "phase": s.phase,
                "session_id": s.session_id,
                "since": s.since,
                "planned_end": s.planned_end,
                "min_recovery_end": s.min_recovery_end,
                "overrun": s.overrun,
                "alerts": alerts.active_list(self.alerts),
                "scene": scene.name,
                "scene_override": self.scene_override is not None,
            },
        )

    def _publish_call(self) -> None:
        c = self.call
        self._enqueue_snapshot(
            "call",
            {
                "call_id": c.call_id,
                "priority": c.priority,
                "status": c.status,
                "placed_at": c.placed_at,
                "claimed_by": c.claimed_by,
                "claimed_at": c.claimed_at,
                "escalated_at": c.escalated_at,
            },
        )

    def _enqueue_snapshot(self, leaf: str, fields: dict[str, Any]) -> None:
        self._staged.append((leaf, fields))

    def _status_code(self) -> lighting.StatusCode:
        return lighting.status_code(
            broker_connected=self.link.connected,
            monitor_ok=self._monitor_ok,
            clock_synced=self._clock_synced,
            outbox_fill=1.0 if self.outbox.disk_full else self.outbox.depth / self.outbox.max_rows,
            hardware_ok=self.hardware.ok,
        )

    def health_fields(self) -> dict[str, Any]:
        stats = self.monitor.stats() if self.monitor is not None else {}
        code = self._status_code()
        oldest = self.outbox.oldest_created()
        last = stats.get("last_reading_at")
        monitor_status = "ok" if self._monitor_ok else "silent"
        return {
            "monitor": {
                "status": "disabled" if self.monitor is None else monitor_status,
                "protocol": self.config.monitor.protocol,
                "transport": self.config.monitor.transport if self.monitor is not None else None,
                "last_reading_at": datetime.fromtimestamp(last, UTC) if last else None,
                "frames_accepted": stats.get("frames_accepted", 0),
                "frames_rejected": stats.get("frames_rejected", 0),
            },
            "buttons": "ok" if self.hardware.ok else "fault",
            "lights": "ok" if self.hardware.ok else "fault",
            "outbox": {
                "depth": self.outbox.depth,
                "oldest_age_s": max(0.0, time.time() - oldest) if oldest else None,
                "cap": self.outbox.max_rows,
                "vitals_thinned": self.outbox.vitals_thinned,
            },
            "status_code": int(code),
            "status_text": lighting.STATUS_TEXT[code],
            "uptime_s": round(time.monotonic() - self.started_mono, 1),
            "version": __version__,
        }

    def _publish_health(self, force: bool = False) -> None:
        """Publish health on a change of what it says, every health_every_s, or when forced.

        Runs every tick, so it only builds the full payload when it will publish it.
        """
        code = self._status_code()
        key = (
            code,
            self._monitor_ok,
            self._clock_synced,
            self.hardware.ok,
            self.outbox.vitals_thinned,
        )
        changed = key != self._health_key
        if changed:
            self.hardware.set_status(lighting.blink_sequence(code))
        mono = time.monotonic()
        due = mono - self._last_health_mono >= self.config.timing.health_every_s
        if force or due or changed:
            self._health_key = key
            self._last_health_mono = mono
            self._enqueue_snapshot("health", self.health_fields())

    def _make_monitor(self) -> Any:
        m = self.config.monitor
        if m.protocol is None or m.address is None:
            return None
        from firmware_py.monitors.link import MonitorLink

        return MonitorLink(
            m.protocol, m.transport, m.address, self._post_reading, baudrate=m.baudrate
        )


SNAPSHOT_LEAVES = frozenset({"state", "call", "health"})


def _keep_unstored(staged: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """What waits in memory while the disk is full: every event, the latest snapshot per topic.

    Vitals are not kept (they are counted as thinned); an older state/call/health snapshot
    is superseded by a newer one, so only the last of each is worth storing later.
    """
    last_snapshot = {leaf: i for i, (leaf, _) in enumerate(staged) if leaf in SNAPSHOT_LEAVES}
    return [
        (leaf, fields)
        for i, (leaf, fields) in enumerate(staged)
        if leaf == "events" or (leaf in SNAPSHOT_LEAVES and last_snapshot[leaf] == i)
    ]


def _restore(name: str, data: dict[str, Any] | None, load: Any, default: Any) -> Any:
    if data is None:
        return default
    try:
        return load(data)
    except (ValueError, KeyError, TypeError) as exc:
        log.error("saved %s state is unreadable (%s): starting from a clean %s", name, exc, name)
        return default


def _alert_rules(config: RoomConfig) -> dict[Phase, tuple[alerts.AlertRule, ...]]:
    rules = dict(alerts.DEFAULT_RULES)
    for phase, items in (config.alerts or {}).items():
        rules[phase] = tuple(alerts.AlertRule(**item.model_dump()) for item in items)
    return rules


def _short_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
