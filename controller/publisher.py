"""Envelope, outbox and pump: how a room message goes from the daemon to the broker.

`enqueue_many` wraps the room core's `Publish` bodies in the envelope (next `seq`, `ts`,
`clock_synced`), validates them with the contract model and stores them in the outbox
(a vitals reading that is plainly valid is written without the model, byte for byte the
same JSON: `vitals_json`, the busiest path).
`pump` hands stored rows to the MQTT link in `seq` order, at most `window` unacknowledged
at once; `on_puback` records the PUBACK and `flush_acks` deletes the acknowledged rows in
one transaction.

A message bigger than the broker's packet limit is never handed to paho: Mosquitto would
disconnect the room at its header, paho would resend it on every reconnect and nothing after
it would flow. `pump` sets such a row aside (`Outbox.refuse`: counted, kept for diagnosis,
published in `health.outbox.refused`) and goes on with the next one. The limit is the one the
broker announced in its last CONNACK (Maximum Packet Size), else `max_packet_bytes`; so
nothing is handed to paho before the first CONNACK (`link.ready`).

Telemetry (vitals, health) takes a cheaper road while the link is up and nothing else
waits (issue 17, sparing the SD card): `hold` builds it with a reserved seq and sends it
at once from memory; if the broker acknowledges it within `hold_s` it never touches the
disk (it is kept in memory for the replay window instead); whatever is not acknowledged by
then is stored in one transaction by `store_held` (group commit), and everything held is
stored with the next durable message, in the same transaction. While the link is down (or
not ready, or a message is over the broker's limit), telemetry is held unsent and stored in
groups the same way, then pumped (and set aside if too large) like any stored row. Calls,
events and state always go through the outbox (fsync) before they are published.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from contract import topics
from contract.messages import (
    OPTIONAL_VITALS_FIELDS,
    VITAL_FIELDS,
    Envelope,
    EventMessage,
    VitalsMessage,
    wire_exclude,
)
from contract.topics import ROOM_MESSAGES
from controller.core.io_types import Publish
from controller.outbox import Outbox, OutboxItem, OutboxRow
from controller.vitals_json import VitalsEncoder

log = logging.getLogger(__name__)

TELEMETRY = frozenset({"vitals", "health"})  # may be sent before it is stored


class Link(Protocol):
    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int: ...


def publish_packet_size(topic: str, payload: bytes, qos: int) -> int:
    """Bytes of the MQTT 5 PUBLISH paho sends for this message (no properties)."""
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + 1 + len(payload)
    length_bytes = 1
    while remaining >= 128**length_bytes:
        length_bytes += 1
    return 1 + length_bytes + remaining


class Publisher:
    def __init__(
        self,
        outbox: Outbox,
        site: str,
        room: str,
        clock_synced: Callable[[], bool],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        window: int = 100,
        max_packet_bytes: int | None = None,
        hold_s: float = 5.0,
        replay_window_s: float = 180.0,
        mono: Callable[[], float] = time.monotonic,
    ):
        self.outbox = outbox
        self.site = site
        self.room = room
        self._clock_synced = clock_synced
        self._now = now
        self.window = window
        self._handed: dict[int, int] = {}  # paho mid -> seq
        self._last_handed = 0
        self._acked: list[int] = []
        self.refused = 0  # PUBACKs with a failure reason code (e.g. not authorised)
        self.max_packet_bytes = max_packet_bytes  # until the broker announces its own
        self.published = {leaf: 0 for leaf in ROOM_MESSAGES}
        self.hold_s = hold_s
        self.replay_window_s = replay_window_s
        self._mono = mono
        # seq -> (row, held since, sent): telemetry neither acknowledged nor stored yet
        self._held: dict[int, tuple[OutboxRow, float, bool]] = {}
        self._recent: deque[tuple[float, OutboxRow]] = deque()  # acked from memory: replay
        self.stored_telemetry = 0  # telemetry rows the hold bound sent to disk
        self._caught_up = False  # the last pump handed every stored pending row
        self._vitals = VitalsEncoder(site, room, outbox.epoch)  # pydantic-free, same bytes

    def can_hold(self, messages: Sequence[Publish]) -> bool:
        """True if every message is telemetry (vitals, health): it may skip the disk."""
        return bool(messages) and all(
            topics.SPEC_BY_MODEL[m.model].leaf in TELEMETRY for m in messages
        )

    def hold(self, messages: Sequence[Publish], link: Link | None) -> None:
        """Build telemetry with reserved seqs; send it now if `link` is given (connected)
        and nothing stored waits before it; keep it until acknowledged or stored."""
        if link is not None:
            if any(not sent for _, _, sent in self._held.values()):
                self.store_held(force=True, unsent_only=True)  # the link is back
            self.pump(link)  # what is stored goes first, in seq order
        now, synced, mono = self._now(), self._clock_synced(), self._mono()
        send = link is not None and self._caught_up and getattr(link, "ready", True)
        limit = getattr(link, "broker_max_packet", None) or self.max_packet_bytes
        for msg in messages:
            spec = topics.SPEC_BY_MODEL[msg.model]
            seq = self.outbox.take_seq()
            payload = self._builder(msg.model, msg.body, now, synced)(seq)
            row = OutboxRow(
                seq,
                spec.leaf,
                topics.room_topic(self.site, self.room, spec.leaf),
                payload,
                spec.qos,
                spec.retained,
                now.timestamp(),
            )
            self.outbox.count_sent(spec.leaf)
            self.published[spec.leaf] += 1
            sent = send and link is not None and len(self._handed) < self.window
            if sent and limit and publish_packet_size(row.topic, row.payload, row.qos) > limit:
                sent = False  # stored at the bound, then set aside by `pump`
            if sent and link is not None:
                mid = link.publish(row.topic, row.payload, row.qos, row.retain)
                self._handed[mid] = seq
                self._last_handed = max(self._last_handed, seq)
            self._held[seq] = (row, mono, sent)
            send = sent  # once one waits, the rest wait behind it (seq order)

    def acks_can_wait(self) -> bool:
        """True if every message handed to the link and not yet acknowledged is telemetry
        held in memory, and nothing stored waits for the pump: a PUBACK then only drops a
        held row, which can wait for the daemon's next wake-up (see `RoomDaemon._post_ack`)."""
        return self._caught_up and all(seq in self._held for seq in self._handed.values())

    def seconds_to_store(self) -> float | None:
        """How long until held telemetry must be stored (None: nothing held)."""
        if not self._held:
            return None
        oldest = min(since for _, since, _ in self._held.values())
        return max(0.0, oldest + self.hold_s - self._mono())

    def store_held(self, force: bool = False, unsent_only: bool = False) -> int:
        """Store held telemetry once the oldest has waited `hold_s` (or now, if `force`).

        `unsent_only`: store only what was never handed to the link (before a durable
        message, so the pump keeps `seq` order); what is in flight waits for its PUBACK.
        """
        wait = self.seconds_to_store()
        if wait is None or (wait > 0 and not force):
            return 0
        rows = sorted(
            (h for h in self._held.values() if not (unsent_only and h[2])),
            key=lambda h: h[0].seq,
        )
        if not rows:
            return 0
        try:
            self.outbox.store_sent([(row, None) for row, _, _ in rows])
        except sqlite3.OperationalError as exc:  # a full disk: telemetry is counted, not kept
            vitals = sum(1 for row, _, _ in rows if row.kind == "vitals")
            self.outbox.count_dropped_vitals(vitals)
            log.warning("cannot store %d held telemetry messages: %s", len(rows), exc)
        for row, _, _ in rows:
            del self._held[row.seq]
        self._caught_up = False
        self.stored_telemetry += len(rows)
        return len(rows)

    def enqueue_many(
        self,
        messages: Sequence[Publish],
        *,
        state: dict[str, dict[str, Any]] | None = None,
    ) -> list[int | None]:
        """Store several messages and the room state in one transaction (one fsync).

        Returns each message's seq (None for a vitals reading the outbox thinned).
        """
        synced = self._clock_synced()
        now = self._now()
        items = []
        for msg in messages:
            spec = topics.SPEC_BY_MODEL[msg.model]
            leaf = spec.leaf
            items.append(
                OutboxItem(
                    leaf,
                    topics.room_topic(self.site, self.room, leaf),
                    self._builder(msg.model, msg.body, now, synced),
                    spec.qos,
                    spec.retained,
                )
            )
        # Held telemetry goes first, in the same transaction: every seq below a stored one
        # is then stored or acknowledged (and what was never sent is pumped in seq order).
        held = sorted((row for row, _, _ in self._held.values()), key=lambda r: r.seq)
        seqs = self.outbox.enqueue_many(items, state, sent=held)
        self._held.clear()
        self.stored_telemetry += len(held)
        self._caught_up = False
        for msg, seq in zip(messages, seqs, strict=True):
            if seq is not None:
                self.published[topics.SPEC_BY_MODEL[msg.model].leaf] += 1
        return seqs

    def _builder(
        self, model: type[Envelope], fields: Mapping[str, Any], now: datetime, synced: bool
    ) -> Callable[[int], bytes]:
        def build(seq: int) -> bytes:
            if model is VitalsMessage:  # the busiest message: no model when plainly valid
                fast = self._vitals.payload(seq, now, synced, fields)
                if fast is not None:
                    return fast
            envelope = {
                "site": self.site,
                "room": self.room,
                "epoch": self.outbox.epoch,
                "seq": seq,
                "ts": now,
                "clock_synced": synced,
            }
            try:
                msg = model(**envelope, **fields)
            except ValidationError as exc:
                if model is not VitalsMessage:
                    raise
                msg = model(**envelope, **_drop_invalid_vitals(fields, exc))
            return msg.model_dump_json(exclude=wire_exclude(msg)).encode()

        return build

    def pump(self, link: Link) -> int:
        """Hand waiting rows to the link; return how many were handed."""
        room = self.window - len(self._handed)
        if room <= 0 or not getattr(link, "ready", True):
            return 0  # full window, or the broker's limit is not known yet (no CONNACK so far)
        if self._caught_up:
            return 0  # nothing stored since the last pump that handed every pending row
        rows = self.outbox.pending(self._last_handed, room)
        self._caught_up = len(rows) < room
        limit = getattr(link, "broker_max_packet", None) or self.max_packet_bytes
        for row in rows:
            size = publish_packet_size(row.topic, row.payload, row.qos)
            if limit and size > limit:
                reason = f"too large for the broker: {size} bytes > {limit}"
                log.error("outbox: seq=%s (%s) set aside, %s", row.seq, row.kind, reason)
                self.outbox.refuse(row.seq, reason)
                self._last_handed = row.seq
                continue
            mid = link.publish(row.topic, row.payload, row.qos, row.retain)
            self._handed[mid] = row.seq
            self._last_handed = row.seq
        return len(rows)

    def replay_recent(self, window_s: float) -> int:
        """After a (re)connect: resend what the broker acknowledged in the last window_s."""
        cutoff = self._now().timestamp() - window_s
        recent = [(row, at) for at, row in self._recent if at >= cutoff]
        self._recent.clear()
        if recent:  # acknowledged from memory: stored now as acknowledged, then replayed
            self.outbox.store_sent([(row, at) for row, at in recent])
        n = self.outbox.replay_recent(window_s)
        if n:
            self._caught_up = False
            self._last_handed = 0  # the pump starts again from the lowest pending seq
        return n

    def on_puback(self, mid: int, ok: bool, reason: str) -> None:
        seq = self._handed.pop(mid, None)
        if seq is None:
            return  # availability, or a message from before a restart
        if not ok:
            # The broker refused it (ACL): resending cannot help. Count and say so loudly.
            self.refused += 1
            log.error("broker refused message seq=%s: %s", seq, reason)
        held = self._held.pop(seq, None)
        if held is not None:  # telemetry acknowledged before it was stored: never stored
            at = self._now().timestamp()
            self._recent.append((at, held[0]))
            while self._recent and self._recent[0][0] < at - self.replay_window_s:
                self._recent.popleft()
            return
        self._acked.append(seq)

    def flush_acks(self) -> None:
        if not self._acked:
            return
        try:
            self.outbox.ack(self._acked)
        except sqlite3.OperationalError as exc:  # disk full: keep them, retry next time
            log.warning("cannot record %d PUBACKs yet: %s", len(self._acked), exc)
            return
        self._acked = []


def _drop_invalid_vitals(fields: Mapping[str, Any], exc: ValidationError) -> dict[str, Any]:
    """A value outside the contract's physiological range becomes null plus a flag; so does
    an optional field (per-value times, ages, alarm details) the contract refuses."""
    fixed = dict(fields)
    quality = list(fixed.get("quality") or [])
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else ""
        if name in VITAL_FIELDS or name in OPTIONAL_VITALS_FIELDS:
            fixed[name] = None
            quality.append(f"invalid_{name}")
    fixed["quality"] = quality
    return fixed


def keep_unstored(staged: list[Publish]) -> list[Publish]:
    """What waits in memory while the disk is full: every event, the latest snapshot per topic.

    Vitals are not kept (they are counted as thinned); an older state/call/health snapshot
    is superseded by a newer one, so only the last of each is worth storing later.
    """
    last = {m.model: i for i, m in enumerate(staged) if topics.SPEC_BY_MODEL[m.model].retained}
    return [m for i, m in enumerate(staged) if m.model is EventMessage or last.get(m.model) == i]
