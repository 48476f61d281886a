"""The wheel the Ansible roles install: everything the programs read at run time is in it,
and what a room Pi installs (`roomctl[room]`) is what a room needs, with no web stack.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.support.wheel_metadata import canonical_name, extra_requirements

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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's wheel, built once for the module (no dependencies)."""
    tmp_path = tmp_path_factory.mktemp("wheel")
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
    return wheel


@pytest.mark.slow
def test_wheel_contains_templates_static_files_and_broker_configs(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    needed = [
        p.relative_to(REPO).as_posix()
        for folder in (
            "broker/board/templates",
            "broker/board/static",
            "broker/mosquitto/templates",
            "firmware_py/monitors/dialect_tables",
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


# -- the room install ---------------------------------------------------------------------
# What the central host runs and a room must not import: the board's web stack, the PKI,
# the terminal status view.
CENTRAL_ONLY_IMPORTS = [
    "starlette", "uvicorn", "jinja2", "markupsafe", "argon2", "cryptography", "rich",
    "prometheus_client",
]  # fmt: skip

ROOM_TOML = """\
site = "downtown"
room = "101"
state_dir = "/tmp/roomctl-101"

[broker]
url = "mqtt://127.0.0.1:1883"

[gpio]
call_pin = 5
cancel_pin = 6

[monitor]
protocol = "masimo"
transport = "serial"
address = "/dev/serial/by-id/usb-FTDI_FT232R-if00-port0"
"""


@pytest.fixture(scope="module")
def room_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with `roomctl[room]` from the wheel, as the room_controller role does."""
    path = tmp_path_factory.mktemp("room") / "venv"
    venv.create(path, with_pip=True)
    proc = subprocess.run(
        [path / "bin/python", "-m", "pip", "install", "-q", "-c", REPO / "constraints.txt",
         f"{wheel}[room]"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return path


def _run(venv_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_dir / "bin" / argv[0], *argv[1:]], capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_room_install_has_no_central_package(room_venv: Path, wheel: Path) -> None:
    central = extra_requirements(wheel, "central")
    assert {"starlette", "uvicorn", "cryptography"} <= central
    proc = _run(
        room_venv,
        "python",
        "-c",
        "import importlib.metadata as m, json; "
        "print(json.dumps([d.metadata['Name'] for d in m.distributions()]))",
    )
    assert proc.returncode == 0, proc.stderr
    installed = {canonical_name(n) for n in json.loads(proc.stdout)}
    assert extra_requirements(wheel, "room") <= installed
    assert not installed & central, f"central packages in a room install: {installed & central}"
    for module in CENTRAL_ONLY_IMPORTS:
        proc = _run(room_venv, "python", "-c", f"import {module}")
        assert proc.returncode != 0, f"`import {module}` works in a room install"
        assert "ModuleNotFoundError" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_room_commands_run_in_a_room_install(room_venv: Path, tmp_path: Path) -> None:
    config = tmp_path / "room.toml"
    config.write_text(ROOM_TOML)
    proc = _run(room_venv, "roomctl", "room", "check-config", str(config))
    assert proc.returncode == 0, proc.stderr
    assert "ok (site downtown, room 101" in proc.stdout
    proc = _run(room_venv, "roomctl", "room", "run", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--config" in proc.stdout


@pytest.mark.slow
def test_central_commands_in_a_room_install_name_their_extra(room_venv: Path) -> None:
    proc = _run(room_venv, "roomctl", "board", "--help")
    out = proc.stdout + proc.stderr
    # argparse reflows the description to the terminal width: compare the words
    assert "pip install 'roomctl[central]'" in " ".join(out.split()), out
    assert "Traceback" not in out, out
