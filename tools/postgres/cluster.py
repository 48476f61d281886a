"""A throw-away PostgreSQL 15 cluster for tests, benchmarks and the demo (loopback only).

How this works: `initdb` makes a cluster in a fresh folder under the system temp dir (not in
pytest's private tmp tree, which another user cannot enter), `pg_ctl -w` starts it on a free
loopback port with its unix socket in that folder, and waits until it accepts connections
(bounded by `timeout`). PostgreSQL refuses to run as root: when we are root, every server
command runs as the `postgres` user (or `nobody`) through `runuser`, and the folder is given to
that user. The superuser of the cluster is `postgres`, with `trust` auth on loopback: this is a
test fixture, never a production server. `stop()` removes the folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from broker.mosquitto.run import free_port

PG_BIN = Path(os.environ.get("ROOMCTL_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "postgres"


class PostgresNotFound(RuntimeError):
    pass


def _run_as() -> tuple[list[str], str | None]:
    """The command prefix that drops root (and the user it drops to), or nothing."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"], name
    raise PostgresNotFound("running as root and neither a postgres nor a nobody user exists")


class PostgresCluster:
    """One PostgreSQL server in a temp folder. `start()`, `url(db)`, `restart()`, `stop()`.

    `durable=False` (tests) turns fsync off: the cluster is thrown away, and a crash test kills
    the server process, not the machine. Benchmarks keep the defaults (`durable=True`).
    """

    def __init__(self, durable: bool = False, port: int | None = None):
        if not (PG_BIN / "initdb").exists():
            raise PostgresNotFound(
                f"no PostgreSQL binaries in {PG_BIN} (apt-get install -y postgresql-15)"
            )
        self.durable = durable
        self.port = port or free_port()
        self.prefix, self.user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="roomctl-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.started = False

    # -- plumbing ------------------------------------------------------------------------
    def _cmd(self, *args: str, timeout: float = 120.0) -> None:
        got = subprocess.run(
            [*self.prefix, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if got.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{Path(args[0]).name} failed ({got.returncode}): {got.stderr.strip()}\n{log}"
            )

    def url(self, dbname: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> PostgresCluster:
        if not self.data.exists():
            if self.user is not None:
                shutil.chown(self.root, self.user)
            self._cmd(
                str(PG_BIN / "initdb"),
                "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
            )  # fmt: skip
            settings = [
                "listen_addresses = '127.0.0.1'",
                f"port = {self.port}",
                f"unix_socket_directories = '{self.root}'",
                "max_connections = 100",
                "shared_buffers = 64MB",
                "log_min_messages = warning",
            ]
            if not self.durable:
                # not `synchronous_commit = off`: a COMMIT must reach the OS before it returns,
                # or an immediate restart (a crash test) loses rows the logger already acked
                settings += ["fsync = off", "full_page_writes = off"]
            with (self.data / "postgresql.conf").open("a") as fh:
                fh.write("\n".join(settings) + "\n")
        self._cmd(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-w", "-t", str(int(timeout)), "start",
            timeout=timeout + 10,
        )  # fmt: skip
        self.started = True
        return self

    def stop(self, mode: str = "fast", remove: bool = True) -> None:
        """Stop the server (`mode` immediate = a crash, recovered at the next start)."""
        if self.started:
            self._cmd(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
            self.started = False
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def restart(self, mode: str = "immediate", timeout: float = 60.0) -> None:
        """Stop (by default as a crash: no checkpoint, clients cut) and start again, same port
        and data."""
        self.stop(mode=mode, remove=False)
        self.start(timeout=timeout)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
