"""Request limits inside the board's application: bounded bodies and the PDF render queue.

How this works:

- `BodyLimit` (pure ASGI middleware, on every route) refuses a request whose declared
  `Content-Length` is over `MAX_BODY_BYTES` with 413 before reading any of it, and counts a
  chunked body as the handler reads it: past the bound the handler is stopped and the answer
  is 413, so nothing reads more than the bound (plus one socket read). The 413 closes the
  connection, so the rest of the body is never read. Handlers keep their own smaller bounds.
- `RenderQueue`: headless Chromium renders PDF reports, at most `slots` at once; up to
  `max_waiting` more wait (at most `max_wait_s`) for a slot, in the event loop (no worker
  thread is held while waiting, so a phase command's thread is always free); anything
  beyond gets 503 with `Retry-After` at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 16 * 1024  # the largest body the board takes: a login form, a command


class BodyTooLarge(Exception):
    pass


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps(
        {"ok": False, "error": f"request body too large (at most {limit} bytes)"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class BodyLimit:
    """Pure ASGI middleware: 413 for a body over `limit` bytes, before reading past it."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await _send_413(send, self.limit)
                return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await _send_413(send, self.limit)
        except ClientDisconnect:
            pass  # the body never came (closed at the request deadline, or evicted): no answer


class QueueFull(Exception):
    """No render slot: try again after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RenderQueue:
    """At most `slots` renders at once, `max_waiting` waiting, each for at most `max_wait_s`."""

    RETRY_AFTER_S = 15

    def __init__(self, slots: int = 2, max_waiting: int = 4, max_wait_s: float = 60.0):
        self.slots = slots
        self.max_waiting = max_waiting
        self.max_wait_s = max_wait_s
        self.admitted = 0  # rendering or waiting: counted on entry, before any await
        self.active = 0
        self.refused = 0
        self._free = asyncio.Semaphore(slots)

    @property
    def waiting(self) -> int:
        return self.admitted - self.active

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a render slot for the block; QueueFull when none comes (at once or in time)."""
        if self.admitted >= self.slots + self.max_waiting:
            self.refused += 1
            raise QueueFull(
                f"{self.active} reports are being printed and {self.waiting} are waiting",
                self.RETRY_AFTER_S,
            )
        self.admitted += 1
        try:
            try:
                await asyncio.wait_for(self._free.acquire(), self.max_wait_s)
            except TimeoutError:
                self.refused += 1
                raise QueueFull(
                    f"no printer slot within {self.max_wait_s:g} s", self.RETRY_AFTER_S
                ) from None
            self.active += 1
            try:
                yield
            finally:
                self.active -= 1
                self._free.release()
        finally:
            self.admitted -= 1
