"""What became of each staff command the board sent: pure (no paho, no asyncio, no clock).

How this works: the API registers a command (room, name, by, request_id, sent time) just before
it publishes it; it is then `sent`. The room answers every command with an `events` message
whose `detail.request_id` names it: `phase_changed`, `call_claimed`, `scene_changed` (and
`call_placed`, for a test call) make it `applied`; `phase_refused` and `command_refused` make
it `refused` (with the room's `reason`). The first answer decides; an answer naming a request
id the board did not send (another sender, or one already forgotten) changes nothing. A command
with no answer `ANSWER_WITHIN_S` after it was sent is shown as `no answer`: the room refuses a
command older than its max age, so past that bound (plus a margin for the trip back) no answer
is coming, and the board says the room never confirmed it. That status is worked out when the
table is read (`recent(room, now)`), so a late answer still wins. A PUBACK only means "the
broker took it" and changes nothing here. The table keeps the last `KEPT_PER_ROOM` commands of
each room. Not thread-safe on its own: `live.SiteState` calls it under its lock.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contract.messages import EventKind, EventMessage
from contract.staff import DEFAULT_COMMAND_MAX_AGE_S
from contract.timefmt import format_ts

ANSWER_WITHIN_S = DEFAULT_COMMAND_MAX_AGE_S + 5.0  # the room's max age plus the trip back
KEPT_PER_ROOM = 20


class CommandStatus(enum.StrEnum):
    SENT = "sent"
    APPLIED = "applied"
    REFUSED = "refused"
    NO_ANSWER = "no answer"


# Which of the room's events answer a command, and how (one table: nothing else decides).
ANSWERS: dict[EventKind, CommandStatus] = {
    EventKind.PHASE_CHANGED: CommandStatus.APPLIED,
    EventKind.CALL_CLAIMED: CommandStatus.APPLIED,
    EventKind.SCENE_CHANGED: CommandStatus.APPLIED,
    EventKind.CALL_PLACED: CommandStatus.APPLIED,  # a test call (cmd/test_call)
    EventKind.PHASE_REFUSED: CommandStatus.REFUSED,
    EventKind.COMMAND_REFUSED: CommandStatus.REFUSED,
}


def _ts(epoch_s: float) -> str:
    return format_ts(datetime.fromtimestamp(epoch_s, UTC))


@dataclass
class TrackedCommand:
    room: str
    name: str  # claim, phase, scene
    by: str
    request_id: str
    sent_at: float
    what: str = ""  # a short summary for people ("infusion", "call c-101-1")
    status: CommandStatus = CommandStatus.SENT
    reason: str | None = None
    answer: str | None = None  # the event kind that answered
    answered_at: float | None = None

    def status_at(self, now: float) -> CommandStatus:
        if self.status is CommandStatus.SENT and now - self.sent_at >= ANSWER_WITHIN_S:
            return CommandStatus.NO_ANSWER
        return self.status

    def view(self, now: float) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "name": self.name,
            "what": self.what,
            "by": self.by,
            "sent_at": _ts(self.sent_at),
            "status": self.status_at(now).value,
            "reason": self.reason,
            "answer": self.answer,
            "answered_at": None if self.answered_at is None else _ts(self.answered_at),
        }


class CommandLog:
    """The recent commands of every room, by request id."""

    def __init__(self, kept_per_room: int = KEPT_PER_ROOM):
        self.kept_per_room = kept_per_room
        self._rooms: dict[str, deque[TrackedCommand]] = {}

    def register(self, cmd: TrackedCommand) -> None:
        ring = self._rooms.setdefault(cmd.room, deque(maxlen=self.kept_per_room))
        ring.append(cmd)

    def forget(self, room: str, request_id: str) -> None:
        """Drop a command that was never sent (the broker did not take it)."""
        ring = self._rooms.get(room)
        if ring is not None:
            for cmd in [c for c in ring if c.request_id == request_id]:
                ring.remove(cmd)

    def answer(self, room: str, event: EventMessage, received_at: float) -> bool:
        """Apply one of the room's events; True when it answered a command of ours."""
        status = ANSWERS.get(event.kind)
        request_id = event.detail.get("request_id")
        if status is None or not isinstance(request_id, str):
            return False
        for cmd in self._rooms.get(room, ()):
            if cmd.request_id == request_id:
                if cmd.answer is not None:
                    return False  # the first answer decides
                cmd.status, cmd.reason = status, event.reason
                cmd.answer, cmd.answered_at = event.kind.value, received_at
                return True
        return False

    def recent(self, room: str, now: float) -> list[dict[str, Any]]:
        """The room's commands, newest first, with their status at `now`."""
        return [c.view(now) for c in reversed(self._rooms.get(room, ()))]
