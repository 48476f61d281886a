"""The wheel the Ansible roles install carries everything the programs read at run time."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _copy_project(dest: Path) -> None:
    """The project's own files (no build/ or egg-info left behind by earlier builds)."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)


@pytest.mark.slow
def test_wheel_contains_templates_static_files_and_broker_configs(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "wheels"
    _copy_project(src)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("roomctl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    needed = [
        p.relative_to(REPO).as_posix()
        for folder in (
            "broker/board/templates",
            "broker/board/static",
            "broker/mosquitto/templates",
        )
        for p in (REPO / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    assert needed, "nothing to check"
    missing = [n for n in needed if n not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert "controller/cli.py" in names and "firmware_py/monitors/masimo.py" in names
    shipped_tools = sorted(n for n in names if n.startswith("tools/"))
    assert not shipped_tools, f"developer tooling in the wheel: {shipped_tools}"
