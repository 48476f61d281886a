"""A test call asked for from the board (`cmd/test_call`, issue 20) on the pure core: placed
as type `test` at the lowest priority, by the staff member who asked, answering the command
by its request id; it lights the dome, never escalates past tier 1, is ended in the room like a
patient call, and a second request while one is up is refused in words. No input places one."""

from __future__ import annotations

import pytest

from contract.messages import CallMessage
from controller.config import ConfigError
from controller.core.io_types import Button, ButtonPressed, Started, Tick
from tests.support.room_core import FACTS, Room, bodies, config, domes, events


def test_a_test_call_is_placed_labelled_lowest_and_never_escalates() -> None:
    room = Room()
    room.feed(Started(FACTS))
    out = room.command("test_call", {"by": "alice", "request_id": "r-test-1"})
    placed = events(out, "call_placed")
    assert len(placed) == 1
    assert placed[0]["by"] == "alice" and placed[0]["priority"] == "trouble"
    assert placed[0]["detail"]["call_type"] == "test"
    assert placed[0]["detail"]["request_id"] == "r-test-1"  # the board's "applied"
    (call,) = bodies(out, CallMessage)[-1]["calls"]
    assert call["type"].value == "test" and call["tier"] == 1
    layer = domes(out)[-1].layers[0]  # the dome shows it (white, the trouble blink)
    assert (layer.what, layer.colour, layer.kind) == ("test", "white", "blink")
    for _ in range(10):  # an hour unclaimed: still tier 1, nothing escalated
        room.advance(360)
        assert not events(room.feed(Tick(FACTS)), "call_escalated")
    assert [c.tier for c in room.core.call.calls] == [1]
    again = room.command("test_call", {"by": "bob"})
    refused = events(again, "command_refused")
    assert refused and refused[0]["reason"] == "a test call is already up in this room"
    assert refused[0]["by"] == "bob" and not events(again, "call_placed")
    ended = room.feed(ButtonPressed(Button.CANCEL))  # ended in the room, like a patient call
    assert events(ended, "call_cancelled")[0]["detail"]["call_type"] == "test"
    assert bodies(ended, CallMessage)[-1]["status"].value == "idle"


def test_a_patient_call_outranks_a_test_call() -> None:
    room = Room()
    room.feed(Started(FACTS))
    room.command("test_call", {"by": "alice"})
    out = room.feed(ButtonPressed(Button.CALL))
    calls = bodies(out, CallMessage)[-1]["calls"]
    assert [c["type"].value for c in calls] == ["normal", "test"]


def test_a_stale_test_call_command_never_acts() -> None:
    room = Room()
    room.feed(Started(FACTS))
    out = room.command("test_call", {"by": "alice"}, age_s=120)
    assert not events(out, "call_placed") and events(out, "command_refused")


def test_no_input_may_place_a_test_call() -> None:
    with pytest.raises(ConfigError, match="test calls come from the board"):
        config(gpio={"call_types": {"call": "test"}})
