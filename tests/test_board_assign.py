"""Shift assignments (issue 15): the charge nurse assigns rooms to nurses on the board (real
headless Chromium, real Mosquitto); a nurse sees her rooms first; every change is audited and
published retained for the notifier; a nurse cannot assign; an old board database gains the
charge role without losing its sessions."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from broker.board.assignments import Assignments
from broker.board.users import BoardDB
from broker.mosquitto.run import Mosquitto
from contract import topics
from tests.support.board import SITE, BoardServer, FakeRoom, login
from tests.support.mqtt import Recorder, retained

WAIT_MS = 15_000


@pytest.fixture
def recorder(mosquitto: Mosquitto) -> Iterator[Recorder]:
    with Recorder(mosquitto.url, [f"clinic/{SITE}/#"]) as rec:
        yield rec


@pytest.mark.broker
def test_charge_nurse_assigns_and_the_nurse_sees_her_rooms_first(
    mosquitto: Mosquitto, board: BoardServer, page: Page, recorder: Recorder
) -> None:
    for room in ("101", "102", "103"):
        r = FakeRoom(recorder, room)
        r.online()
        r.state("infusion")
    login(page, board.url, "rita")
    expect(page.locator(".tile")).to_have_count(3, timeout=WAIT_MS)
    page.get_by_label("Nurse for room 103").select_option("alice")
    recorder.wait_for(
        lambda m: m.topic == topics.assignments(SITE, "board") and m.json()["rooms"] != {}
    )
    retained_copy = retained(mosquitto.url, topics.assignments(SITE, "board"))  # a new subscriber
    assert retained_copy.retain and retained_copy.json()["rooms"] == {"103": "alice"}
    assert retained_copy.json()["by"] == "rita"
    assert any(a[1] == "rita" and a[2] == "assign" and a[3] == "103" and a[5] == "ok"
               for a in board.board.users.audit_rows())  # fmt: skip

    nurse = page.context.browser.new_context().new_page()  # type: ignore[union-attr]
    try:
        login(nurse, board.url, "alice")
        tiles = nurse.locator(".tile")
        expect(tiles).to_have_count(3, timeout=WAIT_MS)
        expect(tiles.first).to_have_attribute("data-room", "103", timeout=WAIT_MS)
        expect(tiles.first.locator(".assigned")).to_have_text("★ your room")
        expect(nurse.locator("#room-101 .assigned")).to_have_text("unassigned")
        # the charge nurse moves room 101 to her too: it joins her rooms at the top, live
        page.get_by_label("Nurse for room 101").select_option("alice")
        expect(tiles.nth(0)).to_have_attribute("data-room", "101", timeout=WAIT_MS)
        expect(tiles.nth(1)).to_have_attribute("data-room", "103")
        expect(tiles.nth(2)).to_have_attribute("data-room", "102")
        # a nurse cannot assign: refused and audited
        csrf = nurse.locator('meta[name="csrf-token"]').get_attribute("content") or ""
        resp = nurse.request.post(
            f"{board.url}/api/assignments",
            data=json.dumps({"room": "102", "nurse": "alice"}),
            headers={"Content-Type": "application/json", "X-CSRF-Token": csrf},
        )
        assert resp.status == 403 and "charge nurse" in resp.json()["error"]
        assert any(a[1] == "alice" and a[2] == "assign" and a[5] == "refused: nurse"
                   for a in board.board.users.audit_rows())  # fmt: skip
    finally:
        nurse.context.close()
    # unassigning, and a nurse the board does not know
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    headers = {"Content-Type": "application/json", "X-CSRF-Token": csrf}
    bad = page.request.post(f"{board.url}/api/assignments", headers=headers,
                            data=json.dumps({"room": "101", "nurse": "zoe"}))  # fmt: skip
    assert bad.status == 400 and bad.json()["error"].startswith("nurse:")
    ok = page.request.post(f"{board.url}/api/assignments", headers=headers,
                           data=json.dumps({"room": "101", "nurse": None}))  # fmt: skip
    assert ok.status == 200 and ok.json()["rooms"] == {"103": "alice"}


def test_an_old_board_database_gains_the_charge_role_and_keeps_its_sessions(
    tmp_path: Path,
) -> None:
    path = tmp_path / "board.sqlite"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN
            ('viewer', 'nurse')), pw_hash TEXT NOT NULL, created_at REAL NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE sessions (token_sha TEXT PRIMARY KEY, name TEXT NOT NULL REFERENCES
            users(name) ON DELETE CASCADE, csrf TEXT NOT NULL, created_at REAL NOT NULL,
            expires_at REAL NOT NULL);
        INSERT INTO users VALUES ('alice', 'nurse', 'x', 0, 0);
        INSERT INTO sessions VALUES ('t', 'alice', 'c', 0, 1e12);
    """)
    old.commit()
    old.close()
    db = BoardDB(path)
    try:
        assert db.conn.execute("SELECT name FROM sessions").fetchall() == [("alice",)]
        db.add_user("carol", "charge", "carol-password-1")
        assert dict(db.users()) == {"alice": "nurse", "carol": "charge"}
        shift = Assignments(db)
        shift.assign("101", "alice", "carol")
        shift.assign("102", "carol", "carol")
        shift.assign("102", None, "carol")
        assert shift.rooms() == {"101": "alice"} and shift.nurses() == ["alice", "carol"]
    finally:
        db.close()
    again = BoardDB(path)  # the second open changes nothing
    assert dict(again.users()) == {"alice": "nurse", "carol": "charge"}
    again.close()
