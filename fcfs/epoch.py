"""Timestamps as numbers: every timestamp column stores naive UTC, and these are its one conversion to and from
seconds (or microseconds) since 1970-01-01 UTC."""

from __future__ import annotations

import datetime as dt

EPOCH = dt.datetime(1970, 1, 1)
_SECOND = dt.timedelta(seconds=1)
_MICROSECOND = dt.timedelta(microseconds=1)


def epoch_s(value: dt.datetime) -> int:
    """Whole seconds since the epoch of a stored (naive UTC) timestamp."""
    return (value - EPOCH) // _SECOND


def epoch_seconds(value: dt.datetime) -> float:
    """Seconds since the epoch of a stored (naive UTC) timestamp, its fraction kept."""
    return (value - EPOCH) / _SECOND


def from_epoch_s(seconds: float) -> dt.datetime:
    """The stored (naive UTC) form of a whole second since the epoch (a fraction is dropped)."""
    return EPOCH + dt.timedelta(seconds=int(seconds))


def epoch_us(value: dt.datetime) -> int:
    return (value - EPOCH) // _MICROSECOND


def from_epoch_us(micros: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=micros)
