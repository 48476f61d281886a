"""Helpers for the board's limit tests: raw sockets from chosen loopback addresses (all of
127.0.0.0/8 is local on Linux, so an attacker and a nurse can have different addresses), a
plain HTTP client bound to an address, the real `roomctl board` process under a given
open-files limit, and a Chromium that waits at a gate before printing (so a test can hold
renders in flight without guessing how long they take).
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.board.users import BoardDB
from broker.mosquitto.run import free_port, wait_port
from tests.support.board import CHROMIUM, PASSWORDS, SITE

HALF_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "  # never finished
HALF_BODY = (  # headers complete, the body never is
    b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\n\r\nusername=al"
)


def slow_socket(port: int, source: str, body: bool = False) -> socket.socket:
    """A connection that sends half a request line and headers (or whole headers and part
    of a body: `body`), then nothing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.sendall(HALF_BODY if body else HALF_REQUEST)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server has closed this socket (EOF, reset, or an answer then EOF)."""
    sock.setblocking(False)
    try:
        data = sock.recv(4096)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return data == b"" or data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.1 503")


def read_until_closed(sock: socket.socket, timeout: float = 20.0, limit: int = 1 << 20) -> bytes:
    """Everything the server sends until it closes (or `limit` bytes, or the timeout)."""
    sock.settimeout(timeout)
    out = b""
    try:
        while len(out) < limit:
            data = sock.recv(65536)
            if not data:
                break
            out += data
    except (ConnectionResetError, TimeoutError):
        pass
    return out


def status_of(raw: bytes) -> int:
    line = raw.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) >= 2 and line[1].isdigit() else 0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class WebClient:
    """A plain HTTP/1.1 client from one source address, keeping the session cookie."""

    port: int
    source: str = "127.0.0.1"
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str = ""
    timeout: float = 30.0

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=self.timeout, source_address=(self.source, 0)
        )

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        conn = self.connect()
        try:
            hdrs = dict(headers or {})
            if self.cookies:
                hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            for value in resp.headers.get_all("set-cookie") or []:
                name, _, rest = value.partition("=")
                val = rest.split(";", 1)[0].strip('"')
                if val:
                    self.cookies[name] = val
                else:
                    self.cookies.pop(name, None)
            return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()

    def login(self, name: str, password: str) -> Answer:
        """The login form, with the double-submit token as a browser would send it."""
        self.cookies["roomctl_login"] = "t0ken"
        form = urllib.parse.urlencode(
            {"username": name, "password": password, "login_csrf": "t0ken", "next": "/"}
        ).encode()
        answer = self.request(
            "POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        if answer.status == 303 and "roomctl_session" in self.cookies:
            self.csrf = self.whoami_csrf()
        return answer

    def whoami_csrf(self) -> str:
        page = self.request("GET", "/").body.decode()
        marker = 'name="csrf-token" content="'
        start = page.find(marker)
        return page[start + len(marker) : page.find('"', start + len(marker))] if start >= 0 else ""

    def act(self, path: str, body: dict[str, Any]) -> Answer:
        return self.request(
            "POST",
            path,
            json.dumps(body).encode(),
            {"Content-Type": "application/json", "X-CSRF-Token": self.csrf},
        )

    def logged_in(self) -> bool:
        return self.request("GET", "/api/whoami").status == 200


@contextmanager
def open_stream(client: WebClient) -> Iterator[http.client.HTTPResponse]:
    """The live event stream (SSE) of a logged-in client, open until the block ends."""
    conn = client.connect()
    try:
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        conn.request("GET", "/api/stream", headers={"Cookie": cookie})
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        yield resp
    finally:
        conn.close()


def stream_ends(resp: http.client.HTTPResponse, max_lines: int = 10_000) -> bool:
    """Read the stream until the server ends it (True) or `max_lines` were read (False).
    A socket timeout (the connection's) raises: the stream stayed open."""
    return any(resp.readline() == b"" for _ in range(max_lines))


@dataclass
class BoardProcess:
    """`roomctl board` as production runs it, in its own process, with an open-files limit
    like systemd's default (soft = hard, so the board cannot raise it)."""

    proc: subprocess.Popen[str]
    port: int
    board_db: Path

    @property
    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


@contextmanager
def board_process(
    broker_url: str, tmp: Path, open_files: int, extra: list[str] | None = None
) -> Iterator[BoardProcess]:
    board_db = tmp / "board.sqlite"
    users = BoardDB(board_db)
    users.add_user("alice", "nurse", PASSWORDS["alice"])
    users.close()
    port = free_port()

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "board", "--broker", broker_url,
         "--site", SITE, "--board-db", str(board_db), "--port", str(port), *(extra or [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=limit_files,
    )  # fmt: skip
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read() if proc.stderr else ""))
    reader.start()
    try:
        wait_port("127.0.0.1", port, 20)
        yield BoardProcess(proc, port, board_db)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        reader.join(10)
        if proc.stderr is not None:
            proc.stderr.close()
        assert "Traceback" not in "".join(err), "".join(err)


def gated_chromium(tmp: Path) -> tuple[Path, Path, Path]:
    """A Chromium that notes each start in `started/` and waits while `gate` is locked
    (flock), then runs the real Chromium with its arguments. Returns (script, gate, started)."""
    gate, started = tmp / "gate.lock", tmp / "started"
    gate.touch()
    started.mkdir()
    script = tmp / "chromium-gated"
    script.write_text(
        "#!/bin/sh\n"
        f'touch "{started}/$$"\n'
        f'flock -s "{gate}" true\n'
        f'exec {CHROMIUM} "$@"\n'
    )
    script.chmod(0o755)
    return script, gate, started
