"""Room behaviour on the pure core: typed events in, typed actions out, no broker, no GPIO.

Every behaviour that tests/test_room_daemon.py once checked through Mosquitto is checked
here in microseconds (commands: tests/test_room_core_commands.py); tests/test_room_daemon.py
keeps a few end-to-end runs of the real daemon against a real broker.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from contract import topics
from contract.messages import (
    CallMessage,
    EventMessage,
    HealthMessage,
    StateMessage,
    VitalsMessage,
)
from contract.vitals import Reading
from controller.core import lighting
from controller.core.io_types import (
    Button,
    ButtonPressed,
    LinkDown,
    LinkUp,
    MonitorFacts,
    Publish,
    ReadingReceived,
    ResendRecent,
    RoomFacts,
    SetDome,
    SetStatusLed,
    Started,
    Tick,
)
from controller.publisher import keep_unstored
from tests.support.room_core import (
    FACTS,
    MONITORED,
    ROOM,
    SITE,
    T0,
    Room,
    bodies,
    config,
    domes,
    events,
)


def test_start_sets_outputs_and_publishes_every_retained_topic() -> None:
    room = Room()
    out = room.feed(Started(FACTS))
    assert domes(out) == [SetDome("off")]
    assert events(out, "daemon_started")[0]["detail"] == {"version": "test", "restored": False}
    assert [type(a).__name__ for a in out if isinstance(a, Publish)] == ["Publish"] * 4
    assert bodies(out, StateMessage)[0]["phase"] == "idle"
    assert bodies(out, CallMessage)[0]["status"] == "idle"
    assert bodies(out, HealthMessage)[0]["status_code"] == lighting.StatusCode.BROKER_UNREACHABLE


def test_press_lights_the_dome_before_the_call_is_published() -> None:
    room = Room()
    out = room.feed(ButtonPressed(Button.CALL))
    first_publish = next(i for i, a in enumerate(out) if isinstance(a, Publish))
    dome = next(i for i, a in enumerate(out) if isinstance(a, SetDome))
    assert dome < first_publish and out[dome] == SetDome("steady")
    (call,) = bodies(out, CallMessage)
    assert call["status"] == "placed" and call["priority"] == "normal"
    assert call["call_id"] == f"{ROOM}-call1"
    assert events(out, "call_placed")[0]["call_id"] == call["call_id"]


def test_infusion_priority_long_press_emergency_and_cancel() -> None:
    room = Room()
    room.phase("pre_check", "infusion")
    assert room.core.session.phase == "infusion"
    out = room.feed(ButtonPressed(Button.CALL))
    assert bodies(out, CallMessage)[0]["priority"] == "infusion"
    assert domes(out)[0] == SetDome("blink", 1.0, 1.0)
    room.advance(2)
    out = room.feed(ButtonPressed(Button.CALL_HELD))
    assert bodies(out, CallMessage)[0]["priority"] == "emergency"
    assert events(out, "call_priority_raised")
    assert domes(out)[0] == SetDome("blink", 0.25, 0.25)
    room.advance(5)
    out = room.feed(ButtonPressed(Button.CANCEL))
    (cancelled,) = events(out, "call_cancelled")
    assert cancelled["detail"]["response_s"] == 7.0
    assert bodies(out, CallMessage)[0]["status"] == "idle"
    assert domes(out)[0] == SetDome("off")


def test_emergency_input_places_an_emergency_call() -> None:
    room = Room()
    out = room.feed(ButtonPressed(Button.EMERGENCY))
    assert bodies(out, CallMessage)[0]["priority"] == "emergency"
    assert domes(out)[0] == SetDome("blink", 0.25, 0.25)


def test_unclaimed_call_escalates_on_the_injected_clock() -> None:
    room = Room(config(timing={"escalate_normal_s": 50, "health_every_s": 3600}))
    room.feed(Started(FACTS))
    room.feed(ButtonPressed(Button.CALL))
    assert room.core.seconds_to_next_deadline(room.now) == pytest.approx(50.0)
    room.advance(49.9)
    assert not events(room.feed(Tick(FACTS)), "call_escalated")
    room.advance(0.1)
    out = room.feed(Tick(FACTS))
    assert events(out, "call_escalated")
    assert bodies(out, CallMessage)[0]["status"] == "escalated"
    assert domes(out)[0] == SetDome("blink", 0.25, 0.25)


def test_saved_state_is_restored_and_corrupt_state_starts_clean() -> None:
    room = Room()
    room.phase("pre_check", "infusion")
    room.feed(ButtonPressed(Button.CALL))
    again = Room(saved=room.core.state_blobs())
    assert again.core.call.call_id == f"{ROOM}-call1" and again.core.session.phase == "infusion"
    started = events(again.feed(Started(FACTS)), "daemon_started")[0]
    assert started["detail"]["restored"] is True
    corrupt = Room(saved={"call": {"status": "ringing", "call_id": 7}, "session": {"phase": "x"}})
    assert corrupt.core.call.status == "idle" and corrupt.core.session.phase == "idle"


def test_link_up_resends_then_republishes_retained_topics_and_health_follows() -> None:
    room = Room()
    room.feed(Started(FACTS))
    out = room.feed(LinkUp(session_present=True))
    assert isinstance(out[0], ResendRecent)
    assert bodies(out, StateMessage) and bodies(out, CallMessage)
    out = room.feed(Tick(FACTS))  # the daemon's tick of the same round
    (health,) = bodies(out, HealthMessage)
    assert health["status_code"] == lighting.StatusCode.OK
    assert SetStatusLed(lighting.blink_sequence(lighting.StatusCode.OK)) in out
    room.feed(LinkDown("keepalive"))
    out = room.feed(Tick(FACTS))
    assert bodies(out, HealthMessage)[0]["status_text"] == "broker unreachable"


def test_health_is_quiet_until_something_changes_or_it_is_due() -> None:
    room = Room(config(timing={"health_every_s": 30}))
    room.feed(Started(FACTS))
    room.feed(LinkUp(session_present=False))
    room.feed(Tick(FACTS))
    room.advance(1)
    assert not bodies(room.feed(Tick(FACTS)), HealthMessage)
    full = RoomFacts(clock_synced=True, outbox_cap=1000, outbox_depth=900)
    assert bodies(room.feed(Tick(full)), HealthMessage)[0]["status_text"] == "outbox filling"
    room.advance(30)
    assert bodies(room.feed(Tick(full)), HealthMessage)  # due again


MASIMO = {"protocol": "masimo", "address": "/dev/ttyUSB0", "silence_s": 3}


def test_silent_monitor_is_reported_then_a_reading_restores_it() -> None:
    room = Room(config(monitor=MASIMO))
    room.phase("pre_check")
    room.feed(Started(MONITORED))
    room.advance(2)
    assert not events(room.feed(Tick(MONITORED)), "monitor_link_lost")
    room.advance(2)
    out = room.feed(Tick(MONITORED))
    assert "no reading for 4.0 s" in events(out, "monitor_link_lost")[0]["reason"]
    assert domes(out)[0] == SetDome("blink", 0.1, 1.9)
    assert bodies(out, HealthMessage)[0]["monitor"]["status"] == "silent"
    reading = Reading("masimo", room.wall.timestamp(), spo2=97.0, pulse_rate=70.0)
    out = room.feed(ReadingReceived(reading))
    assert bodies(out, VitalsMessage)[0]["spo2"] == 97.0
    assert events(out, "monitor_link_restored") and domes(out)[0] == SetDome("off")
    seen = MonitorFacts(enabled=True, last_reading_at=room.wall.timestamp(), frames_accepted=1)
    out = room.feed(Tick(RoomFacts(clock_synced=True, outbox_cap=1000, monitor=seen)))
    health = bodies(out, HealthMessage)[0]
    assert health["monitor"]["status"] == "ok" and health["monitor"]["frames_accepted"] == 1


def test_an_idle_room_sleeps_until_the_next_deadline_of_its_core() -> None:
    """No busy ticking (issue 17): health cadence, monitor silence and fades are deadlines."""
    room = Room(config(monitor=MASIMO, timing={"health_every_s": 30}))
    assert room.core.seconds_to_next_deadline(room.now) == 0.0  # health never published
    room.feed(Started(MONITORED))
    assert room.core.seconds_to_next_deadline(room.now) == pytest.approx(3.01)  # silence limit
    room.advance(2)
    room.feed(ReadingReceived(Reading("masimo", 0.0, spo2=97.0)))
    assert room.core.seconds_to_next_deadline(room.now) == pytest.approx(3.01)
    idle = Room(config(timing={"health_every_s": 30}))
    idle.feed(Started(FACTS))
    idle.advance(10)
    assert idle.core.seconds_to_next_deadline(idle.now) == pytest.approx(20.0)  # health
    idle.feed(LinkUp(session_present=False))
    assert idle.core.seconds_to_next_deadline(idle.now) == 0.0  # health due with fresh facts
    idle.feed(Tick(FACTS))
    idle.command("scene", {"scene": "calm", "by": "nurse.kim"})
    assert idle.core.seconds_to_next_deadline(idle.now) == pytest.approx(0.05)  # fading
    idle.advance(3600)
    idle.feed(Tick(FACTS))
    assert idle.core.seconds_to_next_deadline(idle.now) == pytest.approx(30.0)  # fade done


def test_low_spo2_raises_an_alert_in_state_and_on_the_dome() -> None:
    room = Room()
    room.phase("pre_check", "infusion")
    for _ in range(12):
        room.feed(ReadingReceived(Reading("masimo", 0.0, spo2=85.0)))
        room.advance(1)
    assert events(room.actions, "alert_raised")[0]["detail"]["value"] == 85.0
    state = bodies(room.actions, StateMessage)[-1]
    assert [a.name for a in state["alerts"]] == ["spo2_low"]
    assert SetDome("blink", 0.5, 0.5) in room.actions


def test_every_body_the_core_builds_is_a_valid_contract_message() -> None:
    room = Room(config(monitor={"protocol": "masimo", "address": "/dev/ttyUSB0"}))
    room.feed(Started(MONITORED))
    room.feed(LinkUp(session_present=False))
    room.phase("pre_check", "infusion")
    room.feed(ButtonPressed(Button.CALL))
    room.command("claim", {"call_id": f"{ROOM}-call1", "by": "nurse.kim"})
    room.feed(ReadingReceived(Reading("masimo", 0.0, spo2=96.0, alarms=("low_battery",))))
    room.advance(10)
    room.feed(Tick(MONITORED))
    room.command("phase", b"[]")
    published = [a for a in room.actions if isinstance(a, Publish)]
    assert {p.model for p in published} == set(topics.ROOM_MESSAGES.values())
    env = {
        "site": SITE,
        "room": ROOM,
        "epoch": "0000000000000001",
        "seq": 1,
        "ts": T0,
        "clock_synced": True,
    }
    for p in published:
        p.model(**env, **p.body)  # raises if the core built something the contract refuses


def test_full_disk_keeps_every_event_and_the_latest_snapshot_per_topic() -> None:
    msgs = [
        Publish(CallMessage, {"n": 1}),
        Publish(EventMessage, {"n": 2}),
        Publish(VitalsMessage, {"n": 3}),
        Publish(CallMessage, {"n": 4}),
        Publish(EventMessage, {"n": 5}),
        Publish(StateMessage, {"n": 6}),
    ]
    assert [m.body["n"] for m in keep_unstored(msgs)] == [2, 4, 5, 6]


def test_an_idle_room_with_its_monitor_off_does_not_blink_the_dome() -> None:
    room = Room(config(monitor=MASIMO))
    room.feed(Started(MONITORED))
    room.advance(4)
    out = room.feed(Tick(MONITORED))
    assert events(out, "monitor_link_lost")  # still reported, and on the status LED
    assert bodies(out, HealthMessage)[0]["monitor"]["status"] == "silent"
    assert domes(out) == [SetDome("off")]
    out = room.command("phase", {"phase": "pre_check", "by": "nurse.kim"})
    assert domes(out)[0] == SetDome("blink", 0.1, 1.9)  # a patient is in the room now
    out = room.command("phase", {"phase": "idle", "by": "nurse.kim"})
    assert domes(out)[0] == SetDome("off")


@pytest.mark.parametrize("step_s", [3600.0, -3600.0, 86400.0 * 365])
def test_a_wall_clock_step_moves_no_timer(step_s: float) -> None:
    room = Room(
        config(timing={"escalate_normal_s": 60, "planned_pre_check_min": 2}, monitor=MASIMO)
    )
    room.feed(Started(MONITORED))
    room.phase("pre_check")
    room.feed(ButtonPressed(Button.CALL))
    room.advance(30)
    room.feed(ReadingReceived(Reading("masimo", 0.0, spo2=97.0)))
    room.wall += timedelta(seconds=step_s)  # chrony makestep: wall jumps, monotonic does not
    out = room.feed(Tick(MONITORED))
    (stepped,) = events(out, "clock_stepped")
    assert stepped["detail"]["step_s"] == step_s
    assert not events(out, "call_escalated") and not events(out, "monitor_link_lost")
    call = bodies(out, CallMessage)[0]
    assert call["placed_at"] == room.wall - timedelta(seconds=30)  # the corrected clock
    assert bodies(out, StateMessage)[0]["since"] == room.wall - timedelta(seconds=30)
    room.advance(29.9)
    assert not events(room.feed(Tick(MONITORED)), "call_escalated")
    room.advance(0.1)
    assert events(room.feed(Tick(MONITORED)), "call_escalated")  # 60 s after the press
    room.advance(60)
    assert events(room.feed(Tick(MONITORED)), "phase_overrun")  # 2 min after pre_check began


def test_the_journal_gets_one_warning_when_a_condition_starts_and_one_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from controller.core.health import Conditions
    from controller.core.io_types import RoomFacts

    c = Conditions()
    synced = RoomFacts(clock_synced=True)
    assert c.update(synced) == []
    unsynced = c.update(RoomFacts(clock_synced=False))
    assert [m for _, m in unsynced] == [
        "wall clock not synchronised (NTP): message times may be wrong until it is; timers "
        "are unaffected"
    ]
    assert c.update(RoomFacts(clock_synced=False)) == []  # not once per tick
    assert "synchronised again" in c.update(synced)[0][1]
    young = RoomFacts(clock_synced=True, outbox_depth=50, outbox_oldest_age_s=5)
    assert c.update(young) == []  # a normal moment's queue is not a backlog
    old = RoomFacts(clock_synced=True, outbox_depth=900, outbox_oldest_age_s=75)
    (line,) = c.update(old)
    assert line == (logging.WARNING, "outbox backing up: 900 messages waiting, the oldest for "
                    "75 s (is the broker reachable?)")  # fmt: skip
    assert c.update(old) == []
    assert c.update(synced)[0][1] == "outbox drained: every message delivered"
    # the monitor's link, through the core (as the daemon's journal shows it)
    room = Room(config(monitor=MASIMO))
    room.phase("pre_check")
    with caplog.at_level(logging.WARNING, logger="controller.core.room"):
        room.feed(Started(MONITORED))
        room.advance(4)
        room.feed(Tick(MONITORED))
        room.feed(ReadingReceived(Reading("masimo", room.wall.timestamp(), spo2=97.0)))
    said = [r.getMessage() for r in caplog.records]
    assert said == ["monitor link lost: no reading for 4.0 s", "monitor link restored (masimo)"]
