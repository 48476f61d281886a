"""What became of a staff command: sent, then applied or refused from the room's own answer
(an `events` message carrying the command's request id), or no answer; never from the PUBACK.

The tracking is tested on `SiteState` with an injected clock (the 35 s bound passes in
microseconds); the API and the tile in real headless Chromium against a real Mosquitto, the
room being played by contract-valid messages published with paho.
"""

from __future__ import annotations

import json
from typing import Any

from broker.board.commands import ANSWER_WITHIN_S, KEPT_PER_ROOM
from broker.board.live import SiteState

WAIT_MS = 15_000
TS = "2026-01-31T08:00:00.000Z"


def event(seq: int, kind: str, request_id: str | None, room: str = "101", **fields: Any) -> bytes:
    detail = {} if request_id is None else {"request_id": request_id}
    return json.dumps(
        {"v": 1, "site": "s1", "room": room, "epoch": "0000000000000001", "seq": seq, "ts": TS,
         "clock_synced": True, "kind": kind, "detail": detail, **fields}
    ).encode()  # fmt: skip


def status(s: SiteState, room: str, request_id: str, now: float) -> dict[str, Any]:
    [cmd] = [c for c in s.commands(room, now) if c["request_id"] == request_id]
    return cmd


def test_a_command_is_sent_then_applied_by_the_room_answer() -> None:
    s = SiteState("s1")
    s.command_sent("101", "claim", "alice", "r1", 100.0, "call c1")
    assert status(s, "101", "r1", 100.5)["status"] == "sent"
    # another event of the room, without the request id, answers nothing
    s.apply("101", "events", event(1, "call_placed", None, call_id="c1"), 101.0)
    assert status(s, "101", "r1", 101.0)["status"] == "sent"
    s.apply("101", "events", event(2, "call_claimed", "r1", call_id="c1", by="alice"), 102.0)
    got = status(s, "101", "r1", 200.0)  # long after the bound: answered is answered
    assert got["status"] == "applied" and got["answer"] == "call_claimed"
    assert got["by"] == "alice" and got["name"] == "claim" and got["what"] == "call c1"
    view = s.view("101", 200.0)
    assert view is not None and view["commands"][0]["status"] == "applied"


def test_a_refusal_keeps_the_room_reason_and_the_first_answer_decides() -> None:
    s = SiteState("s1")
    s.command_sent("101", "phase", "alice", "r2", 100.0, "infusion")
    reason = "illegal: idle -> infusion"
    s.apply("101", "events", event(1, "phase_refused", "r2", reason=reason), 101.0)
    got = status(s, "101", "r2", 101.0)
    assert got["status"] == "refused" and got["reason"] == reason
    assert got["answer"] == "phase_refused"
    s.apply("101", "events", event(2, "phase_changed", "r2", phase="infusion"), 102.0)
    assert status(s, "101", "r2", 102.0)["status"] == "refused"
    s.command_sent("101", "claim", "alice", "r3", 110.0)
    expired = "expired: issued 41.2 s ago (max age 30 s)"
    s.apply("101", "events", event(3, "command_refused", "r3", reason=expired), 111.0)
    assert status(s, "101", "r3", 111.0)["reason"] == expired


def test_no_answer_after_the_bound() -> None:
    s = SiteState("s1")
    s.command_sent("101", "phase", "alice", "r4", 100.0)
    assert status(s, "101", "r4", 100.0 + ANSWER_WITHIN_S - 0.01)["status"] == "sent"
    assert status(s, "101", "r4", 100.0 + ANSWER_WITHIN_S)["status"] == "no answer"
    assert ANSWER_WITHIN_S > 30.0  # past the room's max age: it refuses anything older


def test_unknown_request_ids_and_other_rooms_change_nothing() -> None:
    s = SiteState("s1")
    s.command_sent("101", "claim", "alice", "r5", 100.0)
    s.apply("101", "events", event(1, "call_claimed", "someone-else", call_id="c"), 101.0)
    # the same request id answered by another room is not this room's answer
    s.apply("102", "events", event(1, "call_claimed", "r5", room="102", call_id="c"), 101.0)
    assert status(s, "101", "r5", 101.0)["status"] == "sent"
    assert s.commands("102", 101.0) == []
    # and a command the broker never took is forgotten
    s.command_not_sent("101", "r5")
    assert s.commands("101", 101.0) == []


def test_the_table_keeps_the_most_recent_per_room() -> None:
    s = SiteState("s1")
    for i in range(KEPT_PER_ROOM + 5):
        s.command_sent("101", "phase", "alice", f"r{i}", 100.0 + i)
    s.command_sent("102", "claim", "alice", "other", 100.0)
    kept = s.commands("101", 200.0)
    assert len(kept) == KEPT_PER_ROOM
    assert kept[0]["request_id"] == f"r{KEPT_PER_ROOM + 4}"  # newest first
    assert "r4" not in {c["request_id"] for c in kept}
    # an answer for a dropped command changes nothing
    s.apply("101", "events", event(1, "phase_changed", "r0", phase="infusion"), 201.0)
    assert all(c["status"] != "applied" for c in s.commands("101", 201.0))
    assert len(s.commands("102", 200.0)) == 1
