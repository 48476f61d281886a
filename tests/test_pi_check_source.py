"""`make pi-check` builds roomctl's wheel from a copy of the tracked files only: a wheel built
in the checkout took setuptools' stale `build/lib` along (an old `daemon.py` crashed the room
under qemu), and untracked files must never reach a Pi."""

from __future__ import annotations

import shutil
from pathlib import Path

from tools.pi_check.root import REPO, tracked_tree


def test_the_wheel_source_is_the_tracked_files_as_they_are_in_the_work_tree(
    tmp_path: Path,
) -> None:
    had_build = (REPO / "build").exists()
    stale = REPO / "build" / "lib" / "controller"
    stale.mkdir(parents=True, exist_ok=True)
    marker = stale / "stale_from_an_old_build.py"
    marker.write_text("raise SystemExit('stale')\n")
    try:
        tree = tracked_tree(tmp_path / "source")
        assert (tree / "pyproject.toml").read_bytes() == (REPO / "pyproject.toml").read_bytes()
        daemon = tree / "controller" / "daemon.py"
        assert daemon.read_bytes() == (REPO / "controller" / "daemon.py").read_bytes()
        assert not (tree / "build").exists()
        assert not (tree / ".venv").exists()
    finally:
        marker.unlink()
        if not had_build:  # a clean clone: leave it as it was
            shutil.rmtree(REPO / "build")
