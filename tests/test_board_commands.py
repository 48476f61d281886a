"""What became of a staff command: sent, then applied or refused from the room's own answer
(an `events` message carrying the command's request id), or no answer; never from the PUBACK.

The tracking is tested on `SiteState` with an injected clock (the 35 s bound passes in
microseconds); the API and the tile in real headless Chromium against a real Mosquitto, the
room being played by contract-valid messages published with paho.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import APIResponse, Page, expect

from broker.board.commands import ANSWER_WITHIN_S, KEPT_PER_ROOM
from broker.board.live import SiteState
from broker.mosquitto.run import Mosquitto
from contract import topics
from contract.timefmt import format_ts
from tests.support.board import SITE, BoardServer, FakeRoom, login
from tests.support.mqtt import Recorder, wait_until

WAIT_MS = 15_000
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


# -- the API and the tile, with a real Mosquitto and real Chromium --------------------------


@pytest.fixture
def recorder(mosquitto: Mosquitto) -> Iterator[Recorder]:
    with Recorder(mosquitto.url, [topics.all_rooms_filter(SITE)]) as rec:
        yield rec


def _post(page: Page, base: str, path: str, body: dict[str, Any]) -> APIResponse:
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    return page.request.post(
        base + path,
        data=json.dumps(body),
        headers={"Content-Type": "application/json", "X-CSRF-Token": csrf},
    )


def _commands(page: Page, base: str, room: str) -> list[dict[str, Any]]:
    resp = page.request.get(f"{base}/api/rooms/{room}/commands")
    assert resp.status == 200
    got: list[dict[str, Any]] = resp.json()["commands"]
    return got


def _is_cmd(m: Any) -> bool:
    return "/cmd/" in m.topic


@pytest.mark.broker
def test_api_answers_with_the_request_id_and_refuses_an_offline_room(
    board: BoardServer, page: Page, recorder: Recorder
) -> None:
    room = FakeRoom(recorder, "121")
    room.online()
    room.state("idle")
    wait_until(lambda: board.board.state.view("121", 0.0) is not None, 10, "board saw room 121")
    login(page, board.url, "alice")
    resp = _post(page, board.url, "/api/rooms/121/phase", {"phase": "pre_check", "confirm": True})
    assert resp.status == 200
    rid = resp.json()["request_id"]
    assert resp.json()["status"] == "sent"
    assert recorder.wait_for(_is_cmd).json()["request_id"] == rid
    [cmd] = _commands(page, board.url, "121")
    assert cmd["request_id"] == rid and cmd["status"] == "sent" and cmd["by"] == "alice"
    room.event("phase_changed", from_phase="idle", phase="pre_check", detail={"request_id": rid})
    wait_until(
        lambda: _commands(page, board.url, "121")[0]["status"] == "applied", 10, "applied"
    )

    # the room goes offline: the board says so and sends nothing
    recorder.publish(topics.availability(SITE, "121"), "offline", retain=True)
    wait_until(lambda: board.board.state.is_offline("121"), 10, "board saw room 121 offline")
    mark = len(recorder.messages)
    resp = _post(page, board.url, "/api/rooms/121/phase", {"phase": "infusion", "confirm": True})
    assert resp.status == 409
    assert resp.json()["error"] == "room 121 is offline: command not sent"
    # a marker published after the refusal arrives after anything the board would have sent
    recorder.publish(f"{topics.site_prefix(SITE)}/room/121/test-marker", "after")
    recorder.wait_for(lambda m: m.topic.endswith("/test-marker"), since=mark)
    assert [m.topic for m in recorder.messages[mark:] if _is_cmd(m)] == []
    assert [c["request_id"] for c in _commands(page, board.url, "121")] == [rid]
    audit = board.board.users.audit_rows()
    assert any(a[2] == "phase" and a[5] == "not sent: room offline" for a in audit)


def _set_phase(page: Page, room: str, phase: str) -> None:
    page.locator(f"#room-{room}").get_by_role("button", name="Set phase…").click()
    dialog = page.locator("#phase-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("#phase-select").select_option(phase)
    dialog.get_by_role("button", name="Confirm phase change").click()


@pytest.mark.broker
def test_claim_is_sent_then_applied_only_from_the_room_answer(
    board: BoardServer, page: Page, recorder: Recorder
) -> None:
    room = FakeRoom(recorder, "122")
    room.online()
    room.state("recovery")
    room.call("placed", call_id="c-122", priority="normal", placed_at=room.env()["ts"])
    login(page, board.url, "alice")
    tile = page.locator("#room-122")
    claim = tile.get_by_role("button", name="Claim call in room 122")
    claim.click()
    rid = recorder.wait_for(lambda m: m.topic.endswith("/cmd/claim/board")).json()["request_id"]
    status = tile.locator(".cmd-status")
    expect(status).to_have_attribute("data-status", "sent", timeout=WAIT_MS)
    expect(status).to_have_text("… Claim by alice: sent, waiting for the room")
    expect(status).to_have_attribute("data-request-id", rid)
    expect(claim).to_be_disabled()
    # other news from the room (a reading, another event) does not answer the claim
    room.vitals(spo2=97, pulse_rate=70)
    room.event("call_placed", call_id="c-122", priority="normal")
    expect(tile.locator(".v-spo2")).to_have_text("97", timeout=WAIT_MS)
    expect(status).to_have_attribute("data-status", "sent")
    room.event("call_claimed", call_id="c-122", by="alice", detail={"request_id": rid})
    expect(status).to_have_attribute("data-status", "applied", timeout=WAIT_MS)
    expect(status).to_have_text("✓ Claim by alice: applied by the room")


@pytest.mark.broker
def test_refused_phase_change_shows_the_room_reason_and_offline_disables_actions(
    board: BoardServer, page: Page, recorder: Recorder
) -> None:
    room = FakeRoom(recorder, "123")
    room.online()
    room.state("pre_check", session_id="s-123")
    login(page, board.url, "alice")
    tile = page.locator("#room-123")
    expect(tile.locator(".phase-name")).to_have_text("Pre-check", timeout=WAIT_MS)
    _set_phase(page, "123", "infusion")
    rid = recorder.wait_for(lambda m: m.topic.endswith("/cmd/phase/board")).json()["request_id"]
    status = tile.locator(".cmd-status")
    expect(status).to_have_attribute("data-status", "sent", timeout=WAIT_MS)
    expect(status).to_contain_text("Phase → Infusion by alice: sent")
    reason = "session s-123 was ended in the room"
    room.event("phase_refused", from_phase="pre_check", phase="infusion", reason=reason,
               detail={"request_id": rid})  # fmt: skip
    expect(status).to_have_attribute("data-status", "refused", timeout=WAIT_MS)
    expect(status).to_have_text(f"✕ Phase → Infusion by alice: refused: {reason}")
    expect(tile.locator(".phase-name")).to_have_text("Pre-check")

    # the room goes offline: the actions say so and cannot be used
    phase_button = tile.get_by_role("button", name="Set phase…")
    expect(phase_button).to_be_enabled()
    recorder.publish(topics.availability(SITE, "123"), "offline", retain=True)
    expect(tile.locator(".avail")).to_have_text("✕ OFFLINE", timeout=WAIT_MS)
    expect(phase_button).to_be_disabled()
    expect(tile.locator(".offline-note")).to_be_visible()
    expect(tile.locator(".offline-note")).to_have_text("room offline: commands are not sent")


@pytest.mark.broker
def test_a_command_the_room_never_answers_says_no_answer(
    board: BoardServer, page: Page, recorder: Recorder
) -> None:
    room = FakeRoom(recorder, "124")
    room.online()
    room.state("idle")
    login(page, board.url, "alice")
    tile = page.locator("#room-124")
    expect(tile.locator(".phase-name")).to_have_text("Idle", timeout=WAIT_MS)
    _set_phase(page, "124", "pre_check")
    recorder.wait_for(lambda m: m.topic.endswith("/cmd/phase/board"))
    status = tile.locator(".cmd-status")
    expect(status).to_have_attribute("data-status", "sent", timeout=WAIT_MS)
    # the board's clock passes the bound (the room refuses anything older: nothing will come)
    board.board.clock = lambda: time.time() + ANSWER_WITHIN_S + 1
    assert _commands(page, board.url, "124")[0]["status"] == "no answer"
    room.vitals(spo2=96, pulse_rate=72)  # any news from the room redraws its tile
    expect(status).to_have_attribute("data-status", "no answer", timeout=WAIT_MS)
    expect(status).to_have_text(
        "? Phase → Pre-check by alice: no answer from the room (not confirmed)"
    )


@pytest.mark.broker
def test_the_phase_dialog_offers_only_what_the_room_allows_next(
    board: BoardServer, page: Page, recorder: Recorder
) -> None:
    room = FakeRoom(recorder, "125")
    room.online()
    room.state("pre_check", session_id="s-125")
    login(page, board.url, "alice")
    tile = page.locator("#room-125")
    expect(tile.locator(".phase-name")).to_have_text("Pre-check", timeout=WAIT_MS)
    dialog = page.locator("#phase-dialog")
    options = dialog.locator("#phase-select option")
    tile.get_by_role("button", name="Set phase…").click()
    expect(options).to_have_text(["Infusion", "Idle (end session)"])
    dialog.get_by_role("button", name="Cancel").click()
    # in recovery before the minimum is over: discharge is shown, greyed, with its time
    soon = format_ts(datetime.now(UTC) + timedelta(minutes=20))
    room.state("recovery", session_id="s-125", min_recovery_end=soon)
    expect(tile.locator(".phase-name")).to_have_text("Recovery", timeout=WAIT_MS)
    tile.get_by_role("button", name="Set phase…").click()
    expect(options).to_have_count(1)
    expect(options.first).to_contain_text("Discharge ready (not before")
    expect(options.first).to_be_disabled()
    expect(dialog.get_by_role("button", name="Confirm phase change")).to_be_disabled()
    expect(dialog.locator("#phase-error")).to_have_text("no phase change is possible now")
