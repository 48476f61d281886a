"""Proof of delivery in the room (issue 15), on the pure core with a hand-driven clock: a call
no board screen and no phone confirmed within `central_receipt_s` is escalated in the room
(the dome strobes it, the buzzer sounds, `central_blind` once); the first receipt ends it."""

from __future__ import annotations

import json
from typing import Any

from contract import topics
from contract.timefmt import format_ts
from controller.core.io_types import (
    Button,
    ButtonPressed,
    MessageReceived,
    SetBuzzer,
    Started,
    Tick,
)
from tests.support.room_core import FACTS, ROOM, SITE, Room, config, domes, events


def _room(**timing: Any) -> Room:
    room = Room(config(timing={"central_receipt_s": 10, **timing}, gpio={"buzzer_pin": 25}))
    room.feed(Started(FACTS))
    return room


def _receipt(room: Room, call_id: str, sender: str = "board", retained: bool = False) -> None:
    body = {"call_id": call_id, "by": "alice", "via": "screen", "where": "tab-1",
            "issued_at": format_ts(room.wall)}  # fmt: skip
    room.feed(MessageReceived(topics.receipt(SITE, ROOM, sender), json.dumps(body).encode(),
                              retained))  # fmt: skip


def _call_id(room: Room) -> str:
    return str(room.core.call.calls[0].call_id)


def _tick(room: Room, seconds: float) -> None:
    room.advance(seconds)
    room.feed(Tick(FACTS))


def test_a_call_nobody_confirmed_escalates_in_the_room_until_a_receipt() -> None:
    room = _room()
    room.feed(ButtonPressed(Button.CALL))
    call_id = _call_id(room)
    assert room.core.seconds_to_next_deadline(room.now) <= 10
    _tick(room, 9.9)
    assert not events(room.actions, "central_blind")
    _tick(room, 0.2)
    blind = events(room.actions, "central_blind")
    assert len(blind) == 1 and blind[0]["call_id"] == call_id
    assert domes(room.actions)[-1].on_s == 0.1  # the strobe
    assert domes(room.actions)[-1].layers[0].what == "normal (central blind)"
    assert [a for a in room.actions if isinstance(a, SetBuzzer)] == [SetBuzzer(True)]
    _tick(room, 30)
    assert len(events(room.actions, "central_blind")) == 1  # once per call
    _receipt(room, call_id, retained=True)  # a retained receipt is no news: ignored
    assert not events(room.actions, "central_reached")
    _receipt(room, call_id)
    reached = events(room.actions, "central_reached")
    assert len(reached) == 1 and reached[0]["by"] == "alice"
    assert domes(room.actions)[-1].on_s != 0.1
    assert [a for a in room.actions if isinstance(a, SetBuzzer)][-1] == SetBuzzer(False)


def test_a_receipt_in_time_or_a_claim_keeps_the_room_calm() -> None:
    room = _room()
    room.feed(ButtonPressed(Button.CALL))
    _receipt(room, _call_id(room), sender="main")  # the notifier's phone receipt
    _tick(room, 60)
    room.feed(ButtonPressed(Button.ASSIST))
    assist = next(c.call_id for c in room.core.call.calls if c.type.value == "assist")
    room.command("claim", {"call_id": assist, "by": "nurse.kim"})
    _tick(room, 60)
    assert not events(room.actions, "central_blind")
    assert not [a for a in room.actions if isinstance(a, SetBuzzer)]


def test_seen_calls_survive_a_restart_and_zero_turns_it_off() -> None:
    room = _room()
    room.feed(ButtonPressed(Button.CALL))
    _receipt(room, _call_id(room))
    again = Room(room.core.config, saved=room.core.state_blobs())
    again.wall, again.mono = room.wall, room.mono
    again.feed(Started(FACTS))
    _tick(again, 60)
    assert not events(again.actions, "central_blind")
    off = _room(central_receipt_s=0)
    off.feed(ButtonPressed(Button.CALL))
    _tick(off, 600)
    assert not events(off.actions, "central_blind")
