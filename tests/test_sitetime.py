"""The site's clock (issue 20): local 24-hour time with the zone named, local days, and a
bad zone name refused by the field that gave it (contract/sitetime.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from contract import sitetime

NEW_YORK = sitetime.site_zone("America/New_York")


def test_times_are_local_24_hour_with_the_zone_named() -> None:
    evening = "2026-11-30T23:08:18.695Z"  # 18:08 in New York
    assert sitetime.hm(evening, NEW_YORK) == "18:08 EST"
    assert sitetime.hms(evening, NEW_YORK) == "18:08:18 EST"
    assert sitetime.stamp(evening, NEW_YORK) == "2026-11-30 18:08:18 EST"
    summer = datetime(2026, 7, 1, 3, 30, tzinfo=UTC)  # the day before, in New York
    assert sitetime.stamp(summer, NEW_YORK) == "2026-06-30 23:30:00 EDT"
    assert sitetime.day_of(summer, NEW_YORK) == date(2026, 6, 30)
    assert sitetime.hm(None, NEW_YORK) == "-"
    assert sitetime.hm(evening, sitetime.site_zone(None)) == "23:08 UTC"  # the default


def test_a_local_day_has_its_utc_ends_and_may_be_23_or_25_hours() -> None:
    start, end = sitetime.day_bounds(date(2026, 11, 30), NEW_YORK)
    assert (start, end) == (
        datetime(2026, 11, 30, 5, tzinfo=UTC),
        datetime(2026, 12, 1, 5, tzinfo=UTC),
    )
    spring = sitetime.day_bounds(date(2026, 3, 8), NEW_YORK)
    autumn = sitetime.day_bounds(date(2026, 11, 1), NEW_YORK)
    assert (spring[1] - spring[0]).total_seconds() == 23 * 3600
    assert (autumn[1] - autumn[0]).total_seconds() == 25 * 3600
    late = datetime(2026, 12, 1, 4, 59, tzinfo=UTC)  # 23:59 on the 30th in New York
    assert sitetime.today(NEW_YORK, late) == date(2026, 11, 30)


def test_the_pages_get_every_abbreviation_of_the_zone_by_offset() -> None:
    around = datetime(2026, 11, 30, tzinfo=UTC)
    assert sitetime.abbreviations(NEW_YORK, around) == {"-300": "EST", "-240": "EDT"}
    berlin = sitetime.abbreviations(sitetime.site_zone("Europe/Berlin"), around)
    assert berlin == {"60": "CET", "120": "CEST"}
    assert sitetime.abbreviations(sitetime.site_zone("UTC"), around) == {"0": "UTC"}


@pytest.mark.parametrize("name", ["Mars/Olympus", "EST5EDT/x", "../etc/passwd", "New York"])
def test_an_unknown_zone_is_refused_naming_the_field(name: str) -> None:
    with pytest.raises(ValueError, match=r"^site\.timezone: .* is not a time zone: use an IANA"):
        sitetime.site_zone(name, "site.timezone")


def test_the_zone_comes_from_the_option_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(sitetime.ENV_VAR, "Europe/Berlin")
    assert sitetime.zone_from(None).key == "Europe/Berlin"
    assert sitetime.zone_from("Asia/Tokyo").key == "Asia/Tokyo"
    monkeypatch.setenv(sitetime.ENV_VAR, "Nowhere/Town")
    with pytest.raises(ValueError, match=r"^ROOMCTL_TIMEZONE: 'Nowhere/Town'"):
        sitetime.zone_from(None)
    monkeypatch.delenv(sitetime.ENV_VAR)
    assert sitetime.zone_from(None).key == "UTC"
