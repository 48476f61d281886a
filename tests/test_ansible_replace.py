"""On the converged Debian root (tests/support/ansible_fixtures.py): a bad room config is
refused and the old one kept; replacing a room (replace-room.yml) starts its numbering
above the floor and revokes its old certificate."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.ansible_converge import (
    ANSIBLE_DIR,
    BIN,
    ROOM,
    Converged,
    ansible_env,
    play_recap,
    start_root_mosquitto,
    stop_root_mosquitto,
    uid_gid,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def test_a_bad_room_config_is_refused_and_the_old_one_kept(converged: Converged) -> None:
    """The role's template task validates with check-config: a bad pin never lands."""
    import yaml

    role = ANSIBLE_DIR / "roles/room_controller"
    variables = yaml.safe_load((role / "defaults/main.yml").read_text())
    inventory = json.loads((converged.root.parent / "inventory.json").read_text())
    variables |= inventory["all"]["vars"]
    variables["room_controller_gpio"] = {"call_pin": 5, "cancel_pin": 5}
    extra = converged.root.parent / "bad-vars.json"
    extra.write_text(json.dumps(variables))
    before = (converged.root / "etc/roomctl/room.toml").read_text()
    args = (
        f"src={role / 'templates/room.toml.j2'} dest=/etc/roomctl/room.toml "
        "validate='/opt/roomctl/venv/bin/roomctl room check-config %s'"
    )
    proc = subprocess.run(
        [BIN / "ansible", "-i", f"{converged.root},", "-c", "community.general.chroot",
         "-e", f"@{extra}", "-m", "ansible.builtin.template", "-a", args, "all"],
        cwd=ANSIBLE_DIR, env=ansible_env(converged.root.parent), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0, proc.stdout
    assert "gpio: cancel_pin and call_pin both use GPIO5" in proc.stdout, proc.stdout
    assert (converged.root / "etc/roomctl/room.toml").read_text() == before


def test_a_replacement_pi_numbers_messages_above_the_floor(converged: Converged) -> None:
    """replace-room.yml's seq floor, run on the root: the daemon's Outbox continues above it."""
    from controller.outbox import Outbox

    work = converged.root.parent
    playbook = work / "seq-floor.yml"
    playbook.write_text(
        "- name: Seed the outbox of a replacement Pi\n"
        f"  hosts: {json.dumps(str(converged.root))}\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Seed\n"
        "      ansible.builtin.import_role:\n"
        "        name: room_controller\n"
        "        tasks_from: seq_floor.yml\n"
    )
    outbox = converged.root / "var/lib/roomctl/outbox.sqlite3"
    assert not outbox.exists()
    recaps = []
    for _ in range(2):
        proc = subprocess.run(
            [BIN / "ansible-playbook", "-i", work / "inventory.json",
             "-e", "room_controller_seq_floor=123456", playbook],
            cwd=ANSIBLE_DIR, env=ansible_env(work), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-4000:]
        recaps.append(play_recap(proc.stdout))
    assert recaps[0]["changed"] == 2 and recaps[1]["changed"] == 0, recaps
    st = outbox.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (uid_gid(converged.root, "roomctl")[0], 0o640)
    box = Outbox(outbox)
    try:
        assert box.last_seq == 123456
    finally:
        box.close()


def test_replacing_a_room_revokes_its_old_certificate(converged: Converged) -> None:
    """replace-room.yml's certificate steps on the root (last: it changes the PKI): the pki
    role's replace.yml issues a new room certificate and revokes the old one, the central
    role's broker.yml gives the broker the CRL; the old Pi is refused, the new one connects."""
    from tests.support.clinic import raw_connect

    work, pki, cn = converged.root.parent, converged.pki, f"room-{ROOM}"
    old_pi = work / "old-pi"
    old_pi.mkdir()
    old_cert = Path(shutil.copy(pki / "clients" / f"{cn}.crt", old_pi))
    old_key = Path(shutil.copy(pki / "clients" / f"{cn}.key", old_pi))
    playbook = work / "replace-cert.yml"
    playbook.write_text(
        "- name: Replace the room's certificate\n"
        f"  hosts: {json.dumps(str(converged.root))}\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: New certificate, the old one revoked\n"
        "      ansible.builtin.include_role:\n"
        "        name: pki\n"
        "        tasks_from: replace.yml\n"
        "      vars:\n"
        "        pki_replace_kind: room\n"
        f"        pki_replace_name: {json.dumps(ROOM)}\n"
        "    - name: The broker gets the certificate and the CRL\n"
        "      ansible.builtin.include_role:\n"
        "        name: central\n"
        "        tasks_from: broker.yml\n"
    )
    proc = subprocess.run(
        [BIN / "ansible-playbook", "-i", work / "inventory.json", playbook],
        cwd=ANSIBLE_DIR, env=ansible_env(work), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert (converged.root / "etc/mosquitto/roomctl-pki/crl.pem").read_bytes() == (
        pki / "crl.pem"
    ).read_bytes()
    new_cert, new_key = pki / "clients" / f"{cn}.crt", pki / "clients" / f"{cn}.key"
    assert new_cert.read_bytes() != old_cert.read_bytes()
    broker, out = start_root_mosquitto(converged)
    try:
        assert out.wait_for(" running", 20), "".join(out.lines)
        ca = pki / "ca.crt"
        outcome = raw_connect(converged.port, ca, old_cert, old_key, tls12=True)
        assert "CERTIFICATE_REVOKED" in outcome, outcome + "".join(out.lines)
        assert raw_connect(converged.port, ca, new_cert, new_key, tls12=True) == "connack:0"
    finally:
        stop_root_mosquitto(broker, out)
