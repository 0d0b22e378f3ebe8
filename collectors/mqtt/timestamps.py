"""Device timestamps to UTC epoch milliseconds, inside the plausibility window. Pure.

A timestamp must fall in the limits' window (not before `[site] commissioned` or `[mqtt]
earliest_timestamp`, at most `max_future_skew_s` ahead of the receive time, never after
2200), computed in Python integers so that `1e308` or `2**70` cannot overflow. An epoch
number that fits the window in another unit is refused with the unit it looks like, never
rescaled. The forms: `epoch_s`, `epoch_ms` (numbers, or numeric strings when the format
says `numeric_strings`), `iso8601`, and `strptime` formats (`"%Y/%m/%d %H:%M:%S"`), read
in the format's zone unless they carry an offset.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from collectors.mqtt.bounded import (
    HARD_LATEST_MS,
    PayloadLimits,
    default_limits,
    number_in_string,
    quote,
)
from core.config import PayloadFormat
from core.errors import PayloadError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
MAX_TIME_CHARS = 64
"""ISO-8601 with nanoseconds and an offset is 35 characters; longer is not a timestamp."""


def describe_ms(ms: int) -> str:
    """An instant for a message, also far outside what `datetime` can show."""
    if -62_135_596_800_000 <= ms <= 253_402_300_799_999:  # years 1 to 9999
        return (_EPOCH + ms * _MS).isoformat(timespec="seconds").replace("+00:00", "Z")
    years = ms // 31_556_952_000  # mean Gregorian year
    if abs(years) < 10**7:
        return f"year {1970 + years}"
    return f"more than ten million years {'after' if ms > 0 else 'before'} 1970"


def _epoch_ms(value: int | float, seconds: bool) -> int:
    """An epoch number as whole milliseconds, in Python integers (never overflows)."""
    if isinstance(value, int):
        return value * 1000 if seconds else value
    if seconds and abs(value) < 1e15:
        return round(value * 1000)
    return round(value) * 1000 if seconds else round(value)  # finite: exact, or far out anyway


_OTHER_UNITS: dict[str, tuple[tuple[str, int, int], ...]] = {
    # (what it looks like, multiply, divide) to bring the number to milliseconds
    "epoch_ms": (("seconds", 1000, 1), ("microseconds", 1, 1000), ("nanoseconds", 1, 10**6)),
    "epoch_s": (("milliseconds", 1, 1000), ("microseconds", 1, 10**6)),
}


def parse_timestamp(
    value: Any,
    fmt: PayloadFormat,
    limits: PayloadLimits | None = None,
    received_ms: int = 0,
) -> int:
    """Device timestamp to UTC epoch ms, inside the limits' window."""
    limits = limits or default_limits()
    earliest, latest = limits.earliest_ms, limits.latest_ms(received_ms)
    form = fmt.timestamp_format
    if form in _OTHER_UNITS:
        number = value
        if fmt.numeric_strings and isinstance(value, str):
            number = number_in_string(value, limits.max_number_chars)
        if (
            isinstance(number, bool)
            or not isinstance(number, int | float)
            or not math.isfinite(number)
        ):
            raise PayloadError(f"bad timestamp: {quote(value)} is not a number ({form})")
        ms = _epoch_ms(number, form == "epoch_s")
        if earliest <= ms <= latest:
            return ms
        for unit, mul, div in _OTHER_UNITS[form]:
            if earliest <= ms * mul // div <= latest:
                raise PayloadError(
                    f"implausible timestamp: {quote(value)} looks like {unit}, but the format says "
                    f"{form}"
                )
        raise _outside(quote(value), ms, earliest, latest, limits)
    ms = _written_time_ms(value, fmt)
    if earliest <= ms <= latest:
        return ms
    raise _outside(quote(value), ms, earliest, latest, limits)


def _written_time_ms(value: Any, fmt: PayloadFormat) -> int:
    """An ISO-8601 or `strptime` timestamp as epoch ms (not yet checked against a window)."""
    form = fmt.timestamp_format
    iso = form == "iso8601"
    if not isinstance(value, str):
        shown = "an ISO-8601 string" if iso else f"a string ({form})"
        raise PayloadError(f"bad timestamp: {quote(value)} is not {shown}")
    if len(value) > MAX_TIME_CHARS:
        raise PayloadError(
            f"bad timestamp: {quote(value)} is not {'ISO-8601' if iso else form} (too long)"
        )
    try:
        if iso:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            moment = datetime.strptime(value, form)
    except ValueError:
        said = "is not ISO-8601" if iso else f"does not match {form}"
        raise PayloadError(f"bad timestamp: {quote(value)} {said}") from None
    try:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(fmt.timestamp_timezone))
        return (moment - _EPOCH) // _MS  # aware arithmetic: no conversion, no overflow
    except OverflowError:
        said = "is not ISO-8601" if iso else f"does not match {form}"
        raise PayloadError(f"bad timestamp: {quote(value)} {said}") from None


def _outside(
    shown: str, ms: int, earliest: int, latest: int, limits: PayloadLimits
) -> PayloadError:
    if ms < earliest:
        where = f"before the earliest plausible time {describe_ms(earliest)}"
    elif limits.max_future_skew_ms is not None and latest < HARD_LATEST_MS:
        where = (
            f"more than {limits.max_future_skew_ms // 1000} s ahead of the receive time "
            f"{describe_ms(latest - limits.max_future_skew_ms)}"
        )
    else:
        where = f"after {describe_ms(latest)}"
    return PayloadError(f"implausible timestamp: {shown} is {describe_ms(ms)}, {where}")
