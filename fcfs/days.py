"""Calendar days in the configured time zone, as ranges of the naive-UTC timestamps the database stores."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

# The first day the statistics and the aggregation know: earlier days cannot hold a request (request
# times are epoch milliseconds), and far earlier ones are not representable in every time zone.
EARLIEST_DAY = dt.date(1970, 1, 2)


def day_bounds(day: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of `day` in `tz`, as naive UTC datetimes."""
    start = dt.datetime.combine(day, dt.time(), tz).astimezone(dt.UTC).replace(tzinfo=None)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC).replace(tzinfo=None)
    return start, end


def local_today(tz: ZoneInfo, now: dt.datetime | None = None) -> dt.date:
    return (now or dt.datetime.now(dt.UTC)).astimezone(tz).date()


def days_between(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    """Every day from `first` to `last`, both included."""
    for offset in range((last - first).days + 1):
        yield first + dt.timedelta(days=offset)
