"""Identifiers are checked whole, everywhere (issue 13).

A room id with a trailing newline (`/api/rooms/101%0a/phase`) passed the old `re.match`
check (`$` matches before a final newline); the board published `clinic/s1/room/101\\n/...`,
Mosquitto dropped the board as "malformed packet", and paho resent it on every reconnect, so
the board never recovered.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page
from pydantic import ValidationError

from broker.mosquitto.pki import Identity, PkiError
from broker.mosquitto.run import Mosquitto
from contract import topics
from contract.messages import CallMessage, is_ident
from tests.support.board import BoardServer, login
from tests.support.mqtt import Recorder

BAD = ["101\n", "101\r\n", "\n101", "101 ", "10/1", "10+1", "10#1", "", "Room", "x" * 64]


@pytest.mark.parametrize("bad", BAD)
def test_a_bad_id_is_refused_by_every_check(bad: str) -> None:
    assert not is_ident(bad)
    with pytest.raises(ValueError):
        topics.room_topic("s1", bad, "call")
    with pytest.raises(ValueError):
        topics.site_prefix(bad)
    assert topics.parse_room_topic(f"clinic/s1/room/{bad}/call") is None
    with pytest.raises(ValidationError):
        CallMessage(
            site="s1", room=bad, epoch="0" * 16, seq=1, ts="2026-12-01T09:00:00Z",
            clock_synced=True, status="idle",
        )  # fmt: skip


def test_good_ids_pass() -> None:
    for good in ("101", "r1", "room-12_b", "x" * 63):
        assert is_ident(good) and topics.room_topic("s1", good, "call").endswith("/call")


@pytest.mark.parametrize("bad", ["101\n", "alice\n"])
def test_the_pki_refuses_a_name_with_a_newline(bad: str) -> None:
    with pytest.raises(PkiError):
        Identity.make("room", bad)
    assert Identity.from_cn(f"room-{bad}") is None


@pytest.mark.broker
def test_the_board_refuses_a_room_id_with_a_newline_and_sends_nothing(
    board: BoardServer, page: Page, mosquitto: Mosquitto
) -> None:
    login(page, board.url, "alice")
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    headers = {"Content-Type": "application/json", "X-CSRF-Token": csrf}
    with Recorder(mosquitto.url, ["clinic/#"]) as rec:
        for url in ("/api/rooms/101%0a/phase", "/api/rooms/101%0A/claim"):
            body = {"phase": "pre_check", "confirm": True, "call_id": "c"}
            resp = page.request.post(board.url + url, data=json.dumps(body), headers=headers)
            assert resp.status == 404, resp.text()
        # the board is still connected and still acts for a good id
        resp = page.request.get(board.url + "/api/rooms")
        assert resp.status == 200
    assert not [m for m in rec.messages if "/cmd/" in m.topic]
