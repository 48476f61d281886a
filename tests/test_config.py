"""Room configuration: TOML + flags, and messages that name the field and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli import main
from controller.config import ConfigError, build_config, load_config

GOOD = """
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

[timing]
min_recovery_min = 30

[[alerts.infusion]]
name = "spo2_low"
field = "spo2"
op = "below"
threshold = 90
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "room.toml"
    path.write_text(text)
    return path


def test_good_file_loads(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.room == "101" and cfg.gpio.call_pin == 5
    assert cfg.monitor.protocol == "masimo"
    assert cfg.alerts is not None


def test_flags_override_file(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, GOOD), {"room": "102", "broker": {"url": "mqtt://127.0.0.1:9"}}
    )
    assert cfg.room == "102" and cfg.broker.url == "mqtt://127.0.0.1:9"
    assert cfg.gpio.call_pin == 5


def test_runs_with_flags_alone() -> None:
    cfg = build_config({}, {"site": "s", "room": "r", "state_dir": "/tmp/x"})
    assert cfg.broker.url.startswith("mqtt://")


@pytest.mark.parametrize(
    ("edit", "field", "says"),
    [
        (("call_pin = 5", "call_pin = 40"), "gpio", "BCM"),
        (("cancel_pin = 6", "cancel_pin = 5"), "gpio", "both use GPIO5"),
        (('room = "101"', 'room = "Room 101"'), "room", "lower-case letters, digits"),
        (('url = "mqtt://127.0.0.1:1883"', 'url = "http://x"'), "broker.url", "mqtt://"),
        (("[timing]", "[timing]\nescalate_normal_s = -1"), "timing.escalate_normal_s", "greater"),
        (("[gpio]", "[gpio]\ncall_pn = 3"), "gpio.call_pn", "unknown setting"),
        (('op = "below"', 'op = "under"'), "alerts.infusion.0.op", "below"),
    ],
)
def test_bad_file_names_field_and_file(
    tmp_path: Path, edit: tuple[str, str], field: str, says: str
) -> None:
    path = write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert str(path) in text
    assert field in text
    assert says in text


def test_missing_required_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="site: is required"):
        load_config(write(tmp_path, 'room = "1"'))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "room = "))
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.toml")


def test_monitor_needs_address_and_sane_transport(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"monitor\.address is required"):
        build_config({"site": "s", "room": "r", "monitor": {"protocol": "hl7"}})
    with pytest.raises(ConfigError, match="HOST:PORT"):
        build_config(
            {
                "site": "s",
                "room": "r",
                "monitor": {"protocol": "masimo", "transport": "tcp-client", "address": "x"},
            }
        )
    with pytest.raises(ConfigError, match="mllp-listen"):
        build_config(
            {
                "site": "s",
                "room": "r",
                "monitor": {"protocol": "hl7", "transport": "tcp-client", "address": "h:1"},
            }
        )


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, GOOD)
    assert main(["room", "check-config", str(good)]) == 0
    assert "ok" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("call_pin = 5", "call_pin = 99"))
    assert main(["room", "check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: line 9: gpio:" in err and "call_pin=99" in err


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (("call_pin = 5", 'call_pin = "x"'),
         "line 10: gpio.call_pin: must be a whole number (got 'x')"),
        (('state_dir = "/tmp/roomctl-101"', 'stat_dir = "/tmp/x"'),
         "line 4: stat_dir: unknown setting; did you mean state_dir?"),
        (("min_recovery_min = 30", "min_recovery_mins = 30"),
         "line 19: timing.min_recovery_mins: unknown setting; did you mean min_recovery_min?"),
        (('room = "101"', 'room = "Room 101"'), "line 3: room: must be lower-case letters"),
        (('op = "below"', 'op = "under"'),
         "alerts.infusion.0.op: must be one of 'below' or 'above'"),
        (("threshold = 90", "threshold = \"ninety\""), "must be a number (got 'ninety')"),
        (("[timing]", "[timing]\nescalate_normal_s = -1"), "must be greater than 0 (got -1)"),
    ],
)  # fmt: skip
def test_problems_name_the_line_and_speak_plainly(
    tmp_path: Path, edit: tuple[str, str], says: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, GOOD.replace(*edit)))
    text = str(err.value)
    assert says in text
    for library_words in ("Value error", "Input should", "String should", "^[", "pydantic"):
        assert library_words not in text


def test_check_config_checks_the_files_and_devices_it_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "room.key"
    key.write_text("k")
    tls = GOOD.replace(
        'url = "mqtt://127.0.0.1:1883"',
        f'url = "mqtts://127.0.0.1:8883"\nca = "{tmp_path}/ca.crt"\ncert = "{tmp_path}"\n'
        f'key = "{key}"',
    )
    path = write(tmp_path, tls)
    assert main(["room", "check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"broker.ca: {tmp_path}/ca.crt does not exist" in err
    assert f"broker.cert: {tmp_path} is not a file" in err
    assert "broker.key" not in err
    # a monitor not plugged in yet is a warning, not a failure
    assert (
        "warning: monitor.address: /dev/serial/by-id/usb-FTDI_FT232R-if00-port0 does not exist"
        in err
    )
    (tmp_path / "ca.crt").write_text("c")
    path.write_text(tls.replace(f'cert = "{tmp_path}"', f'cert = "{key}"'))
    assert main(["room", "check-config", str(path)]) == 0


def test_room_run_names_a_missing_file_instead_of_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD.replace(
        'url = "mqtt://127.0.0.1:1883"',
        f'url = "mqtts://127.0.0.1:8883"\nca = "{tmp_path}/absent-ca.crt"',
    ))  # fmt: skip
    assert main(["room", "run", "--config", str(path), "--simulate"]) == 2
    err = capsys.readouterr().err
    assert f"broker.ca: {tmp_path}/absent-ca.crt does not exist" in err
    assert "Traceback" not in err
