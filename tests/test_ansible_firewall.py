"""The base role's nftables rules and the pki role's CRL refresh timer, rendered by Ansible from
the roles' own templates and defaults: a room's HL7 port only from its monitor, the broker's
port with a per-source connection cap, the board's ports, SSH from the technicians' network.
The rules are parsed by `nft -c -f` when nftables can check here (root, Debian's nftables);
their structure is checked in any case."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ANSIBLE_DIR = Path(__file__).resolve().parents[1] / "ansible"
BIN = Path(sys.executable).parent
BASE = ANSIBLE_DIR / "roles" / "base"
PKI = ANSIBLE_DIR / "roles" / "pki"

ROOM = {
    "base_firewall_hl7_port": 2575,
    "base_firewall_hl7_sources": ["10.20.102.50"],
    "base_firewall_ssh_sources": ["10.20.9.0/24", "fd00:9::/64"],
}
CENTRAL = {
    "base_firewall_mqtt_port": 8883,
    "base_firewall_mqtt_sources": ["10.20.0.0/16"],
    "base_firewall_mqtt_per_source_max": 16,
    "base_firewall_board_ports": [8443, 8080],
    "base_firewall_board_sources": ["10.20.1.0/24"],
    "base_firewall_extra_tcp": [{"name": "node_exporter", "port": 9100, "sources": ["10.20.9.5"]}],
}


Case = tuple[str, Path, list[str], dict[str, object]]  # name, role, templates, variables


def _render_cases(tmp_path: Path, cases: list[Case]) -> dict[str, dict[str, str]]:
    """Each case's templates rendered by Ansible with the role's defaults updated by the case's
    variables: one play per case, one ansible-playbook run for all."""
    plays = []
    for name, role, templates, overrides in cases:
        variables = yaml.safe_load((role / "defaults/main.yml").read_text())
        variables.update(overrides)
        (tmp_path / name).mkdir()
        tasks = [
            {
                "name": f"Render {template}",
                "ansible.builtin.copy": {
                    "content": "{{ lookup('ansible.builtin.template', '"
                    + f"{role}/templates/{template}') }}}}",
                    "dest": str(tmp_path / name / template),
                    "mode": "0644",
                },
            }
            for template in templates
        ]
        plays.append({"name": name, "hosts": "localhost", "connection": "local",
                      "gather_facts": False, "vars": variables, "tasks": tasks})  # fmt: skip
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump(plays))
    env = {"PATH": f"{BIN}:/usr/sbin:/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg")}  # fmt: skip
    extra = {"ansible_python_interpreter": sys.executable}
    proc = subprocess.run(
        [BIN / "ansible-playbook", "-i", "localhost,", "-e", json.dumps(extra), playbook],
        cwd=ANSIBLE_DIR, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return {
        name: {t: (tmp_path / name / t).read_text() for t in templates}
        for name, _, templates, _ in cases
    }


CRL_UNITS = ["roomctl-crl-refresh.service.j2", "roomctl-crl-refresh.timer.j2"]
CRL_VARS: dict[str, object] = {
    "pki_site": "downtown",
    "pki_dir": "/home/tech/pki/downtown",
    "pki_crl_push_hosts": ["central.downtown.example"],
    "pki_crl_timer_user": "tech",
}
RULES = "nftables.conf.j2"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    return _render_cases(
        tmp_path_factory.mktemp("render"),
        [
            ("room", BASE, [RULES], ROOM),
            ("central", BASE, [RULES], CENTRAL),
            ("defaults", BASE, [RULES], {}),
            ("crl", PKI, ["roomctl-crl-refresh.j2", *CRL_UNITS], CRL_VARS),
        ],
    )


def _nft_can_check(tmp_path: Path) -> bool:
    nft = shutil.which("nft") or "/usr/sbin/nft"
    if not Path(nft).exists():
        return False
    probe = tmp_path / "probe.nft"
    probe.write_text("table inet probe {\n\tchain c {\n\t}\n}\n")
    return subprocess.run([nft, "-c", "-f", probe], capture_output=True).returncode == 0


def _nft_check(tmp_path: Path, text: str) -> None:
    if not _nft_can_check(tmp_path):
        return  # structure checked by the caller; nft needs root and Debian's nftables
    path = tmp_path / "rules.nft"
    path.write_text(text)
    nft = shutil.which("nft") or "/usr/sbin/nft"
    proc = subprocess.run([nft, "-c", "-f", path], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + "\n" + text


def _rules(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def test_a_rooms_hl7_port_is_open_to_its_monitor_only(
    tmp_path: Path, rendered: dict[str, dict[str, str]]
) -> None:
    text = rendered["room"][RULES]
    _nft_check(tmp_path, text)
    rules = _rules(text)
    assert "type filter hook input priority filter; policy drop;" in rules
    hl7 = [r for r in rules if "dport { 2575 }" in r]
    assert hl7 == ['ip saddr { 10.20.102.50 } tcp dport { 2575 } accept comment "HL7 monitor"']
    assert 'ip saddr { 10.20.9.0/24 } tcp dport { 22 } accept comment "ssh"' in rules
    assert 'ip6 saddr { fd00:9::/64 } tcp dport { 22 } accept comment "ssh"' in rules
    assert not any("8883" in r or "8443" in r for r in rules)
    assert text.index("table inet roomctl\ndelete table inet roomctl") > 0  # replaced whole


def test_the_central_hosts_services_with_a_per_source_cap_on_mqtt(
    tmp_path: Path, rendered: dict[str, dict[str, str]]
) -> None:
    text = rendered["central"][RULES]
    _nft_check(tmp_path, text)
    rules = _rules(text)
    caps = [r for r in rules if "ct count over 16" in r]
    assert len(caps) == 2 and all(r.startswith("tcp dport 8883 ct state new add @mqtt_conn_v") and
                                  "reject with tcp reset" in r for r in caps)  # fmt: skip
    accept = 'ip saddr { 10.20.0.0/16 } tcp dport { 8883 } accept comment "MQTT over TLS"'
    assert rules.index(accept) > max(rules.index(c) for c in caps)  # the cap comes first
    board = 'ip saddr { 10.20.1.0/24 } tcp dport { 8443, 8080 } accept comment "staff board"'
    assert board in rules
    assert 'ip saddr { 10.20.9.5 } tcp dport { 9100 } accept comment "node_exporter"' in rules
    assert 'tcp dport { 22 } accept comment "ssh"' in rules  # no sources given: from anywhere
    assert not any("2575" in r for r in rules)


def test_the_defaults_render_a_host_that_serves_only_ssh(
    tmp_path: Path, rendered: dict[str, dict[str, str]]
) -> None:
    text = rendered["defaults"][RULES]
    _nft_check(tmp_path, text)
    accepts = [r for r in _rules(text) if "dport" in r and r.endswith('"ssh"')]
    assert accepts == ['tcp dport { 22 } accept comment "ssh"']
    assert sum("accept" in r and "dport" in r and "udp" not in r for r in _rules(text)) == 1


def test_the_base_role_refuses_an_hl7_port_without_the_monitors_address() -> None:
    tasks = yaml.safe_load((BASE / "tasks/main.yml").read_text())
    check = next(t for t in tasks if t["name"] == "Check the firewall's variables")
    that = " ".join(check["ansible.builtin.assert"]["that"])
    assert "base_firewall_hl7_sources | length > 0" in that
    write = next(t for t in tasks if t["name"] == "Write the firewall rules (nftables)")
    assert write["ansible.builtin.template"]["validate"] == "/usr/sbin/nft -c -f %s"
    assert write["notify"] == "Reload nftables"


def test_the_crl_refresh_timer_resigns_early_and_reloads_the_broker(
    rendered: dict[str, dict[str, str]],
) -> None:
    crl_files = rendered["crl"]
    script = crl_files["roomctl-crl-refresh.j2"]
    assert "pki=/home/tech/pki/downtown\n" in script
    assert re.search(r'roomctl pki crl "\$pki" --days 180 --if-due 60', script)
    assert "central.downtown.example" in script and "systemctl reload mosquitto" in script
    assert "/etc/mosquitto/roomctl-pki/crl.pem" in script
    check = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert check.returncode == 0, check.stderr
    service, timer = (crl_files[u] for u in CRL_UNITS)
    assert "Type=oneshot" in service and "User=tech" in service
    assert "OnCalendar=daily" in timer and "Persistent=true" in timer
    defaults = yaml.safe_load((PKI / "defaults/main.yml").read_text())
    # Re-signed with 60 of 180 days left, checked daily: weeks of failed runs still leave time.
    assert defaults["pki_crl_days"] - defaults["pki_crl_refresh_days"] >= 30


@pytest.mark.parametrize("unit", CRL_UNITS)
def test_the_crl_units_pass_systemd_analyze(
    tmp_path: Path, rendered: dict[str, dict[str, str]], unit: str
) -> None:
    crl_files = rendered["crl"]
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    name = unit.removesuffix(".j2")
    path = tmp_path / name
    path.write_text(crl_files[unit].replace("User=tech", "User=root"))
    if name.endswith(".timer"):
        (tmp_path / name.replace(".timer", ".service")).write_text(
            "[Service]\nType=oneshot\nExecStart=/bin/true\n"
        )
    proc = subprocess.run([analyze, "verify", path], capture_output=True, text=True)
    problems = [ln for ln in proc.stderr.splitlines() if name in ln and "/usr/local/sbin" not in ln]
    assert not problems, proc.stderr
