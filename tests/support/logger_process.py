"""The logger as a real process (`python -m controller.cli logger ...`), to SIGKILL and restart,
and a watcher of the loggers' retained status topics."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.support.clinic import Clinic, Session


class LoggerProcess:
    """One logger process of `clinic` with certificate `cn`, writing `db` (path or URL).

    `client_id`: its MQTT client id (`cn` when None); `retention_interval_s`: how often it runs
    retention (None: the logger's own default)."""

    def __init__(
        self,
        clinic: Clinic,
        db: Path | str,
        log: Path,
        cn: str = "logger",
        client_id: str | None = None,
        retention_interval_s: float | None = 5,
    ):
        self.args = [
            sys.executable, "-m", "controller.cli", "logger", *clinic.cli_args(cn),
            "--db", str(db), "--site", clinic.site, "--client-id", client_id or cn,
        ]  # fmt: skip
        if retention_interval_s is not None:
            self.args += ["--retention-interval-s", f"{retention_interval_s:g}"]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL

    def terminate(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


def count_payloads(watcher: Session, topic: str, value: bytes) -> int:
    with watcher.cond:
        return sum(1 for m in watcher.messages if m.topic == topic and m.payload == value)


def wait_payload(watcher: Session, topic: str, value: bytes, n: int, timeout: float = 30) -> None:
    """Until `topic` has carried `value` at least `n` times."""
    with watcher.cond:
        ok = watcher.cond.wait_for(
            lambda: sum(1 for m in watcher.messages if m.topic == topic and m.payload == value)
            >= n,
            timeout,
        )
    assert ok, f"{topic} {value!r} #{n} never came"
