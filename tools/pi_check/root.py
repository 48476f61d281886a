"""The arm64 Debian 12 root of `make pi-check`, the aarch64 wheels, and the chroot inventory.

How this works: qemu user-mode emulation (Debian's `qemu-user-static`, registered with the
kernel's binfmt_misc by `binfmt-support`, flag F) lets this machine run aarch64 binaries
directly, so `chroot ROOT /usr/bin/python3` runs Debian's arm64 Python. The root is built
once with `debootstrap --foreign` (arm64 packages from Debian's archive) and the second
stage inside the chroot, then kept as a tarball in `build/pi-check/`; every check unpacks a
fresh copy. The wheels come from PyPI by the route docs/PROVISIONING.md gives technicians
(`pip download --platform ..._aarch64`), and the project's own Ansible room role installs
them through the chroot connection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build" / "pi-check"
BIN = Path(sys.executable).parent
SUITE = "bookworm"
MIRROR = os.environ.get("PI_CHECK_MIRROR", "http://deb.debian.org/debian")
ROOT_PACKAGES = "python3,python3-venv,python3-packaging,ca-certificates"
# The Pis' platform (Raspberry Pi OS bookworm: aarch64, Python 3.11, glibc 2.36), exactly
# as docs/PROVISIONING.md section 5 downloads it.
PLATFORMS = (
    "manylinux_2_36_aarch64",
    "manylinux_2_34_aarch64",
    "manylinux_2_28_aarch64",
    "manylinux2014_aarch64",
)
BINFMT = Path("/proc/sys/fs/binfmt_misc")


class CheckFailed(Exception):
    """A step of the check failed; the message says which and why."""


def run(argv: Sequence[object], what: str, timeout: float = 1800, **kw: object) -> str:
    """Run a command; CheckFailed with the tail of its output if it fails."""
    proc = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,  # type: ignore[call-overload]
    )
    if proc.returncode != 0:
        tail = (proc.stdout[-2500:] + "\n" + proc.stderr[-2500:]).strip()
        raise CheckFailed(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return str(proc.stdout)


def ensure_binfmt() -> None:
    """Mount binfmt_misc if needed and make sure the kernel runs aarch64 through qemu."""
    if os.geteuid() != 0:
        raise CheckFailed("make pi-check needs root (debootstrap, chroot, binfmt_misc)")
    if not (BINFMT / "register").exists():
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", BINFMT], "mounting binfmt_misc")
    if not (BINFMT / "qemu-aarch64").exists():
        run(["update-binfmts", "--enable", "qemu-aarch64"], "registering qemu-aarch64")
    if "enabled" not in (BINFMT / "qemu-aarch64").read_text():
        raise CheckFailed("binfmt_misc has qemu-aarch64 but it is disabled")


def root_tarball() -> Path:
    """The arm64 minbase root (built with debootstrap when missing, then cached)."""
    tarball = BUILD / f"debian-{SUITE}-arm64-minbase.tar"
    if tarball.exists():
        return tarball
    build = BUILD / "root-build"
    shutil.rmtree(build, ignore_errors=True)
    BUILD.mkdir(parents=True, exist_ok=True)
    run(
        [
            *["debootstrap", "--arch=arm64", "--foreign", "--variant=minbase"],
            *[f"--include={ROOT_PACKAGES}", SUITE, build, MIRROR],
        ],
        f"debootstrap (first stage) from {MIRROR}",
    )
    run(["chroot", build, "/debootstrap/debootstrap", "--second-stage"], "debootstrap stage 2")
    partial = tarball.with_suffix(".partial")
    run(["tar", "-C", build, "-cf", partial, "."], "packing the root")
    partial.rename(tarball)
    shutil.rmtree(build, ignore_errors=True)
    return tarball


def unpack_root(dest: Path) -> Path:
    """A fresh root from the cached tarball, dressed as a Pi (boot partition, no daemons)."""
    dest.mkdir(parents=True)
    run(["tar", "-C", dest, "-xf", root_tarball()], "unpacking the root")
    (dest / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
    (dest / "usr/sbin/policy-rc.d").chmod(0o755)
    (dest / "boot/firmware").mkdir(parents=True, exist_ok=True)
    (dest / "boot/firmware/cmdline.txt").write_text("console=serial0,115200 console=tty1\n")
    (dest / "etc/udev/rules.d").mkdir(parents=True, exist_ok=True)
    # The chroot resolves names with the host's resolver (apt reaches Debian's archive).
    shutil.copy2("/etc/resolv.conf", dest / "etc/resolv.conf")
    arch = run(["chroot", dest, "/usr/bin/dpkg", "--print-architecture"], "dpkg in the root")
    if arch.strip() != "arm64":
        raise CheckFailed(f"the root is {arch.strip()}, not arm64")
    return dest


def tracked_tree(dest: Path) -> Path:
    """A copy of the files git tracks, as they are in the work tree (uncommitted edits too),
    and nothing else: a wheel built in the checkout itself takes setuptools' `build/lib`
    along, whose files from an earlier build can be newer than the sources and then win."""
    listed = subprocess.run(
        ["git", "-C", REPO, "ls-files", "-z"], check=True, capture_output=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        src = REPO / name
        if src.is_file():  # a tracked file deleted in the work tree is not built
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def aarch64_wheels(dest: Path) -> tuple[Path, int]:
    """roomctl's wheel and the room extra's dependencies for aarch64 (PROVISIONING.md 5)."""
    own_dir = dest / "own"
    room = dest / "room"
    source = tracked_tree(dest / "source")
    run(
        [BIN / "pip", "wheel", "-q", "--no-deps", "-w", own_dir, source], "building roomctl's wheel"
    )
    (own,) = own_dir.glob("roomctl-*.whl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    run(
        [
            *[BIN / "pip", "download", "-q", "-c", REPO / "constraints.txt"],
            *["--only-binary=:all:", "--python-version", "3.11", *platforms],
            *["-d", room, f"{own}[room]"],
        ],
        "downloading the aarch64 wheels from PyPI",
        env=env,
    )
    return room, len(list(room.glob("*.whl")))


def inventory(root: Path, wheels: Path, broker_port: int, monitor_port: int) -> dict[str, object]:
    """One room, reached through the chroot connection, on the host's Mosquitto and monitor."""
    return {
        "rooms": {
            "hosts": {str(root): {}},
            "vars": {
                "ansible_connection": "community.general.chroot",
                "ansible_python_interpreter": "/usr/bin/python3",
                "roomctl_manage_services": False,
                "room_controller_site": "picheck",
                "room_controller_room": "101",
                "room_controller_wheel_src": str(wheels),
                "room_controller_broker_url": f"mqtt://127.0.0.1:{broker_port}",
                "room_controller_simulate": True,
                "room_controller_clock": "synced",
                "room_controller_monitor": {
                    "protocol": "masimo",
                    "transport": "tcp-client",
                    "address": f"127.0.0.1:{monitor_port}",
                },
            },
        }
    }


def provision(work: Path, inventory_file: Path) -> None:
    """Run the project's room_controller role on the root (tools/pi_check/room.yml)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "ANSIBLE_"))}
    env |= {
        "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_CONFIG": str(REPO / "ansible" / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(REPO / "ansible" / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOME": str(work / "ansible-home"),
    }
    playbook = Path(__file__).with_name("room.yml")
    run(
        [BIN / "ansible-playbook", "-i", inventory_file, playbook],
        "provisioning with the room_controller role",
        env=env,
    )
