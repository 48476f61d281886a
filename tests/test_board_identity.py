"""The board sends commands under the staff name in its certificate (issue 13: `by` comes from
an authenticated identity, and the broker lets a staff certificate write only under its name)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from broker.board.context import staff_name
from broker.mosquitto.pki import Pki


def test_the_staff_name_comes_from_the_certificate(tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "pki", "s1")
    assert staff_name(pki.issue("staff", "board").cert) == "board"
    assert staff_name(pki.issue("staff", "central-2").cert) == "central-2"
    assert staff_name(None) == "board"  # the loopback development listener has no ACL
    with pytest.raises(ValueError, match="'room-101' is not a staff identity"):
        staff_name(pki.issue("room", "101").cert)
    with pytest.raises(ValueError, match="cannot read the certificate"):
        staff_name(tmp_path / "missing.crt")


def test_the_board_refuses_to_start_with_a_room_certificate(tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "pki", "s1")
    room = pki.issue("room", "101")
    proc = subprocess.run(
        [sys.executable, "-m", "controller.cli", "board", "--site", "s1",
         "--broker", "mqtts://127.0.0.1:1", "--ca", str(pki.ca_cert), "--cert", str(room.cert),
         "--key", str(room.key), "--db", str(tmp_path / "log.db"), "--port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "is not a staff identity" in proc.stderr
