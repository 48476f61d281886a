"""The one way roomctl writes and reads a timestamp.

On the wire and in the logger's database: RFC 3339 UTC with milliseconds and `Z`
(`2026-11-30T23:08:18.695Z`), which sorts as text. In a room's saved state: ISO 8601 with
full precision (`dt_to_str`), so a restored timer is exact. Every timestamp is aware; a
naive one is a programming error and raises.
"""

from __future__ import annotations

from datetime import UTC, datetime


def require_aware(value: datetime) -> datetime:
    """Return `value` converted to UTC.

    Raises:
        ValueError: If `value` is naive. This is a programming error in the caller (a clock
            without a zone), not device or staff input.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a timezone (RFC 3339)")
    return value.astimezone(UTC)


def format_ts(value: datetime) -> str:
    """RFC 3339 UTC with millisecond precision (truncated) and a `Z` suffix."""
    if value.tzinfo is not UTC:
        value = require_aware(value)
    # one C call (isoformat), no zone conversion when it is UTC already: a room writes one
    # per message, and this was the largest leaf of its vitals path in py-spy (issue 17)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_ts(text: str) -> datetime:
    """Read an RFC 3339 / ISO 8601 timestamp with a zone (`Z` or an offset) as aware UTC.

    Raises:
        ValueError: If the text is not such a timestamp or carries no zone.
    """
    return require_aware(datetime.fromisoformat(text.replace("Z", "+00:00")))


def utcnow() -> datetime:
    """The wall clock, aware UTC."""
    return datetime.now(UTC)


def dt_to_str(value: datetime | None) -> str | None:
    """Serialise an aware datetime (or None) to ISO 8601 for a room's saved state."""
    if value is None:
        return None
    return require_aware(value).isoformat()


def dt_from_str(value: object) -> datetime | None:
    """Parse what `dt_to_str` wrote back to an aware UTC datetime (None stays None).

    Raises:
        ValueError: If the value is not None and not an ISO 8601 string with a zone.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 string, got {type(value).__name__}")
    return require_aware(datetime.fromisoformat(value))


def dt_from_str_required(value: object) -> datetime:
    """Like `dt_from_str` but the value must be present.

    Raises:
        ValueError: If the value is None or not an ISO 8601 string with a zone.
    """
    parsed = dt_from_str(value)
    if parsed is None:
        raise ValueError("a required timestamp is missing")
    return parsed
