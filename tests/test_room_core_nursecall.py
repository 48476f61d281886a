"""Nurse call in the room (issue 14) on the pure core with an injected clock: call types and
their priority order, presence against each type, reminders, tiers, cord supervision,
cleaning mode, the monitor's own alarms, and restoring all of it after a restart."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, get_args

import pytest

from contract.messages import CallMessage, StateMessage
from contract.vitals import Reading
from controller.config import ConfigError, PatternName
from controller.core.dome import PATTERNS
from controller.core.io_types import (
    Button,
    ButtonPressed,
    CordChanged,
    ReadingReceived,
    SetDome,
    Started,
    Tick,
)
from tests.support.room_core import FACTS, ROOM, Room, bodies, config, domes, events


def started(**over: Any) -> Room:
    room = Room(config(**over)) if over else Room()
    room.feed(Started(FACTS))
    return room


def press(room: Room, *buttons: Button) -> None:
    for button in buttons:
        room.feed(ButtonPressed(button))


def tick(room: Room, seconds: float) -> list[Any]:
    room.advance(seconds)
    return room.feed(Tick(FACTS))


def last_call(room: Room) -> dict[str, Any]:
    return bodies(room.actions, CallMessage)[-1]


def last_state(room: Room) -> dict[str, Any]:
    return bodies(room.actions, StateMessage)[-1]


def call_types(room: Room) -> list[str]:
    return [c["type"].value for c in last_call(room)["calls"]]


def call_id(room: Room, call_type: str) -> str:
    return next(c["call_id"] for c in last_call(room)["calls"] if c["type"] == call_type)


def dome(room: Room) -> SetDome:
    return domes(room.actions)[-1]


# -- several calls, highest first --------------------------------------------------------


def test_several_calls_listed_highest_priority_first_each_with_its_own_lifecycle() -> None:
    room = started()
    press(room, Button.CALL)
    room.advance(1)
    press(room, Button.ASSIST)
    room.advance(1)
    press(room, Button.BATH)
    assert call_types(room) == ["assist", "bath", "normal"]  # high (oldest first), normal
    body = last_call(room)
    assert (body["type"].value, body["priority"].value, body["tier"]) == ("assist", "high", 1)
    assert body["call_id"] == body["calls"][0]["call_id"]
    assert dome(room).colour == "blue" and [x.what for x in dome(room).layers] == [
        "assist",
        "bath",
        "normal",
    ]
    press(room, Button.EMERGENCY)  # turns the patient call into the emergency
    assert call_types(room) == ["emergency", "assist", "bath"]
    assert dome(room) == SetDome("blink", 0.25, 0.25) and dome(room).colour == "red"
    # each call keeps its own claim
    room.command("claim", {"call_id": call_id(room, "bath"), "by": "nurse.kim"})
    claimed = {c["type"].value: c["status"].value for c in last_call(room)["calls"]}
    assert claimed == {"emergency": "placed", "assist": "placed", "bath": "claimed"}


def test_long_press_is_an_emergency_and_a_press_during_infusion_raises_priority() -> None:
    room = started()
    press(room, Button.CALL)
    room.phase("pre_check", "infusion")
    press(room, Button.CALL)
    assert last_call(room)["priority"].value == "infusion"
    assert events(room.actions, "call_priority_raised")[-1]["detail"]["from_priority"] == "normal"
    press(room, Button.CALL_HELD)
    body = last_call(room)
    assert (body["type"].value, body["priority"].value) == ("emergency", "emergency")
    assert len(body["calls"]) == 1  # the same call, raised
    assert events(room.actions, "call_priority_raised")[-1]["detail"]["from_type"] == "normal"


def test_inputs_map_to_call_types_in_config() -> None:
    room = started(gpio={"call_types": {"bath": "emergency"}})
    press(room, Button.BATH)
    assert call_types(room) == ["emergency"]


# -- cancel and presence against each type -------------------------------------------------


def test_cancel_ends_every_call_but_the_cord_out_trouble() -> None:
    room = started()
    press(room, Button.CALL, Button.ASSIST, Button.EMERGENCY)
    room.feed(CordChanged(False))
    tick(room, 3)
    assert set(call_types(room)) == {"emergency", "assist", "cord_out"}
    press(room, Button.CANCEL)
    assert call_types(room) == ["cord_out"]
    ended = {e["detail"]["call_type"] for e in events(room.actions, "call_cancelled")}
    assert ended == {"emergency", "assist"}


def test_presence_answers_routine_calls_never_assist_or_emergency() -> None:
    room = started()
    press(room, Button.EMERGENCY, Button.CALL, Button.BATH, Button.ASSIST)
    room.advance(42)
    out = room.feed(ButtonPressed(Button.PRESENCE))
    assert call_types(room) == ["emergency", "assist"]
    answered = events(out, "call_cancelled")
    assert {e["detail"]["call_type"] for e in answered} == {"normal", "bath"}
    for e in answered:
        assert e["detail"]["ended_by"] == "presence"
        assert e["detail"]["response_s"] == 42.0  # placed -> presence
    assert events(out, "presence_started")[0]["detail"]["answered"] == 2
    state = last_state(room)
    assert state["presence"]["since"] == room.wall
    assert state["presence"]["until"] is not None
    # presence lies beneath the calls on the dome
    assert [x.what for x in dome(room).layers] == ["emergency", "assist", "presence"]
    assert dome(room).layers[-1].colour == "green"


def test_presence_alone_shows_on_the_dome_and_ends_on_a_second_press() -> None:
    room = started()
    press(room, Button.PRESENCE)
    (layer,) = dome(room).layers  # green on a dome with colours; a single lamp stays dark,
    assert (layer.what, layer.colour, layer.kind) == ("presence", "green", "steady")
    assert dome(room) == SetDome("off")  # so that a lit single lamp always means a call
    room.advance(60)
    out = room.feed(ButtonPressed(Button.PRESENCE))
    assert events(out, "presence_ended")[0]["detail"]["present_s"] == 60.0
    assert last_state(room)["presence"] is None
    assert dome(room) == SetDome("off")


def test_presence_ends_by_itself_after_the_configured_time() -> None:
    room = started(presence={"max_min": 10})
    press(room, Button.PRESENCE)
    assert events(tick(room, 599), "presence_ended") == []
    out = tick(room, 1)
    assert events(out, "presence_ended")[0]["reason"] == "presence time over"


def test_a_call_placed_while_staff_are_present_stays_until_answered() -> None:
    room = started()
    press(room, Button.PRESENCE, Button.CALL)
    assert call_types(room) == ["normal"]


# -- tiers and reminders -------------------------------------------------------------------


def test_unclaimed_call_climbs_tiers_per_type_and_the_retained_call_says_which() -> None:
    room = started()
    press(room, Button.BATH)  # bath: 60 s at tier 1, 60 s at tier 2
    assert events(tick(room, 59), "call_escalated") == []
    out = tick(room, 1)
    assert events(out, "call_escalated")[0]["detail"]["tier"] == 2
    assert last_call(room)["tier"] == 2 and last_call(room)["status"].value == "escalated"
    assert dome(room) == SetDome("blink", 0.25, 0.25)
    out = tick(room, 60)
    assert events(out, "call_escalated")[0]["detail"]["tier"] == 3
    assert events(tick(room, 3600), "call_escalated") == []  # 3 is the top tier


def test_claimed_call_not_cleared_in_the_room_re_signals_at_its_interval() -> None:
    room = started()
    press(room, Button.ASSIST)  # assist: reminder every 180 s
    room.command("claim", {"call_id": call_id(room, "assist"), "by": "nurse.kim"})
    assert dome(room) == SetDome("steady")
    assert events(tick(room, 179), "call_reminder") == []
    out = tick(room, 1)
    (reminder,) = events(out, "call_reminder")
    assert reminder["detail"]["reminders"] == 1 and reminder["by"] == "nurse.kim"
    assert dome(room) == SetDome("blink", 0.25, 0.75)  # the reminder pattern
    assert last_call(room)["calls"][0]["reminders"] == 1
    assert len(events(tick(room, 180), "call_reminder")) == 1  # and again


# -- cord supervision ------------------------------------------------------------------------


def test_cord_out_after_the_debounce_stays_until_the_loop_closes() -> None:
    room = started()
    room.feed(CordChanged(False))
    room.advance(1)
    room.feed(CordChanged(True))  # a short open: nothing
    assert events(tick(room, 5), "call_placed") == []
    room.feed(CordChanged(False))
    assert events(tick(room, 1.9), "call_placed") == []
    out = tick(room, 0.1)
    (placed,) = events(out, "call_placed")
    assert placed["detail"]["call_type"] == "cord_out" and placed["priority"].value == "trouble"
    call = last_call(room)["calls"][0]
    assert call["trouble"] is True
    assert dome(room) == SetDome("blink", 0.1, 1.9) and dome(room).colour == "yellow"
    assert last_state(room)["cords_open"] == ["cord"]
    press(room, Button.CANCEL, Button.PRESENCE)  # neither ends it
    assert call_types(room) == ["cord_out"]
    out = room.feed(CordChanged(True))
    assert events(out, "call_cancelled")[0]["detail"]["ended_by"] == "cord"
    assert last_call(room)["calls"] == [] and last_state(room)["cords_open"] == []


def test_a_flapping_cord_is_reported_once_not_a_hundred_times() -> None:
    room = started()
    for _ in range(100):
        room.feed(CordChanged(False))
        tick(room, 0.5)
        room.feed(CordChanged(True))
        tick(room, 0.5)
    assert len(events(room.actions, "cord_flapping")) == 1
    assert len(events(room.actions, "call_placed")) == 1
    assert call_types(room) == ["cord_out"]
    assert events(tick(room, 59), "call_cancelled") == []
    out = tick(room, 1)  # quiet and closed for a whole window
    assert events(out, "call_cancelled")[0]["detail"]["ended_by"] == "cord"


# -- cleaning mode --------------------------------------------------------------------------


def test_cleaning_mode_ignores_routine_inputs_but_not_an_emergency_or_the_cord() -> None:
    room = started(cleaning={"minutes": 10})
    out = room.feed(ButtonPressed(Button.CANCEL_HELD))
    assert events(out, "cleaning_started")[0]["detail"]["minutes"] == 10
    assert last_state(room)["cleaning"]["until"] is not None
    assert [(x.what, x.colour) for x in dome(room).layers] == [("cleaning", "cyan")]
    out = room.feed(ButtonPressed(Button.CALL))
    out += room.feed(ButtonPressed(Button.BATH))
    ignored = events(out, "input_ignored")
    assert [e["detail"]["input"] for e in ignored] == ["call", "bath"]
    assert events(out, "call_placed") == []
    room.advance(60)
    press(room, Button.CALL_HELD)  # an emergency in the middle of cleaning
    assert call_types(room) == ["emergency"]
    room.feed(CordChanged(False))
    tick(room, 3)
    assert call_types(room) == ["emergency", "cord_out"]
    out = tick(room, 540)
    assert events(out, "cleaning_ended")[0]["reason"] == "cleaning time over"
    assert last_state(room)["cleaning"] is None
    assert call_types(room) == ["emergency", "cord_out"]  # the calls outlive cleaning
    press(room, Button.CALL)
    assert "normal" in call_types(room)


def test_cleaning_by_staff_command_and_ended_by_a_second_hold() -> None:
    room = started()
    out = room.command("cleaning", {"by": "tech.ann", "minutes": 3})
    assert events(out, "cleaning_started")[0]["by"] == "tech.ann"
    out = room.feed(ButtonPressed(Button.CANCEL_HELD))
    assert events(out, "cleaning_ended")[0]["reason"] == "ended by holding the cancel button"
    room.command("cleaning", {"by": "tech.ann"})
    out = room.command("cleaning", {"by": "tech.ann", "minutes": 0})
    assert events(out, "cleaning_ended")[0]["by"] == "tech.ann"
    out = room.command("cleaning", {"by": "tech.ann", "minutes": 999})
    assert "minutes" in events(out, "command_refused")[0]["reason"]


# -- the monitor's own alarms ---------------------------------------------------------------


def reading(*alarms: str) -> ReadingReceived:
    return ReadingReceived(Reading("masimo", 0.0, spo2=96.0, alarms=alarms))


def test_monitor_alarms_become_room_alerts_with_a_priority_and_clear() -> None:
    room = started(monitor_alarms={"map": {"pi_rate_of_change": "ignore"}})
    out = room.feed(reading("spo2_low", "low_battery", "vendor_thing", "alarm_silenced"))
    raised = {e["detail"]["name"]: e["detail"]["severity"] for e in events(out, "alert_raised")}
    assert raised == {"spo2_low": "high", "low_battery": "low", "vendor_thing": "medium"}
    alerts = {a.name: a for a in last_state(room)["alerts"]}
    assert alerts["spo2_low"].source == "monitor" and alerts["spo2_low"].threshold is None
    assert dome(room) == SetDome("blink", 0.5, 0.5) and dome(room).colour == "magenta"
    out = room.feed(reading("low_battery", "pi_rate_of_change"))
    cleared = [e["detail"]["name"] for e in events(out, "alert_cleared")]
    assert cleared == ["spo2_low", "vendor_thing"]
    assert events(out, "alert_raised") == []
    assert [a.name for a in last_state(room)["alerts"]] == ["low_battery"]


def test_unknown_alarm_priority_is_configurable() -> None:
    room = started(monitor_alarms={"unknown": "high", "map": {"low_battery": "medium"}})
    out = room.feed(reading("mystery", "low_battery"))
    raised = {e["detail"]["name"]: e["detail"]["severity"] for e in events(out, "alert_raised")}
    assert raised == {"mystery": "high", "low_battery": "medium"}


# -- dome colours and the palette --------------------------------------------------------------


def test_call_type_colour_and_pattern_come_from_the_table() -> None:
    room = started(call_types={"bath": {"colour": "red", "pattern": "slow"}})
    press(room, Button.BATH)
    assert dome(room) == SetDome("blink", 1.0, 1.0) and dome(room).colour == "red"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"call_types": {"emergency": {"ended_by": ["presence"]}}}, "presence never ends"),
        ({"call_types": {"assist": {"ended_by": ["cancel", "presence"]}}}, "presence never"),
        ({"call_types": {"cord_out": {"ended_by": ["cancel"]}}}, "must include cord"),
        ({"call_types": {"emergency": {"in_cleaning": False}}}, "never ignores"),
        ({"call_types": {"bath": {"colour": "plaid"}}}, "not in the dome palette"),
        ({"dome": {"kind": "rgb"}}, "rgb_pins"),
        ({"dome": {"kind": "sections", "sections": {"white": 23}}}, "both use GPIO23"),
        ({"gpio": {"presence_pin": 17}}, "both use GPIO17"),
        ({"gpio": {"call_types": {"bath": "cord_out"}}}, "not a call input"),
    ],
)
def test_config_refuses_an_unsafe_or_inconsistent_table(over: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(**over)
    assert field in str(err.value)


# -- restart --------------------------------------------------------------------------------


def test_calls_presence_cleaning_cord_and_alarms_survive_a_restart() -> None:
    room = started()
    press(room, Button.ASSIST, Button.PRESENCE, Button.CANCEL_HELD)
    room.feed(CordChanged(False))
    tick(room, 3)
    room.feed(reading("spo2_low"))
    saved = room.core.state_blobs()
    again = Room(saved=saved)
    out = again.feed(Started(FACTS))
    state = bodies(out, StateMessage)[0]
    assert state["presence"] is not None and state["cleaning"] is not None
    assert state["cords_open"] == ["cord"]
    assert [a.name for a in state["alerts"]] == ["spo2_low"]
    assert [c["type"].value for c in bodies(out, CallMessage)[0]["calls"]] == [
        "assist",
        "cord_out",
    ]
    assert again.core.call.calls[0].call_id == f"{ROOM}-call1"


def test_the_core_says_when_its_nurse_call_timers_fall_due() -> None:
    room = started(presence={"max_min": 10}, cord={"debounce_s": 0.8})
    assert room.core.nurse_call_deadline() is None
    press(room, Button.PRESENCE)
    room.feed(CordChanged(False))
    room.advance(0.5)
    assert room.core.seconds_to_next_deadline(room.now) == pytest.approx(0.3)
    tick(room, 0.3)  # the cord out is raised: presence's end is next
    assert call_types(room) == ["cord_out"]
    assert room.core.nurse_call_deadline() == room.wall + timedelta(seconds=599.2)


def test_the_config_knows_every_dome_pattern_by_name() -> None:
    assert set(get_args(PatternName)) == set(PATTERNS)
