"""The converged Debian root, made once per test session and shared by the Ansible test
modules (tests/test_ansible_converge.py, tests/test_ansible_replace.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.support.ansible_converge import Converged, converge


@pytest.fixture(scope="session")
def converged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Converged]:
    result = converge(tmp_path_factory.mktemp("converge"))
    yield result
    shutil.rmtree(result.root, ignore_errors=True)
