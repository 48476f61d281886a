"""Pytest fixtures for the central-side tests, imported by tests/conftest.py.

`clinic` is a started `Clinic` (PKI, generated TLS config, real Mosquitto) in the test's
tmp_path, stopped afterwards. Its rooms come from the `clinic_rooms` fixture: a module that
needs other rooms overrides `clinic_rooms`, not `clinic`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clinic import Clinic


@pytest.fixture
def clinic_rooms() -> tuple[str, ...]:
    """The rooms the `clinic` fixture issues certificates for."""
    return ("101", "102")


@pytest.fixture
def clinic(tmp_path: Path, clinic_rooms: tuple[str, ...]) -> Iterator[Clinic]:
    """A started clinic broker (TLS, own PKI) under tmp_path/clinic, stopped afterwards."""
    with Clinic(tmp_path / "clinic", rooms=clinic_rooms) as started:
        yield started
