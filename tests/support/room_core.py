"""The room core under test: a `RoomCore` with a hand-driven clock, and readers of what
it returned (no broker, no GPIO)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from contract import topics
from contract.messages import (
    Envelope,
    EventMessage,
)
from contract.timefmt import format_ts
from controller.config import RoomConfig, build_config
from controller.core.io_types import (
    Action,
    Event,
    Instant,
    MessageReceived,
    MonitorFacts,
    Publish,
    RoomFacts,
    SetDome,
)
from controller.core.room import RoomCore

SITE, ROOM = "test", "101"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
FACTS = RoomFacts(clock_synced=True, outbox_cap=1000)
MONITORED = RoomFacts(clock_synced=True, outbox_cap=1000, monitor=MonitorFacts(enabled=True))


def config(**over: Any) -> RoomConfig:
    raw: dict[str, Any] = {"site": SITE, "room": ROOM, "simulate": True, "clock": "synced"}
    raw.update(over)
    # no board screen or notifier sends receipts in these tests: the room's local escalation
    # for a blind central side (issue 15) is off unless a test turns it on
    raw["timing"] = {"central_receipt_s": 0, **raw.get("timing", {})}
    return build_config(raw)


class Room:
    """A core with a hand-driven clock; records every action it returned."""

    def __init__(self, cfg: RoomConfig | None = None, saved: dict[str, Any] | None = None):
        self.wall, self.mono = T0, 1000.0
        self.ids = iter(f"{ROOM}-call{n}" for n in range(1, 100))
        self.core = RoomCore(
            cfg or config(),
            saved or {},
            self.now,
            version="test",
            new_call_id=lambda: next(self.ids),
        )
        self.actions: list[Action] = []

    @property
    def now(self) -> Instant:
        return Instant(self.wall, self.mono)

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds

    def feed(self, event: Event) -> list[Action]:
        out = self.core.handle(event, self.now)
        self.actions.extend(out)
        return out

    def command(
        self,
        name: str,
        body: dict[str, Any] | bytes,
        *,
        age_s: float = 0.0,
        retained: bool = False,
        sender: str = "board",
    ) -> list[Action]:
        """A staff command issued `age_s` ago (by the room's clock), sent by `sender` (the
        board, a delegate, by default)."""
        if isinstance(body, dict):
            issued = format_ts(self.wall - timedelta(seconds=age_s))
            body = json.dumps({"issued_at": issued, **body}).encode()
        return self.feed(MessageReceived(topics.cmd(SITE, ROOM, name, sender), body, retained))

    def phase(self, *phases: str) -> None:
        for p in phases:
            self.command("phase", {"phase": p, "by": "nurse.kim"})


def bodies(actions: list[Action], model: type[Envelope]) -> list[dict[str, Any]]:
    return [dict(a.body) for a in actions if isinstance(a, Publish) and a.model is model]


def events(actions: list[Action], kind: str | None = None) -> list[dict[str, Any]]:
    return [b for b in bodies(actions, EventMessage) if kind is None or b["kind"] == kind]


def domes(actions: list[Action]) -> list[SetDome]:
    return [a for a in actions if isinstance(a, SetDome)]
