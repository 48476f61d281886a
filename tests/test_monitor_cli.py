"""`roomctl monitor decode` and `roomctl monitor simulate` as a user runs them."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from pathlib import Path

import pytest
import serial

from contract.messages import OPTIONAL_VITALS_FIELDS, Envelope, VitalsMessage
from controller.cli import main
from firmware_py.monitors.parsers import make_parser
from tests.support.monitor_fixtures import DATA, fixture_files, protocol_for

ROOMCTL = [sys.executable, "-m", "controller.cli"]
ENVELOPE = set(Envelope.model_fields)


def decode(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict], str]:
    code = main(["monitor", "decode", *args])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_decode_every_fixture(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    protocol = protocol_for(path)
    args = ["--protocol", protocol, str(path)]
    if path.suffix == ".hex":
        args.insert(2, "--hex")
    code, rows, err = decode(capsys, *args)
    contract_fields = set(VitalsMessage.model_fields) - ENVELOPE
    for row in rows:
        assert contract_fields - set(OPTIONAL_VITALS_FIELDS) <= set(row)
        assert set(row) - contract_fields == {"received_at"}
        assert row["protocol"] == protocol
    assert f"{protocol}: {len(rows)} readings" in err and "rejected" in err
    assert code == (1 if path.name == "not_hl7.txt" else 0)
    assert bool(rows) == (path.name != "not_hl7.txt")


def test_decode_plain_hl7_with_crlf_and_mllp_give_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (DATA / "hl7" / "ge_b40_pcd01_cuff_nibp.hl7").read_bytes()
    crlf = tmp_path / "crlf.hl7"
    crlf.write_bytes(text.replace(b"\n", b"\r\n"))
    mllp = tmp_path / "framed.mllp"
    mllp.write_bytes(b"\x0b" + text.replace(b"\n", b"\r") + b"\x1c\r")
    _, a, _ = decode(capsys, "--protocol", "hl7", str(crlf))
    _, b, _ = decode(capsys, "--protocol", "hl7", str(mllp))
    strip = [{k: v for k, v in r.items() if k != "received_at"} for r in a + b]
    assert len(strip) == 2 and strip[0] == strip[1]
    assert strip[0]["nibp_sys"] == 142.0


def test_decode_hex_from_stdin_in_a_real_process() -> None:
    data = (DATA / "nonin" / "df7_sentinels.hex").read_bytes()
    proc = subprocess.run(
        [*ROOMCTL, "monitor", "decode", "--protocol", "nonin-df7", "--hex", "-"],
        input=data, capture_output=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["pulse_rate"] for r in rows] == [None, None, 88.0]
    assert b"75 frames accepted, 0 rejected" in proc.stderr


def test_decode_errors_are_readable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "decode", "--protocol", "masimo", str(tmp_path / "nope")]) == 2
    assert "cannot read" in capsys.readouterr().err
    bad = tmp_path / "bad.hex"
    bad.write_text("01 8 zz\n")
    assert main(["monitor", "decode", "--protocol", "nonin-df2", "--hex", str(bad)]) == 2
    assert "--hex input" in capsys.readouterr().err


def first_line(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> str:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    assert sel.select(timeout), "simulator printed nothing"
    return proc.stdout.readline().decode().strip()


def test_simulate_pty_process_prints_path_first_and_streams_records() -> None:
    proc = subprocess.Popen(
        [*ROOMCTL, "monitor", "simulate", "--protocol", "masimo", "--pty",
         "--speed", "60", "--desat", "--seed", "4", "--duration", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        path = first_line(proc)
        assert path.startswith("/dev/") and os.path.exists(path)
        parser = make_parser("masimo")
        with serial.Serial(path, 9600, timeout=0.5) as port:
            for _ in range(20):  # bounded: at most 20 half-second reads
                parser.feed(port.read(256))
                if parser.frames_accepted >= 2:
                    break
        readings = list(parser.readings())
        assert len(readings) >= 2 and all(r.spo2 is not None for r in readings)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert json.loads(err.decode().strip().splitlines()[-1])["protocol"] == "masimo"


def test_simulate_help_documents_who_listens() -> None:
    proc = subprocess.run([*ROOMCTL, "monitor", "simulate", "--help"],
                          capture_output=True, timeout=60, check=True)
    text = proc.stdout.decode()
    assert "LISTENS" in text and "CONNECTS" in text and "tcp-client" in text
    assert "mllp-listen" in text


def test_simulate_refuses_bad_address(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["monitor", "simulate", "--protocol", "hl7", "--tcp", "nowhere", "--duration", "1"])
    assert code == 2 and "HOST:PORT" in capsys.readouterr().err
