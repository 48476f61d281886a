"""Classify one received MQTT message for the logger: accepted, availability, command, or rejected.

Pure: no paho, no sqlite. `classify(topic, payload, site, max_bytes, retain)` never raises;
anything the contract refuses comes back as `Rejected` with a reason for the quarantine table.
`retain` is the MQTT retain flag as published (the logger subscribes with retain-as-published):
a retained message on a topic the contract does not retain (`events`, `vitals`, `cmd/...`)
would be handed to every new subscriber and every board restart, so it is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from contract import messages, staff, topics


@dataclass(frozen=True)
class Accepted:
    """A contract-valid room message; `digest` (payload bytes) tells replays from impostors."""

    topic: str
    leaf: str
    msg: messages.Envelope
    digest: str
    raw: bytes


@dataclass(frozen=True)
class Availability:
    site: str
    room: str
    status: str


@dataclass(frozen=True)
class Command:
    """A staff command seen on `cmd/<name>` (kept for audit; commands carry no seq)."""

    topic: str
    site: str
    room: str
    name: str
    cmd: BaseModel


@dataclass(frozen=True)
class PageReport:
    """The notifier `notifier` tried to page someone about a call of the room (`page/<name>`):
    one attempt and its result, kept in the `pages` table (issue 15)."""

    topic: str
    site: str
    room: str
    notifier: str
    report: staff.DeliveryReport


@dataclass(frozen=True)
class Rejected:
    topic: str
    reason: str
    raw: bytes
    size: int


@dataclass(frozen=True)
class RateLimited:
    """A rejection over its room's quarantine rate (quarantine_rate.py): counted, not stored."""

    topic: str
    size: int


@dataclass(frozen=True)
class Ignored:
    topic: str
    why: str


Classified = Accepted | Availability | Command | PageReport | Rejected | RateLimited | Ignored
QUARANTINE_RAW_CAP = 65_536
RETAINED_ON_NON_RETAINED = "retained message on a non-retained topic"


def _reject(topic: str, reason: str, payload: bytes) -> Rejected:
    return Rejected(topic, reason, payload[:QUARANTINE_RAW_CAP], len(payload))


def validation_reason(exc: ValidationError) -> str:
    """`field.path: message; ...` so the quarantine row names what was wrong."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(payload)"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = len(exc.errors()) - 5
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def _validate(topic: str, model: type[BaseModel], payload: bytes) -> BaseModel | Rejected:
    try:
        return model.model_validate_json(payload, strict=True)
    except ValidationError as exc:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            first = exc.errors()[0].get("msg", "")
            return _reject(topic, f"invalid JSON: {first}", payload)
        return _reject(topic, f"validation error: {validation_reason(exc)}", payload)
    except Exception as exc:  # the contract must never crash the logger
        return _reject(topic, f"validation failed: {type(exc).__name__}: {exc}", payload)


def classify(
    topic: str,
    payload: bytes,
    site: str | frozenset[str],
    max_bytes: int,
    retain: bool = False,
) -> Classified:
    """Decide what one message is (`site`: the logger's site, or the set of sites a central
    logger serves). Never raises."""
    if len(payload) > max_bytes:
        return _reject(topic, f"oversize: {len(payload)} bytes > limit {max_bytes}", payload)
    parsed = topics.parse_room_topic(topic)
    if parsed is None:
        parts = topic.split("/")
        if len(parts) >= 5 and parts[0] == topics.ROOT and parts[2] == "room":
            leaf = "/".join(parts[4:])
            return _reject(topic, f"unknown topic leaf {leaf[:80]!r}", payload)
        return _reject(topic, "unknown topic (not clinic/<site>/room/<room>/<leaf>)", payload)
    if parsed.site != site and (isinstance(site, str) or parsed.site not in site):
        mine = repr(site) if isinstance(site, str) else ", ".join(sorted(site))
        return _reject(topic, f"topic site {parsed.site!r} is not this logger's {mine}", payload)
    leaf = parsed.leaf
    if retain and not topics.SPEC_BY_LEAF[leaf].retained:
        return _reject(topic, f"{RETAINED_ON_NON_RETAINED} ({leaf})", payload)
    if leaf == "availability":
        text = payload.decode("utf-8", "replace").strip()
        if text not in messages.AVAILABILITY_VALUES:
            return _reject(
                topic, f"availability must be online/offline, got {text[:40]!r}", payload
            )
        return Availability(parsed.site, parsed.room, text)
    if leaf.startswith("cmd/"):
        name = leaf[4:]
        cmd_model = topics.COMMANDS.get(name)
        if cmd_model is None:
            return _reject(topic, f"unknown command {name!r}", payload)
        result = _validate(topic, cmd_model, payload)
        if isinstance(result, Rejected):
            return result
        return Command(topic, parsed.site, parsed.room, name, result)
    if leaf == "receipt":  # a call reached a screen or a phone: kept with the commands
        receipt = _validate(topic, staff.CallReceipt, payload)
        if isinstance(receipt, Rejected):
            return receipt
        return Command(topic, parsed.site, parsed.room, "receipt", receipt)
    if leaf == "page":  # a notifier's page attempt: the topic names the room and the notifier
        report = _validate(topic, staff.DeliveryReport, payload)
        if isinstance(report, Rejected):
            return report
        assert isinstance(report, staff.DeliveryReport) and parsed.sender is not None
        if report.room != parsed.room:
            return _reject(
                topic,
                f"topic/payload mismatch: topic is room {parsed.room!r}, report says room "
                f"{report.room!r}",
                payload,
            )
        return PageReport(topic, parsed.site, parsed.room, parsed.sender, report)
    model = topics.ROOM_MESSAGES.get(leaf)
    if model is None:
        return Ignored(topic, f"leaf {leaf!r} is not recorded")
    result = _validate(topic, model, payload)
    if isinstance(result, Rejected):
        return result
    assert isinstance(result, messages.Envelope)
    if result.site != parsed.site or result.room != parsed.room:
        return _reject(
            topic,
            "topic/envelope mismatch: topic is site "
            f"{parsed.site!r} room {parsed.room!r}, envelope says site {result.site!r} "
            f"room {result.room!r}",
            payload,
        )
    # The room's outbox resends the bytes it stored, so a replay is byte-identical: the digest
    # of the payload tells a replay (ignored) from a different message reusing a seq.
    digest = hashlib.sha256(payload).hexdigest()
    return Accepted(topic, leaf, result, digest, payload)
