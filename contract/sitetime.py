"""The site's clock for people: local 24-hour time with the zone named (`23:08 EST`).

How this works: a site has one time zone (an IANA name, `America/New_York`; default `UTC`),
given to the board, `roomctl status` and `roomctl log export` by `--timezone` or the
`ROOMCTL_TIMEZONE` environment variable (the central Ansible role sets both from
`central_site_timezone`). Stored and sent times stay RFC 3339 UTC (`contract.timefmt`); only
what a person reads is converted here, and every such time names its zone with the tz
database's abbreviation (`EST`, `CET`, `UTC`). A day (the call log's, a report's date range)
is the site's local day: `day_bounds` gives its UTC ends, 23 or 25 hours on a DST change.
The board's pages do the same in the browser (`Board.siteTime` in `board.js`), from the zone
and the abbreviations the server hands them (`abbreviations`), never the browser's own zone.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from contract.timefmt import parse_ts, require_aware

DEFAULT_ZONE = "UTC"
ENV_VAR = "ROOMCTL_TIMEZONE"


def site_zone(name: str | None, field: str = "timezone") -> ZoneInfo:
    """The zone called `name` (None or empty: UTC).

    Raises:
        ValueError: If `name` is not a time zone of the tz database; the message names `field`.
    """
    text = (name or "").strip() or DEFAULT_ZONE
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(
            f"{field}: {text!r} is not a time zone: use an IANA name such as "
            "America/New_York, Europe/Berlin or UTC"
        ) from exc


def zone_from(explicit: str | None, field: str = "--timezone") -> ZoneInfo:
    """The site zone from a command-line option, else `$ROOMCTL_TIMEZONE`, else UTC.

    Raises:
        ValueError: If the chosen name is not a time zone (naming the option or the variable).
    """
    if explicit:
        return site_zone(explicit, field)
    return site_zone(os.environ.get(ENV_VAR), ENV_VAR)


def _aware(value: datetime | str) -> datetime:
    return parse_ts(value) if isinstance(value, str) else require_aware(value)


def local(value: datetime | str, tz: ZoneInfo) -> datetime:
    """A stored time (RFC 3339 text or an aware datetime) as the site's wall clock."""
    return _aware(value).astimezone(tz)


def hm(value: datetime | str | None, tz: ZoneInfo) -> str:
    """`23:08 EST` (None: `-`)."""
    return "-" if value is None else local(value, tz).strftime("%H:%M %Z")


def hms(value: datetime | str | None, tz: ZoneInfo) -> str:
    """`23:08:18 EST` (None: `-`)."""
    return "-" if value is None else local(value, tz).strftime("%H:%M:%S %Z")


def stamp(value: datetime | str | None, tz: ZoneInfo) -> str:
    """`2026-11-30 23:08:18 EST` (None: `-`)."""
    return "-" if value is None else local(value, tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def day_of(value: datetime | str, tz: ZoneInfo) -> date:
    """The site's local day of a time."""
    return local(value, tz).date()


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC start (inclusive) and end (exclusive) of the site's local `day`."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def today(tz: ZoneInfo, now: datetime | None = None) -> date:
    """The site's local day now."""
    return (now or datetime.now(UTC)).astimezone(tz).date()


def abbreviations(tz: ZoneInfo, around: datetime | None = None) -> dict[str, str]:
    """Offset from UTC in minutes (as text) -> the zone's abbreviation, for the pages: every
    offset the zone uses within a year either side of `around` (`{"-300": "EST", "-240":
    "EDT"}`). The page formats the digits with `Intl.DateTimeFormat` and names the zone with
    these, so it reads as the server's text does."""
    centre = require_aware(around or datetime.now(UTC))
    out: dict[str, str] = {}
    for week in range(-54, 55):
        moment = (centre + timedelta(weeks=week)).astimezone(tz)
        offset = moment.utcoffset()
        if offset is not None:
            out.setdefault(str(int(offset.total_seconds() // 60)), moment.strftime("%Z"))
    return out
