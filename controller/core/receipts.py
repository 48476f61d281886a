"""Proof of delivery, in the room (issue 15): pure (no I/O, time passed in).

How this works: a board screen or the notifier publishes a `CallReceipt` on the room's
`receipt/<sender>` when a call reaches it. `on_receipt` notes the call as seen. `tick` finds
every call not yet claimed, not trouble, not seen and placed at least `timeout_s` ago: the
central side is blind to it (the board is down, the broker's central side is unreachable,
every screen is closed), so the room escalates locally: the dome strobes it (`dome.py`, the
`blind` layer) and the buzzer sounds if one is fitted, and `central_blind` is emitted once.
The first receipt after that ends it (`central_reached`). A claim is proof enough too. The
seen set is stored with the room's state, so a restart does not call a seen call blind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from contract.messages import CallPriority, CallStatus, EventKind
from controller.core.call_state import Call
from controller.core.emit import Emit

MAX_KEPT = 64  # seen call ids kept (a room has a handful of active calls)


@dataclass(frozen=True)
class ReceiptState:
    seen: frozenset[str] = frozenset()
    blind: frozenset[str] = frozenset()


def _waiting(call: Call) -> bool:
    return call.status is not CallStatus.CLAIMED and call.priority is not CallPriority.TROUBLE


def on_receipt(
    state: ReceiptState, call_id: str, by: str, via: str, now: datetime
) -> tuple[ReceiptState, list[Emit]]:
    emits: list[Emit] = []
    if call_id in state.blind:
        emits.append(Emit(EventKind.CENTRAL_REACHED, now, call_id=call_id, by=by,
                          detail={"via": via}))  # fmt: skip
    seen = state.seen | {call_id}
    if len(seen) > MAX_KEPT:
        seen = frozenset(sorted(seen)[-MAX_KEPT:])
    return ReceiptState(seen, state.blind - {call_id}), emits


def tick(
    state: ReceiptState, calls: Sequence[Call], now: datetime, timeout_s: float
) -> tuple[ReceiptState, list[Emit]]:
    if timeout_s <= 0:
        return (ReceiptState(state.seen), []) if state.blind else (state, [])
    active = {c.call_id: c for c in calls}
    blind = {cid for cid in state.blind if cid in active and _waiting(active[cid])}
    emits: list[Emit] = []
    for c in calls:
        if c.call_id in state.seen or c.call_id in blind or not _waiting(c):
            continue
        if now - c.placed_at >= timedelta(seconds=timeout_s):
            blind.add(c.call_id)
            emits.append(Emit(EventKind.CENTRAL_BLIND, now, call_id=c.call_id,
                              priority=c.priority, detail={"after_s": timeout_s}))  # fmt: skip
    new = replace(state, blind=frozenset(blind))
    return (new if new != state else state), emits


def next_deadline(state: ReceiptState, calls: Sequence[Call], timeout_s: float) -> datetime | None:
    if timeout_s <= 0:
        return None
    times = [
        c.placed_at + timedelta(seconds=timeout_s)
        for c in calls
        if _waiting(c) and c.call_id not in state.seen and c.call_id not in state.blind
    ]
    return min(times, default=None)


def to_dict(state: ReceiptState) -> dict[str, Any]:
    return {"seen": sorted(state.seen), "blind": sorted(state.blind)}


def from_dict(data: Mapping[str, Any]) -> ReceiptState:
    return ReceiptState(frozenset(map(str, data["seen"])), frozenset(map(str, data["blind"])))
