"""The session report (HTML and PDF) of a scripted session stored by the logger: it covers the
chosen session, opens with the summary (patient, phases, lowest SpO2, highest NIBP, every alert
and call with its response time), says events in words, and prints as a PDF whose text
(extracted with pypdf) has the header on every page with page numbers, on A4 or Letter."""

from __future__ import annotations

import io
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypdf import PdfReader

from broker.mosquitto.run import Mosquitto
from tests.support.board import SITE, BoardServer
from tests.support.session_log import ROOM, SESSION, write_session

pytestmark = pytest.mark.broker
PATIENT = "Patient/p-1234"


@pytest.fixture
def report_board(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[BoardServer]:
    db = write_session(tmp_path / "log.db", SITE)
    # the site in New York: every time on the report is on its clock (EST), named
    server = BoardServer(
        mosquitto.url, tmp_path, no_auth=True, logger_db=db, timezone="America/New_York"
    ).start()
    try:
        yield server
    finally:
        server.stop()


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=90) as resp:
        return bytes(resp.read())


def words_of(html: str) -> str:
    """The page's text as a reader sees it: tags gone, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def summary_lines() -> list[str]:
    """What the scripted session's summary must say (tests/support/session_log.py), on the
    site's clock: the session ran 09:00-10:20 UTC on 1 March 2026, 04:00-05:20 EST."""
    return [
        PATIENT,
        "Sunday 01 March 2026",
        "America/New_York",
        "Lowest SpO2",
        "88 % at 2026-03-01 04:12:00 EST",
        "162/95 mmHg at 2026-03-01 04:20:00 EST",
        "Pre-check",
        "Infusion 04:05:00 EST 04:50:00 EST 45 min 00 s",
        "Recovery",
        "30 min 00 s",
        "Ready for discharge",
        "SpO2 88 % below the limit 90 %",
        "04:12:00 EST 04:14:00 EST 2 min 00 s",  # the alert: raised, cleared, how long
        "04:30:00 EST 42 s (claimed by alice)",
        "1 min 05 s (answered in the room)",
        "Call claimed by alice",
        "Phase: Pre-check to Infusion",
    ]


def test_report_opens_with_the_summary_in_words(report_board: BoardServer) -> None:
    html = get(f"{report_board.url}/rooms/{ROOM}/report?session={SESSION}&patient={PATIENT}")
    text = html.decode()
    seen = words_of(text)
    for line in summary_lines():
        assert line in seen, line
    assert "Session report: room 101" in text
    assert "(no session id)" not in text
    words = text[text.index('<section id="summary">') : text.index("<h2>Vitals</h2>")]
    words += text[text.index('<table id="events">') :]
    for internal in ("call_claimed", "phase_changed", "alert_raised", "nibp_sys", "spo2_low"):
        assert internal not in words, internal  # (chart legends name their alert rules)
    assert text.count("<svg") >= 3  # the vitals charts
    assert "09:12" not in seen and " UTC" not in seen  # nothing on the UTC clock


def test_report_without_a_session_covers_the_latest_one(report_board: BoardServer) -> None:
    text = get(f"{report_board.url}/rooms/{ROOM}/report").decode()
    assert f"<td>{SESSION}</td>" in text and "88 % at 2026-03-01 04:12:00 EST" in text
    empty = get(f"{report_board.url}/rooms/999/report").decode()
    assert "No session recorded for room 999" in empty and "(no session id)" not in empty


def test_a_bad_patient_reference_is_refused_by_name(report_board: BoardServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        get(f"{report_board.url}/rooms/{ROOM}/report?patient=Jane%20Doe")
    with refused.value as answer:
        assert answer.code == 400
        assert "patient 'Jane Doe' is not a patient reference" in answer.read().decode()


@pytest.mark.parametrize(("paper", "size"), [("A4", (595, 842)), ("Letter", (612, 792))])
def test_pdf_text_has_summary_header_and_page_numbers(
    report_board: BoardServer, paper: str, size: tuple[int, int]
) -> None:
    report_board.board.config.paper = paper
    pdf = get(f"{report_board.url}/rooms/{ROOM}/report.pdf?session={SESSION}&patient={PATIENT}")
    assert pdf[:5] == b"%PDF-"
    reader = PdfReader(io.BytesIO(pdf))
    pages = [" ".join(page.extract_text().split()) for page in reader.pages]
    assert len(pages) >= 2
    text = "\n".join(pages)
    for line in summary_lines():
        assert line in text, line
    for n, page_text in enumerate(pages, start=1):
        assert f"Session report · site {SITE} · room 101" in page_text, n
        assert f"session {SESSION}" in page_text, n
        assert f"Page {n} of {len(pages)}" in page_text, n
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == size
    assert "call_claimed" not in text and "(no session id)" not in text
