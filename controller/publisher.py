"""Envelope, outbox and pump: how a room message goes from the daemon to the broker.

`enqueue_many` wraps the room core's `Publish` bodies in the envelope (next `seq`, `ts`,
`clock_synced`), validates them with the contract model and stores them in the outbox.
`pump` hands stored rows to the MQTT link in `seq` order, at most `window` unacknowledged
at once; `on_puback` records the PUBACK and `flush_acks` deletes the acknowledged rows in
one transaction.

A message bigger than the broker's packet limit is never handed to paho: Mosquitto would
disconnect the room at its header, paho would resend it on every reconnect and nothing after
it would flow. `pump` sets such a row aside (`Outbox.refuse`: counted, kept for diagnosis,
published in `health.outbox.refused`) and goes on with the next one. The limit is the one the
broker announced in its last CONNACK (Maximum Packet Size), else `max_packet_bytes`; so
nothing is handed to paho before the first CONNACK (`link.ready`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from contract import topics
from contract.messages import (
    OPTIONAL_VITALS_FIELDS,
    VITAL_FIELDS,
    Envelope,
    VitalsMessage,
    wire_exclude,
)
from contract.topics import ROOM_MESSAGES
from controller.core.io_types import Publish
from controller.outbox import Outbox, OutboxItem

log = logging.getLogger(__name__)


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
        seqs = self.outbox.enqueue_many(items, state)
        for msg, seq in zip(messages, seqs, strict=True):
            if seq is not None:
                self.published[topics.SPEC_BY_MODEL[msg.model].leaf] += 1
        return seqs

    def _builder(
        self, model: type[Envelope], fields: Mapping[str, Any], now: datetime, synced: bool
    ) -> Callable[[int], bytes]:
        def build(seq: int) -> bytes:
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
        rows = self.outbox.pending(self._last_handed, room)
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
        n = self.outbox.replay_recent(window_s)
        if n:
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
