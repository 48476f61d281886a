"""Helpers of the Ansible converge test (tests/test_ansible_converge.py).

The Debian root (debootstrap, cached as a tarball), the wheels, the chroot inventory, one
`converge()` that runs site.yml twice, and small readers for what it left in the root.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
BIN = Path(sys.executable).parent
SUITE = "bookworm"
SITE = "testsite"
ROOM = "101"
ROOM_VENV = "/opt/roomctl/venv"
CENTRAL_VENV = "/opt/roomctl/central-venv"
CENTRAL_WHEEL_DIR = "/opt/roomctl/central-wheels"


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / "roomctl-test"
    path.mkdir(parents=True, exist_ok=True)
    return path


def arch() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], check=True, capture_output=True, text=True
    ).stdout.strip()


def host_debian_mirror() -> str:
    """The Debian mirror the host's apt uses (deb822 .sources or one-line lists)."""
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for stanza in path.read_text().split("\n\n"):
            lines = [ln for ln in stanza.splitlines() if re.match(r"^[A-Za-z-]+:", ln)]
            fields = dict(ln.split(":", 1) for ln in lines)
            suites = fields.get("Suites", "").split()
            if SUITE in suites and "deb" in fields.get("Types", "").split():
                return fields["URIs"].split()[0]
    lists = [Path("/etc/apt/sources.list"), *sorted(sources.glob("*.list"))]
    for path in lists:
        if path.is_file():
            for line in path.read_text().splitlines():
                m = re.match(rf"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+{SUITE}\s", line)
                if m:
                    return m.group(1)
    return "http://deb.debian.org/debian"


def debian_root_tarball() -> Path:
    """The cached minbase root, built with debootstrap when missing (fails loudly if it can't)."""
    tarball = cache_dir() / f"debian-{SUITE}-{arch()}-minbase.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap is missing: run `make system-deps` (apt-get install debootstrap)")
    build = cache_dir() / f"build-{SUITE}-{os.getpid()}"
    shutil.rmtree(build, ignore_errors=True)
    mirror = host_debian_mirror()
    cmd = ["debootstrap", "--variant=minbase", "--include=python3", SUITE, str(build), mirror]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        shutil.rmtree(build, ignore_errors=True)
        log = proc.stdout[-3000:] + proc.stderr[-3000:]
        pytest.fail(f"debootstrap from {mirror} failed (is the mirror reachable?):\n{log}")
    partial = tarball.with_suffix(".tar.partial")
    subprocess.run(["tar", "-C", str(build), "-cf", str(partial), "."], check=True)
    partial.rename(tarball)
    shutil.rmtree(build, ignore_errors=True)
    return tarball


EXTRAS = ("room", "central")


def wheelhouse(dest: Path) -> dict[str, Path]:
    """Per extra, a folder with this checkout's wheel and the wheels of that extra's
    dependencies only (downloaded from PyPI into a cache, then picked from it)."""
    own_dir = dest / "own"
    own_dir.mkdir(parents=True)
    subprocess.run(
        [BIN / "pip", "wheel", "-q", "--no-deps", "-w", own_dir, REPO],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (own,) = own_dir.glob("roomctl-*.whl")
    deps = cache_dir() / f"wheels-py{sys.version_info.major}{sys.version_info.minor}-{arch()}"
    # pip would take an older roomctl wheel of the same name in `deps` for this one.
    for stale in deps.glob("roomctl-*.whl"):
        stale.unlink()
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    download = [BIN / "pip", "download", "-q", "-c", REPO / "constraints.txt"]
    folders = {}
    for extra in EXTRAS:
        wanted = f"{own}[{extra}]"
        subprocess.run(
            [*download, "--only-binary=:all:", "-d", deps, wanted],
            check=True,
            capture_output=True,
            timeout=600,
            env=env,
        )
        # The cache holds every extra's wheels: pick this extra's from it, offline.
        folders[extra] = dest / extra
        subprocess.run(
            [*download, "--no-index", "--find-links", deps, "-d", folders[extra], wanted],
            check=True,
            capture_output=True,
            timeout=300,
            env=env,
        )
    for stale in deps.glob("roomctl-*.whl"):
        stale.unlink()
    return folders


PI_CONFIG_TXT = """\
# For more options and information see http://rptl.io/configtxt
dtparam=audio=on
camera_auto_detect=1
display_auto_detect=1
auto_initramfs=1
dtoverlay=vc4-kms-v3d
max_framebuffers=2
disable_fw_kms_setup=1
arm_64bit=1
disable_overscan=1
arm_boost=1

[cm4]
otg_mode=1

[all]
"""
PI_CMDLINE_TXT = (
    "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 "
    "fsck.repair=yes rootwait quiet splash plymouth.ignore-serial-consoles\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Converged:
    root: Path
    pki: Path
    port: int
    runs: list[subprocess.CompletedProcess[str]]
    seconds: list[float]


def chroot_inventory(
    root: Path, pki: Path, wheels: dict[str, Path], port: int
) -> dict[str, object]:
    host = {str(root): {}}
    return {
        "all": {
            "vars": {
                "ansible_connection": "community.general.chroot",
                "ansible_python_interpreter": "/usr/bin/python3",
                "ansible_become": False,
                "roomctl_manage_services": False,
                "clinic_pki_dir": str(pki),
                "pki_site": SITE,
                "pki_dir": str(pki),
                "pki_roomctl": str(BIN / "roomctl"),
                "pki_broker_hostnames": ["central.test"],
                "pki_identities": [
                    {"kind": "room", "name": ROOM},
                    {"kind": "logger"},
                    {"kind": "notifier", "name": "main"},
                ],
                "pki_staff": ["board"],
                "base_admin_ssh_keys": [
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3R0ZXN0dGVzdHRlc3R0ZXN0dGVz tech@t"
                ],
                "base_ntp_servers": ["ntp.test"],
                "central_site": SITE,
                "central_pki_src": str(pki),
                # Central and the room share this root: each gets its own venv and wheel
                # folder (as on two hosts), so the room's venv holds only roomctl[room].
                "central_wheel_src": str(wheels["central"]),
                "central_wheel_dir": CENTRAL_WHEEL_DIR,
                "central_venv": CENTRAL_VENV,
                "central_mqtt_tls_port": port,
                "central_mqtt_bind": "127.0.0.1",
                "central_notifier_enabled": True,
                "central_notifier_charge_nurse": "carol",
                "central_notifier_webhook_url": "https://pager.test/roomctl",
                "central_notifier_webhook_secret": "test-secret-0123456789",
                "central_notifier_staff": [{"name": "carol", "ntfy_topic": "roomctl-carol"}],
                "central_notifier_assignments": {ROOM: "carol"},
                "room_controller_site": SITE,
                "room_controller_room": ROOM,
                "room_controller_pki_src": str(pki),
                "room_controller_wheel_src": str(wheels["room"]),
                "room_controller_broker_url": f"mqtts://central.test:{port}",
                "room_controller_gpio": {"call_pin": 5, "cancel_pin": 6, "status_pin": 16},
                "room_controller_monitor": {
                    "protocol": "masimo",
                    "transport": "serial",
                    "address": "/dev/roomctl-monitor",
                    "baudrate": 9600,
                },
                "room_controller_timing": {"planned_infusion_min": 40},
                "room_controller_alerts": {
                    "infusion": [
                        {
                            "name": "spo2_low",
                            "field": "spo2",
                            "op": "below",
                            "threshold": 92,
                            "persistence_s": 10,
                        }
                    ],
                },
                "room_controller_scenes": {"infusion": "calm"},
                "room_controller_monitor_usb_vendor": "0403",
                "room_controller_monitor_usb_product": "6001",
                "room_controller_monitor_usb_serial": "A10K1234",
            },
            "children": {"central": {"hosts": host}, "rooms": {"hosts": host}},
        }
    }


def play_recap(output: str) -> dict[str, int]:
    m = re.search(r"^\S+\s+:\s+(ok=.*)$", output.split("PLAY RECAP")[-1], re.MULTILINE)
    assert m, output[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


def ansible_env(work: Path) -> dict[str, str]:
    # The chroot connection passes the environment on: no PIP_* settings of this machine.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "ANSIBLE_"))}
    return env | {
        "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOME": str(work / "ansible-home"),
    }


def converge(work: Path) -> Converged:
    """Unpack the root, dress it as a Pi, run site.yml on it twice."""
    assert os.geteuid() == 0, "the chroot connection needs root"
    root = work / "root"
    root.mkdir()
    subprocess.run(["tar", "-C", root, "-xf", debian_root_tarball()], check=True)
    # No package postinst may start a daemon on the host's network.
    (root / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
    (root / "usr/sbin/policy-rc.d").chmod(0o755)
    boot = root / "boot/firmware"
    boot.mkdir(parents=True)
    (boot / "config.txt").write_text(PI_CONFIG_TXT)
    (boot / "cmdline.txt").write_text(PI_CMDLINE_TXT)
    debs = cache_dir() / f"debs-{SUITE}-{arch()}"
    debs.mkdir(exist_ok=True)
    archives = root / "var/cache/apt/archives"
    for deb in debs.glob("*.deb"):
        shutil.copy2(deb, archives / deb.name)
    wheels = wheelhouse(work / "wheels")
    pki = work / "pki"
    port = free_port()
    inventory = work / "inventory.json"
    inventory.write_text(json.dumps(chroot_inventory(root, pki, wheels, port), indent=1))
    env = ansible_env(work)
    runs, seconds = [], []
    for _ in range(2):
        start = time.monotonic()
        runs.append(
            subprocess.run(
                [BIN / "ansible-playbook", "-i", inventory, "site.yml"],
                cwd=ANSIBLE_DIR,
                env=env,
                capture_output=True,
                text=True,
                timeout=480,
            )
        )
        seconds.append(time.monotonic() - start)
        if runs[-1].returncode != 0:
            break
    for deb in archives.glob("*.deb"):
        if not (debs / deb.name).exists():
            shutil.copy2(deb, debs / deb.name)
    return Converged(root, pki, port, runs, seconds)


def unit_settings(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def chroot_run(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chroot", str(root), *argv], capture_output=True, text=True, timeout=60)


def uid_gid(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise AssertionError(f"no user {user} in the root")


class OutputLines:
    """Collects a process's output lines in a thread; `wait_for` blocks on an event."""

    def __init__(self, proc: subprocess.Popen[str]):
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self.lines.append("<exit>")
            self._cond.notify_all()

    def join(self) -> None:
        self._thread.join(timeout=10)

    def wait_for(self, text: str, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: any(text in ln or ln == "<exit>" for ln in self.lines), timeout
            ) and any(text in ln for ln in self.lines)


def start_root_mosquitto(converged: Converged) -> tuple[subprocess.Popen[str], OutputLines]:
    """The root's Mosquitto with the config the central role generated."""
    proc = subprocess.Popen(
        [
            "chroot",
            str(converged.root),
            "/usr/sbin/mosquitto",
            "-v",
            "-c",
            "/etc/mosquitto/mosquitto.conf",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, OutputLines(proc)


def stop_root_mosquitto(proc: subprocess.Popen[str], out: OutputLines) -> None:
    proc.terminate()
    proc.wait(timeout=10)
    out.join()
    assert proc.stdout is not None
    proc.stdout.close()
