"""Nurse call through the real room daemon and a real Mosquitto (issue 14): every new input
driven on `sim/button`, several calls in the retained `call`, presence and the cord loop in
the retained `state`, and the dome hardware (single, RGB, sections) on gpiozero's MockFactory.

The rules themselves are tested on the core (tests/test_room_core_nursecall.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.mosquitto.run import Mosquitto
from contract import topics
from controller.room_hardware import input_pins
from tests.support.mqtt import Recorder, retained, wait_until
from tests.support.room_process import ROOM, SITE, RunningRoom, is_event, room_config


def running(mosquitto: Mosquitto, tmp_path: Path, **over: Any) -> RunningRoom:
    r = RunningRoom(room_config(mosquitto, tmp_path / "room", **over))
    r.thread.start()
    return r


@pytest.fixture
def room(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[RunningRoom]:
    r = running(mosquitto, tmp_path, cord={"debounce_s": 0.2})
    try:
        yield r
    finally:
        r.daemon.stop()
        r.thread.join(15)
        assert not r.thread.is_alive(), "daemon did not stop"


def sim(rec: Recorder, button: str, *actions: str) -> None:
    for action in actions:
        rec.publish(topics.sim_button(SITE, ROOM), {"button": button, "action": action})


def calls_are(*types: str) -> Any:
    def check(m: Any) -> bool:
        return m.topic.endswith("/call") and [c["type"] for c in m.json()["calls"]] == list(types)

    return check


def test_every_new_input_on_sim_button_reaches_the_retained_call_and_state(
    room: RunningRoom, mosquitto: Mosquitto
) -> None:
    watch = [topics.call(SITE, ROOM), topics.state(SITE, ROOM), topics.events(SITE, ROOM)]
    with Recorder(mosquitto.url, watch) as rec:
        rec.wait_for(calls_are())
        sim(rec, "bath", "press", "release")
        rec.wait_for(calls_are("bath"))
        sim(rec, "assist", "press", "release")
        both = rec.wait_for(calls_are("bath", "assist")).json()  # same priority: oldest first
        assert both["v"] == 2 and both["type"] == "bath" and both["tier"] == 1
        assert [c["priority"] for c in both["calls"]] == ["high", "high"]

        sim(rec, "presence", "press", "release")  # answers the bath call, never the assist
        rec.wait_for(calls_are("assist"))
        answered = rec.wait_for(is_event("call_cancelled")).json()
        assert answered["detail"]["ended_by"] == "presence"
        rec.wait_for(lambda m: m.topic.endswith("/state") and m.json()["presence"] is not None)

        sim(rec, "cord", "open")
        rec.wait_for(calls_are("assist", "cord_out"))
        rec.wait_for(lambda m: m.topic.endswith("/state") and m.json()["cords_open"] == ["cord"])
        sim(rec, "cord", "close")
        rec.wait_for(calls_are("assist"))

        sim(rec, "emergency", "press", "release")
        rec.wait_for(calls_are("emergency", "assist"))
        sim(rec, "cancel", "press", "release")
        rec.wait_for(calls_are())
    state = retained(mosquitto.url, topics.state(SITE, ROOM)).json()
    assert state["presence"] is not None and state["cords_open"] == []
    # presence alone: a single-colour dome stays dark (a lit lamp means a call)
    wait_until(lambda: room.daemon.hardware.dome.pattern[0] == "off", 10, "dome off")


def test_a_bad_sim_action_is_refused_with_a_reason(room: RunningRoom, mosquitto: Mosquitto) -> None:
    with Recorder(mosquitto.url, [topics.events(SITE, ROOM), topics.call(SITE, ROOM)]) as rec:
        rec.wait_for(calls_are())  # published after the room subscribed: sim/button is heard
        sim(rec, "cord", "press")
        refused = rec.wait_for(is_event("command_refused")).json()
    assert "does not fit 'cord'" in refused["reason"]


def test_sectioned_dome_shows_presence_beneath_a_call(mosquitto: Mosquitto, tmp_path: Path) -> None:
    sections = {"white": 5, "green": 6, "red": 16}
    r = running(mosquitto, tmp_path, dome={"kind": "sections", "sections": sections})
    try:
        pins = input_pins(r.config)
        r.press(pins["call"] or 0)
        r.release(pins["call"] or 0)
        r.press(pins["presence"] or 0)
        r.release(pins["presence"] or 0)
        r.press(pins["emergency"] or 0)

        def lit() -> dict[str, bool]:
            return {c: bool(r.factory.pin(p).state) for c, p in sections.items()}

        # the patient call became the emergency (red, blinking); presence stays green
        dome = r.daemon.hardware.dome
        wait_until(lambda: dome.lights["red"].pattern[0] == "blink", 10, "red section blinks")
        assert dome.lights["red"].pattern == ("blink", 0.25, 0.25)
        assert dome.lights["green"].pattern[0] == "steady"
        assert dome.lights["white"].pattern[0] == "off"
        assert lit()["green"]
    finally:
        r.daemon.stop()
        r.thread.join(15)


def test_rgb_dome_shows_the_call_type_colour(mosquitto: Mosquitto, tmp_path: Path) -> None:
    r = running(mosquitto, tmp_path, dome={"kind": "rgb", "rgb_pins": [5, 6, 16]})
    try:
        pins = input_pins(r.config)
        r.press(pins["bath"] or 0)
        wait_until(lambda: r.daemon.hardware.dome.shown[0] == "amber", 10, "amber dome")
        assert r.daemon.hardware.dome.shown[1:] == ("blink", 0.5, 0.5)
        r.press(pins["presence"] or 0)  # answers the bath call: presence, green, remains
        wait_until(lambda: r.daemon.hardware.dome.shown[:2] == ("green", "steady"), 10, "green")
        r.release(pins["presence"] or 0)
        r.press(pins["presence"] or 0)
        wait_until(lambda: r.daemon.hardware.dome.shown[1] == "off", 10, "dome off")
    finally:
        r.daemon.stop()
        r.thread.join(15)
