"""Fan-out of "this room changed" from the MQTT thread to every open event stream.

How this works: each stream is a `Subscriber` with a set of dirty room ids and an
`asyncio.Event`. `notify_threadsafe(room)` (any thread) schedules `_mark` on the loop, which
adds the room to every subscriber's set and sets its event. The stream wakes, takes the whole
set and sends the *current* view of each room. So a slow browser never makes a queue grow:
changes coalesce per room (bounded by the number of rooms) and the newest state always wins.
`None` means a site-wide change (broker link, logger status). A stream that shows one room
(or none: `room=""`) still gets `QUEUE` for any other room's change, since the site's queue
is on every page.

A stream opened by a login session carries that session's key: `close_sessions(keys)` (at
logout) and `close_all_but(live_keys)` (the board's watcher, when a session expired or its
account was removed or disabled) mark it closed and wake it, and the stream ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

SITE = ""  # the dirty-set key for a site-wide change
QUEUE = "\x00queue"  # another room changed: only the site's queue is to be sent again


@dataclass(eq=False)
class Subscriber:
    room: str | None = None  # only this room's changes (room page), or every room
    session: str | None = None  # the login session's key (None: --no-auth)
    closed: bool = False  # its session ended: the stream must end
    dirty: set[str] = field(default_factory=set)
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self) -> set[str]:
        out, self.dirty = self.dirty, set()
        self.event.clear()
        return out


class Hub:
    def __init__(self) -> None:
        self._subs: set[Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, room: str | None = None, session: str | None = None) -> Subscriber:
        sub = Subscriber(room, session)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subs.discard(sub)

    def close_sessions(self, keys: set[str]) -> int:
        """End the streams of these sessions (call on the loop); how many were ended."""
        ended = 0
        for sub in self._subs:
            if sub.session is not None and sub.session in keys and not sub.closed:
                sub.closed = True
                sub.event.set()
                ended += 1
        return ended

    def close_all_but(self, live: set[str]) -> int:
        """End every stream whose session is not among the live ones."""
        keys = {s.session for s in self._subs if s.session is not None} - live
        return self.close_sessions({k for k in keys if k is not None})

    def session_keys(self) -> set[str]:
        return {s.session for s in self._subs if s.session is not None}

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def notify_threadsafe(self, room: str | None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop closed since the check (shutdown)
            loop.call_soon_threadsafe(self._mark, room)

    def _mark(self, room: str | None) -> None:
        key = SITE if room is None else room
        for sub in self._subs:
            if room is not None and sub.room is not None and sub.room != room:
                sub.dirty.add(QUEUE)
            else:
                sub.dirty.add(key)
            sub.event.set()
