"""Pytest fixtures for the board tests, imported by tests/conftest.py: the board on the
per-test broker, one headless Chromium per test module, and a fresh page (own context) per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from broker.mosquitto.run import Mosquitto
from tests.support.board import BoardServer, chromium


@pytest.fixture
def board(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[BoardServer]:
    """The real board (accounts alice/nurse and victor/viewer) on the `mosquitto` broker."""
    server = BoardServer(mosquitto.url, tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, shared by the tests of one module."""
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies from an earlier test), 1280x900."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()
