"""Proof of delivery end to end (issue 15): with a real Mosquitto and a real room daemon, a call
no screen and no phone confirms is escalated in the room (`central_blind`, the dome's strobe,
the buzzer) until a receipt comes; an open board screen sends its receipt and shows on the
call where it has reached; the logger keeps every receipt with the staff commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from broker.logger.ingest import Command, classify
from broker.mosquitto.run import Mosquitto
from contract import topics
from contract.staff import CallReceipt
from controller.config import build_config
from tests.support.board import SITE, BoardServer, login
from tests.support.mqtt import Recorder
from tests.support.polling import poll
from tests.support.room_process import RunningRoom, start_room, stop_room

WAIT_MS = 15_000


@pytest.fixture
def recorder(mosquitto: Mosquitto) -> Iterator[Recorder]:
    with Recorder(mosquitto.url, [topics.all_rooms_filter(SITE)]) as rec:
        yield rec


def _room_config(tmp_path: Path, receipt_s: float) -> list[str]:
    cfg = tmp_path / "room.toml"
    cfg.write_text(f"[timing]\ncentral_receipt_s = {receipt_s}\n[gpio]\nbuzzer_pin = 25\n")
    (tmp_path / "room").mkdir()
    return ["--config", str(cfg)]


def _event(kind: str):  # type: ignore[no-untyped-def]
    return lambda m: m.topic.endswith("/events") and m.json()["kind"] == kind


def _press_call(recorder: Recorder, room: str = "101") -> str:
    for action in ("press", "release"):
        recorder.publish(topics.sim_button(SITE, room), {"button": "call", "action": action})
    placed = recorder.wait_for(_event("call_placed"))
    return str(placed.json()["call_id"])


@pytest.mark.broker
def test_a_call_no_screen_has_escalates_in_the_room_until_a_receipt(
    mosquitto: Mosquitto, recorder: Recorder, tmp_path: Path
) -> None:
    proc = start_room(mosquitto.url, tmp_path / "room", SITE, "101", *_room_config(tmp_path, 1))
    try:
        recorder.wait_for(lambda m: m.topic.endswith("/availability") and m.payload == b"online")
        call_id = _press_call(recorder)
        blind = recorder.wait_for(_event("central_blind"))  # nobody has it after 1 s
        assert blind.json()["call_id"] == call_id
        receipt = CallReceipt(call_id=call_id, by="nina", via="phone", where="ntfy",
                              issued_at=datetime.now(UTC))  # fmt: skip
        recorder.publish(topics.receipt(SITE, "101", "main"), receipt.model_dump_json())
        reached = recorder.wait_for(_event("central_reached"))
        assert reached.json()["call_id"] == call_id and reached.json()["by"] == "nina"
    finally:
        stop_room(proc)


@pytest.mark.broker
def test_the_buzzer_pin_sounds_while_no_screen_has_the_call_and_stops_at_the_receipt(
    mosquitto: Mosquitto, recorder: Recorder, tmp_path: Path
) -> None:
    """The real daemon on gpiozero's mock pins: the buzzer's own pin, not only the core's word."""
    config = build_config(
        {
            "site": SITE, "room": "101", "state_dir": str(tmp_path / "room"), "simulate": True,
            "clock": "synced", "broker": {"url": mosquitto.url, "reconnect_max_s": 1},
            "timing": {"central_receipt_s": 1}, "gpio": {"buzzer_pin": 25},
        }
    )  # fmt: skip
    room = RunningRoom(config)
    buzzer = room.factory.pin(25)
    room.thread.start()
    try:
        recorder.wait_for(lambda m: m.topic.endswith("/availability") and m.payload == b"online")
        assert buzzer.state == 0
        call_id = _press_call(recorder)
        recorder.wait_for(_event("central_blind"))
        poll(lambda: buzzer.state == 1, 10, "the buzzer pin driven while no screen has the call")
        receipt = CallReceipt(call_id=call_id, by="nina", via="screen", where="desk",
                              issued_at=datetime.now(UTC))  # fmt: skip
        recorder.publish(topics.receipt(SITE, "101", "main"), receipt.model_dump_json())
        recorder.wait_for(_event("central_reached"))
        poll(lambda: buzzer.state == 0, 10, "the buzzer pin released at the receipt")
    finally:
        room.daemon.stop()
        room.thread.join(15)


@pytest.mark.broker
def test_an_open_board_screen_sends_its_receipt_and_shows_where_the_call_is(
    mosquitto: Mosquitto, board: BoardServer, page: Page, recorder: Recorder, tmp_path: Path
) -> None:
    proc = start_room(mosquitto.url, tmp_path / "room", SITE, "101", *_room_config(tmp_path, 10))
    try:
        login(page, board.url, "victor")  # a viewer's screen counts: it shows the call
        expect(page.locator("#room-101 .avail")).to_have_text("● online", timeout=WAIT_MS)
        call_id = _press_call(recorder)
        got = recorder.wait_for(lambda m: m.topic == topics.receipt(SITE, "101", "board"))
        body = got.json()
        assert (body["call_id"], body["by"], body["via"]) == (call_id, "victor", "screen")
        assert not got.retain
        row = page.locator("#queue-list .q-item")
        expect(row.locator(".q-proof")).to_have_text("seen on 1 screen", timeout=WAIT_MS)
        assert not recorder.matching(_event("central_blind"))
    finally:
        stop_room(proc)


def test_the_logger_keeps_receipts_with_the_staff_commands() -> None:
    receipt = CallReceipt(call_id="c1", by="victor", via="screen", where="s1",
                          issued_at=datetime.now(UTC))  # fmt: skip
    got = classify(topics.receipt("s1", "101", "board"), receipt.model_dump_json().encode(),
                   "s1", 65536)  # fmt: skip
    assert isinstance(got, Command) and got.name == "receipt" and got.room == "101"
    bad = classify(topics.receipt("s1", "101", "board"), json.dumps({"x": 1}).encode(), "s1",
                   65536)  # fmt: skip
    assert not isinstance(bad, Command)
