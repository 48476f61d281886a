"""Local HTTP receivers on loopback for the notifier tests: one that accepts, one that fails
for a while (HTTP 503 for its first N requests), one that hangs (reads the request, never
answers until the test ends). Each records what it was sent."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.mqtt import wait_until


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self, mode: str = "accept", fail_first: int = 0) -> None:
        self.mode, self.fail_first = mode, fail_first
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.release = threading.Event()  # the hanging receiver answers once this is set
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with owner.lock:
                    owner.requests.append(Received(self.path, dict(self.headers), body))
                    n = len(owner.requests)
                if owner.mode == "hang":
                    owner.release.wait(60)
                    return
                status = 503 if n <= owner.fail_first else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def got(self) -> list[Received]:
        with self.lock:
            return list(self.requests)

    def wait_count(self, n: int, timeout: float = 30.0) -> list[Received]:
        wait_until(lambda: len(self.got()) >= n, timeout, f"{n} requests at {self.url}")
        return self.got()
