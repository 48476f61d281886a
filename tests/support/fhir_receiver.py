"""A FHIR server stand-in on loopback: records every request and answers from a script.

`FhirReceiver(answers)` serves on 127.0.0.1 (a free port) in a thread; each POST takes the
next `(status, body, headers)` of `answers` (the last one repeats). Used as a context manager.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, dict[str, Any] | None, dict[str, str]]


def transaction_response(bundle: dict[str, Any], status: str = "201 Created") -> dict[str, Any]:
    """What a FHIR server answers to a transaction: one response per entry."""
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [{"response": {"status": status}} for _ in bundle.get("entry", [])],
    }


def outcome(severity: str, code: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": text}],
    }


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FhirReceiver:
    answers: list[Answer]
    requests: list[Received] = field(default_factory=list)
    echo_transaction: bool = False  # answer a transaction-response built from the request

    def __enter__(self) -> FhirReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                receiver.requests.append(Received(self.path, dict(self.headers), body))
                n = min(len(receiver.requests), len(receiver.answers)) - 1
                status, doc, headers = receiver.answers[n]
                if doc is None and receiver.echo_transaction and status < 300:
                    doc = transaction_response(body)
                data = json.dumps(doc).encode() if doc is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/fhir"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
