"""The Ansible tree: role layout, READMEs in step with defaults, syntax, ansible-lint.

The converge test (roles applied for real to a Debian root) is test_ansible_converge.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ANSIBLE_DIR = Path(__file__).resolve().parents[1] / "ansible"
BIN = Path(sys.executable).parent
ROLES = ["base", "room_controller", "pki", "central"]
PLAYBOOKS = ["site.yml", "rooms.yml", "walk-test.yml", "replace-room.yml"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(ANSIBLE_DIR / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["NO_COLOR"] = "1"
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def _defaults(role: str) -> dict[str, object]:
    data = yaml.safe_load((ANSIBLE_DIR / "roles" / role / "defaults/main.yml").read_text())
    assert isinstance(data, dict)
    return data


def readme_variables(text: str) -> list[str]:
    """The names in the first column of the README's `## Variables` table."""
    section = text.split("## Variables", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\|\s*`([a-z0-9_]+)`\s*\|", section, re.MULTILINE)


@pytest.mark.parametrize("role", ROLES)
def test_role_layout(role: str) -> None:
    path = ANSIBLE_DIR / "roles" / role
    for folder in ("defaults", "tasks", "handlers", "templates", "meta"):
        assert (path / folder).is_dir(), f"{role}/{folder}"
    for file in ("defaults/main.yml", "tasks/main.yml", "handlers/main.yml", "meta/main.yml"):
        assert (path / file).is_file(), f"{role}/{file}"
    assert (path / "README.md").is_file()


@pytest.mark.parametrize("role", ROLES)
def test_readme_lists_exactly_the_defaults(role: str) -> None:
    listed = readme_variables((ANSIBLE_DIR / "roles" / role / "README.md").read_text())
    assert len(listed) == len(set(listed)), f"{role}: a variable is listed twice"
    defaults = set(_defaults(role))
    assert set(listed) == defaults, (
        f"{role}: missing from README {sorted(defaults - set(listed))}, "
        f"not in defaults {sorted(set(listed) - defaults)}"
    )


def test_readme_check_catches_a_missing_variable() -> None:
    text = "## Variables\n\n| Variable | Default |\n|---|---|\n| `a_x` | 1 |\n\n## More\n| `a_y` |"
    assert readme_variables(text) == ["a_x"]


@pytest.mark.parametrize("role", ROLES)
def test_defaults_are_prefixed_with_the_role_name(role: str) -> None:
    for name in _defaults(role):
        assert name.startswith(f"{role}_"), name


def test_inventory_example_parses() -> None:
    proc = subprocess.run(
        [BIN / "ansible-inventory", "--list"],
        cwd=ANSIBLE_DIR,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "room-101" in proc.stdout and "central-downtown" in proc.stdout


def test_every_playbook_passes_syntax_check() -> None:
    proc = subprocess.run(
        [BIN / "ansible-playbook", "--syntax-check", *PLAYBOOKS],
        cwd=ANSIBLE_DIR,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for playbook in PLAYBOOKS:
        assert f"playbook: {playbook}" in proc.stdout


@pytest.mark.slow
def test_ansible_lint_production_profile() -> None:
    proc = subprocess.run(
        [
            BIN / "ansible-lint",
            "--offline",
            "--project-dir",
            ".",
            "--profile",
            "production",
            "--strict",
        ],
        cwd=ANSIBLE_DIR,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    assert "Profile 'production' was required, and it passed" in proc.stdout + proc.stderr
    # No rule may be skipped: no config that skips or warns, no inline noqa.
    for folder in (ANSIBLE_DIR, ANSIBLE_DIR.parent):
        for name in (".ansible-lint", ".ansible-lint.yml", ".ansible-lint-ignore", ".config"):
            assert not (folder / name).exists(), folder / name
    for path in ANSIBLE_DIR.rglob("*.yml"):
        assert "noqa" not in path.read_text(), path


def test_example_rooms_render_configs_that_pass_check_config(tmp_path: Path) -> None:
    """The role's config task, run on the example inventory: check-config must accept each."""
    import tomllib

    hosts = yaml.safe_load((ANSIBLE_DIR / "inventory/example/hosts.yml").read_text())
    rooms = hosts["all"]["children"]["site_downtown"]["children"]["rooms"]["hosts"]
    for name in rooms:
        (tmp_path / name).mkdir()
    playbook = tmp_path / "render.yml"
    playbook.write_text(
        "- name: Render the example rooms' configs\n"
        "  hosts: rooms\n"
        "  connection: local\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Render\n"
        "      ansible.builtin.import_role:\n"
        "        name: room_controller\n"
        "        tasks_from: config.yml\n"
    )
    extra = {
        "ansible_python_interpreter": sys.executable,
        "room_controller_venv": sys.prefix,
        "room_controller_user": "root",
        "room_controller_config_dir": f"{tmp_path}/{{{{ inventory_hostname }}}}",
        "room_controller_manage_services": False,
        "room_controller_check_files": False,  # no certificates here: the settings only
    }
    proc = subprocess.run(
        [BIN / "ansible-playbook", "-i", ANSIBLE_DIR / "inventory/example/hosts.yml",
         "-e", json.dumps(extra), playbook],
        cwd=ANSIBLE_DIR, env=_env(), capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    configs = {name: tomllib.loads((tmp_path / name / "room.toml").read_text()) for name in rooms}
    assert configs["room-101"]["monitor"]["protocol"] == "masimo"
    assert configs["room-102"]["monitor"]["transport"] == "mllp-listen"
    assert configs["room-102"]["gpio"]["ambient_red_pin"] == 18
    assert configs["room-101"]["alerts"]["infusion"][0]["name"] == "spo2_low"
    assert configs["room-101"]["commands"] == {"max_age_s": 30, "delegates": ["board"]}
    assert configs["room-102"]["dome"] == {
        "kind": "sections",
        "sections": {"white": 20, "red": 21, "green": 26},
    }
    assert configs["room-102"]["call_types"]["bath"]["tier_s"] == [45, 60]
    assert configs["room-102"]["monitor_alarms"]["map"] == {"low_battery": "ignore"}
    assert "dome" not in configs["room-101"]
    assert all(c["site"] == "downtown" for c in configs.values())
