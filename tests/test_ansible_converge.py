"""The Ansible roles converge for real on a Debian root, and a second run changes nothing.

How this works: a Debian bookworm root made with `debootstrap --variant=minbase` (plus
python3, which Raspberry Pi OS ships) is cached as a tarball under ~/.cache/roomctl-test/
(keyed by suite and architecture) and built when missing, from the host's own Debian mirror.
Each run unpacks it into a temporary folder, makes it look like a Pi's SD card
(/boot/firmware/config.txt and cmdline.txt as Raspberry Pi OS writes them), and runs
`site.yml` against it (the central host and room 101 in one root) through Ansible's chroot
connection (community.general.chroot, bundled in the `ansible` package), with
`roomctl_manage_services: false` since no systemd runs in a chroot. The package is installed
from this checkout's wheel plus, per host, the wheels of its extra's dependencies from PyPI
(pip --no-index --find-links on the target): the central side gets `roomctl[central]` in its
own venv and wheel folder, the room `roomctl[room]` with the room's wheels only, as on two
hosts. Downloaded .debs and wheels are cached between runs.

Then the rendered files are checked for real: each unit with `systemd-analyze verify
--root`, the room config with `roomctl room check-config` (inside the root), the generated
Mosquitto config by starting the root's Mosquitto on a free loopback port and connecting
with the issued client certificates, the backup script by running it.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sqlite3
import subprocess
import threading
import time
import tomllib

import pytest

from contract.mqtt import close_client
from tests.support.ansible_converge import (
    CENTRAL_VENV,
    PI_CONFIG_TXT,
    ROOM,
    ROOM_VENV,
    SITE,
    Converged,
    chroot_run,
    play_recap,
    start_root_mosquitto,
    stop_root_mosquitto,
    uid_gid,
    unit_settings,
)
from tests.support.wheel_metadata import extra_requirements

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _check_run(run: subprocess.CompletedProcess[str]) -> dict[str, int]:
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    recap = play_recap(run.stdout)
    assert recap["failed"] == 0 and recap["unreachable"] == 0, recap
    return recap


def test_first_run_converges(converged: Converged) -> None:
    recap = _check_run(converged.runs[0])
    assert recap["changed"] > 20, recap
    print(f"converge: {converged.seconds[0]:.0f} s, {recap}")


def test_second_run_changes_nothing(converged: Converged) -> None:
    assert len(converged.runs) == 2, "the first run failed"
    recap = _check_run(converged.runs[1])
    changed = re.findall(r"^changed: .*$", converged.runs[1].stdout, re.MULTILINE)
    assert recap["changed"] == 0, converged.runs[1].stdout[-6000:]
    assert not changed
    print(f"second run: {converged.seconds[1]:.0f} s, {recap}")


def _installed(converged: Converged, venv: str) -> set[str]:
    proc = chroot_run(
        converged.root,
        f"{venv}/bin/python",
        "-c",
        "import importlib.metadata as m, json, re; "
        "print(json.dumps([re.sub(r'[-_.]+', '-', d.metadata['Name']).lower() "
        "for d in m.distributions()]))",
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout))


def test_each_host_installs_its_extra_only(converged: Converged) -> None:
    (wheel,) = (converged.root.parent / "wheels/own").glob("roomctl-*.whl")
    room, central = extra_requirements(wheel, "room"), extra_requirements(wheel, "central")
    in_room = _installed(converged, ROOM_VENV)
    assert room <= in_room, in_room
    assert not in_room & central, f"central packages in the room's venv: {in_room & central}"
    in_central = _installed(converged, CENTRAL_VENV)
    assert central <= in_central, in_central
    assert not in_central & room, f"room packages in the central venv: {in_central & room}"
    on_pi = {p.name.split("-")[0].replace("_", "-").lower()
             for p in (converged.root / "opt/roomctl/wheels").glob("*.whl")}  # fmt: skip
    assert "roomctl" in on_pi and not on_pi & central, on_pi
    proc = chroot_run(converged.root, f"{ROOM_VENV}/bin/python", "-c", "import starlette")
    assert "ModuleNotFoundError" in proc.stderr, proc.stdout + proc.stderr


UNITS = [
    "roomctl-room.service",
    "roomctl-logger.service",
    "roomctl-board.service",
    "roomctl-notify.service",
    "roomctl-backup.service",
    "roomctl-backup.timer",
]


@pytest.mark.parametrize("unit", UNITS)
def test_unit_passes_systemd_analyze_verify(converged: Converged, unit: str) -> None:
    path = converged.root / "etc/systemd/system" / unit
    assert path.is_file()
    proc = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            f"--root={converged.root}",
            f"/etc/systemd/system/{unit}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Unknown keys and bad values are only warnings: nothing may be printed at all.
    assert proc.returncode == 0 and not proc.stderr.strip() and not proc.stdout.strip(), (
        proc.stdout + proc.stderr
    )


def test_room_unit_is_hardened_and_enabled(converged: Converged) -> None:
    unit = converged.root / "etc/systemd/system/roomctl-room.service"
    s = unit_settings(unit)
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert int(s["WatchdogSec"][0]) > 0 and s["Restart"] == ["always"]
    assert s["ExecStart"] == [
        "/opt/roomctl/venv/bin/roomctl room run --config /etc/roomctl/room.toml"
    ]
    assert s["ProtectSystem"] == ["strict"] and s["ReadWritePaths"] == ["/var/lib/roomctl"]
    assert s["NoNewPrivileges"] == ["true"] and s["PrivateTmp"] == ["true"]
    assert s["SupplementaryGroups"] == ["gpio dialout"] and s["User"] == ["roomctl"]
    wants = converged.root / "etc/systemd/system/multi-user.target.wants/roomctl-room.service"
    assert os.readlink(wants) == "/etc/systemd/system/roomctl-room.service"


def test_room_config_passes_check_config(converged: Converged) -> None:
    proc = chroot_run(
        converged.root,
        "/opt/roomctl/venv/bin/roomctl",
        "room",
        "check-config",
        "/etc/roomctl/room.toml",
    )
    assert proc.returncode == 0, proc.stderr
    assert "ok (site testsite, room 101" in proc.stdout
    config = tomllib.loads((converged.root / "etc/roomctl/room.toml").read_text())
    assert config["broker"] == {
        "url": f"mqtts://central.test:{converged.port}",
        "ca": "/etc/roomctl/tls/ca.crt",
        "cert": "/etc/roomctl/tls/room.crt",
        "key": "/etc/roomctl/tls/room.key",
    }
    assert config["gpio"] == {"call_pin": 5, "cancel_pin": 6, "status_pin": 16}
    assert config["monitor"]["protocol"] == "masimo"
    assert config["alerts"]["infusion"][0]["threshold"] == 92
    assert config["scenes"] == {"infusion": "calm"}


def test_notifier_config_loads_and_its_secret_is_private(converged: Converged) -> None:
    code = (
        "from pathlib import Path; from broker.notifier.config import load; "
        "c = load(Path('/etc/roomctl/notifier.toml')); "
        "print(c.name, c.charge_nurse, c.assignments, len(c.webhook_secret()))"
    )
    proc = chroot_run(converged.root, f"{CENTRAL_VENV}/bin/python", "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["main", "carol", "{'101':", "'carol'}", "22"]
    secret = converged.root / "etc/roomctl/notifier-webhook.secret"
    assert secret.stat().st_mode & 0o777 == 0o640
    assert (converged.root / "etc/roomctl/tls/notifier.key").stat().st_mode & 0o777 == 0o600


def test_keys_are_private_and_stay_on_the_control_node(converged: Converged) -> None:
    root = converged.root
    roomctl_uid, _ = uid_gid(root, "roomctl")
    mosquitto_uid, _ = uid_gid(root, "mosquitto")
    for key, uid in [
        ("etc/roomctl/tls/room.key", roomctl_uid),
        ("etc/roomctl/tls/logger.key", roomctl_uid),
        ("etc/mosquitto/roomctl-pki/server.key", mosquitto_uid),
    ]:
        st = (root / key).stat()
        assert (st.st_mode & 0o777, st.st_uid) == (0o600, uid), key
    shipped = {p.name for p in (root / "etc").rglob("*.key")}
    assert "ca.key" not in shipped
    assert not list((root / "etc/mosquitto/roomctl-pki/clients").glob("*.key"))
    assert (converged.pki / "ca.key").stat().st_mode & 0o077 == 0


def test_user_groups_and_udev_rule(converged: Converged) -> None:
    groups = {
        line.split(":")[0]: line.split(":")[3].split(",")
        for line in (converged.root / "etc/group").read_text().splitlines()
    }
    assert "roomctl" in groups["gpio"] and "roomctl" in groups["dialout"]
    rule = (converged.root / "etc/udev/rules.d/90-roomctl-monitor.rules").read_text()
    assert re.search(
        r'^SUBSYSTEM=="tty", ATTRS\{idVendor\}=="0403", ATTRS\{idProduct\}=="6001", '
        r'ATTRS\{serial\}=="A10K1234", SYMLINK\+="roomctl-monitor"',
        rule,
        re.MULTILINE,
    )


def test_uart_enabled_and_serial_console_off(converged: Converged) -> None:
    boot = converged.root / "boot/firmware"
    config = (boot / "config.txt").read_text()
    assert config.startswith(PI_CONFIG_TXT)  # the Pi's own settings are kept
    block = config[len(PI_CONFIG_TXT) :]
    assert block.splitlines()[1:4] == ["[all]", "enable_uart=1", "dtoverlay=disable-bt"]
    cmdline = (boot / "cmdline.txt").read_text()
    assert cmdline.count("\n") == 1 and "console=serial0" not in cmdline
    assert cmdline.startswith("console=tty1 root=PARTUUID=4e639091-02 ")
    assert os.readlink(converged.root / "etc/systemd/system/serial-getty@ttyAMA0.service") == (
        "/dev/null"
    )


def test_generated_mosquitto_config_runs_with_the_pki(converged: Converged) -> None:
    import paho.mqtt.client as mqtt

    proc, out = start_root_mosquitto(converged)
    clients: list[mqtt.Client] = []
    try:
        assert out.wait_for(" running", 20), "".join(out.lines)

        def client(identity: str) -> tuple[mqtt.Client, threading.Event]:
            c = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2, client_id=identity, protocol=mqtt.MQTTv5
            )
            pki = converged.pki
            c.tls_set(
                ca_certs=str(pki / "ca.crt"),
                certfile=str(pki / "clients" / f"{identity}.crt"),
                keyfile=str(pki / "clients" / f"{identity}.key"),
            )
            connected = threading.Event()
            c.on_connect = lambda cl, u, f, rc, p=None: rc.is_failure or connected.set()
            c.connect("localhost", converged.port)
            c.loop_start()
            clients.append(c)
            assert connected.wait(10), f"{identity} could not connect: {''.join(out.lines)}"
            return c, connected

        got = threading.Event()
        logger, _ = client("logger")
        subscribed = threading.Event()
        logger.on_subscribe = lambda *a: subscribed.set()
        logger.on_message = lambda cl, u, msg: msg.payload == b"online" and got.set()
        logger.subscribe(f"clinic/{SITE}/#", qos=1)
        assert subscribed.wait(10)
        room, _ = client(f"room-{ROOM}")
        room.publish(f"clinic/{SITE}/room/{ROOM}/availability", b"online", qos=1)
        assert got.wait(10), "the room's message did not reach the logger: " + "".join(out.lines)
    finally:
        for c in clients:
            close_client(c)
            c.disconnect()
        stop_root_mosquitto(proc, out)


def test_backup_script_backs_up_and_prunes(converged: Converged) -> None:
    root = converged.root
    db = root / "var/lib/roomctl/logger.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (42)")
    conn.close()
    backups = root / "var/backups/roomctl"
    old = backups / "logger-20200101T000000Z.sqlite3.gz"
    old.write_bytes(gzip.compress(b"old"))
    forty_days_ago = time.time() - 40 * 86400
    os.utime(old, (forty_days_ago, forty_days_ago))
    proc = chroot_run(root, "/usr/local/sbin/roomctl-backup")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not old.exists()
    (made,) = backups.glob("logger-*.sqlite3.gz")
    copy = root / "tmp/restored.sqlite3"
    copy.write_bytes(gzip.decompress(made.read_bytes()))
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(42,)]
    conn.close()
