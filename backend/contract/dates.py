"""Dates from clients: the statistics and batch endpoints' date parameters (parsed, checked, 400 with an
errorCode) and the campaign window's times (stored as naive UTC)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from backend.app.errors import date_error
from fcfs.days import EARLIEST_DAY, local_today

MAX_PERIOD_DAYS = 366
# Date query parameters are read as text (so a malformed one is our 400 INVALID_DATE, not a framework
# 422) and documented as dates, so that clients and fuzzers know what they take.
AS_DATE = {"format": "date"}


def stored_utc(value: dt.datetime | None, tz: dt.tzinfo) -> dt.datetime | None:
    """Aware datetimes as given; naive ones in the configured time zone; stored as naive UTC."""
    if value is None:
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=tz)
    return aware.astimezone(dt.UTC).replace(tzinfo=None)


def parse_day(name: str, value: str, tz: ZoneInfo) -> dt.date:
    """A YYYY-MM-DD date from EARLIEST_DAY that is not in the future (in the configured time zone)."""
    try:
        day = dt.date.fromisoformat(value)
        if len(value) != 10:
            raise ValueError(value)
    except ValueError:
        raise date_error("INVALID_DATE", f"{name}: '{value}' is not a date of the form YYYY-MM-DD") from None
    if day < EARLIEST_DAY:
        raise date_error("DATE_OUT_OF_RANGE", f"{name}: {day} is before {EARLIEST_DAY}")
    if day > local_today(tz):
        raise date_error("DATE_IN_FUTURE", f"{name}: {day} is in the future ({tz.key})")
    return day


@dataclass(frozen=True)
class Period:
    first: dt.date
    last: dt.date


def parse_period(date: str | None, from_: str | None, to: str | None, tz: ZoneInfo) -> tuple[Period, bool]:
    """Either `date`, or `from` and `to` (inclusive); returns the period and whether it was a period form."""
    if date is not None:
        if from_ is not None or to is not None:
            raise date_error("INVALID_DATE_RANGE", "give either date, or from and to, not both")
        day = parse_day("date", date, tz)
        return Period(day, day), False
    if from_ is None or to is None:
        raise date_error("MISSING_DATE", "give date=YYYY-MM-DD, or from=YYYY-MM-DD and to=YYYY-MM-DD")
    first, last = parse_day("from", from_, tz), parse_day("to", to, tz)
    if first > last:
        raise date_error("INVALID_DATE_RANGE", f"from ({first}) is after to ({last})")
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise date_error("DATE_RANGE_TOO_LONG", f"a period covers at most {MAX_PERIOD_DAYS} days")
    return Period(first, last), True
