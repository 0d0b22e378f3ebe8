"""Turning one MQTT payload into readings: pure, no I/O, and bounded.

The site file's payload formats say where each value lives (RFC 6901 JSON pointers), in
which unit, and where the device wrote its timestamp. Anything we cannot use raises
`PayloadError` with a reason precise enough for the dead-letter record; the reason starts
with a short category (`not JSON: ...`, `implausible timestamp: ...`) that the dead letters
count by.

Nothing a payload holds can make this module raise anything else, recurse without bound, or
hand on a reading the store cannot hold. In order:

1. size: at most `max_payload_bytes`, checked before anything is decoded;
2. encoding: strict UTF-8 (no byte-order mark, no lone surrogates, escaped or not);
3. nesting: at most `max_depth` levels, counted by a flat scan before `json` sees the text
   (the C decoder recurses once per level);
4. literals: numbers of at most `max_number_chars` characters that are finite doubles
   (`NaN`, `Infinity`, `1e400` refused), and no key twice in one object (the last value would
   otherwise win silently, and could carry a value past the range check);
5. timestamps: inside the plausibility window, computed in Python integers so that `1e308`
   or `2**70` cannot overflow; a value that fits the window in another unit is refused with
   the unit it looks like, never rescaled;
6. values: finite, in the quantity's plausible range after unit conversion.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from core.config import MqttConfig, PayloadFormat, SiteConfig
from core.errors import PayloadError
from core.quantities import QUANTITIES, conversion_factor
from core.readings import Reading

MISSING = object()

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
HARD_LATEST_MS = 7_258_118_400_000
"""2200-01-01T00:00Z: the latest timestamp ever handed on, whatever the window says, so that a
stored time is representable everywhere downstream (int64 nanoseconds end in 2262)."""
_MAX_ISO_CHARS = 64
"""ISO-8601 with nanoseconds and an offset is 35 characters; longer is not a timestamp."""


@dataclass(frozen=True, slots=True)
class PayloadLimits:
    """What a payload may be: sizes, and the window a device timestamp must fall in.

    `max_future_skew_ms` is measured from the receive time passed to `parse_payload`; `None`
    (only for callers without a real receive time) checks against `HARD_LATEST_MS` alone.
    """

    max_bytes: int
    max_depth: int
    max_number_chars: int
    earliest_ms: int
    max_future_skew_ms: int | None
    _decoder: json.JSONDecoder = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_decoder", _strict_decoder(self.max_number_chars))

    @classmethod
    def of(cls, mqtt: MqttConfig, *, commissioned: date | None, timezone: str) -> PayloadLimits:
        floor = max(mqtt.earliest_timestamp, commissioned or mqtt.earliest_timestamp)
        midnight = datetime.combine(floor, time(), tzinfo=ZoneInfo(timezone))
        return cls(
            max_bytes=mqtt.max_payload_bytes,
            max_depth=mqtt.max_depth,
            max_number_chars=mqtt.max_number_chars,
            earliest_ms=(midnight - _EPOCH) // _MS,
            max_future_skew_ms=mqtt.max_future_skew_s * 1000,
        )

    @classmethod
    def of_site(cls, site: SiteConfig) -> PayloadLimits:
        """The site file's limits: `[mqtt]` and `[site] commissioned`."""
        return cls.of(site.mqtt, commissioned=site.site.commissioned, timezone=site.site.timezone)

    def latest_ms(self, received_ms: int) -> int:
        if self.max_future_skew_ms is None:
            return HARD_LATEST_MS
        return min(received_ms + self.max_future_skew_ms, HARD_LATEST_MS)


@cache
def default_limits() -> PayloadLimits:
    """`[mqtt]`'s defaults without a receive clock: for callers that have no site (tests,
    simulators); the collector always passes `PayloadLimits.of_site(site)`."""
    limits = PayloadLimits.of(MqttConfig(), commissioned=None, timezone="UTC")
    return PayloadLimits(
        limits.max_bytes, limits.max_depth, limits.max_number_chars, limits.earliest_ms, None
    )


# --- the bounded JSON reader --------------------------------------------------------------

_STRUCTURE = re.compile(r'[\[\]{}"\\]')
_NONZERO_MANTISSA = re.compile(r"[1-9]")


def _strict_decoder(max_chars: int) -> json.JSONDecoder:
    def number_too_long(literal: str) -> PayloadError:
        return PayloadError(
            f"number out of range: a literal of {len(literal)} characters "
            f"({literal[:12]}...) is longer than {max_chars}"
        )

    def parse_int(literal: str) -> int:
        if len(literal) > max_chars:
            raise number_too_long(literal)
        return int(literal)

    def parse_float(literal: str) -> float:
        if len(literal) > max_chars:
            raise number_too_long(literal)
        value = float(literal)
        if not math.isfinite(value):
            raise PayloadError(f"number out of range: {literal} overflows a double")
        if value == 0.0 and _NONZERO_MANTISSA.search(literal.partition("e")[0].partition("E")[0]):
            raise PayloadError(f"number out of range: {literal} underflows to 0")
        return value + 0.0  # -0.0 -> 0.0

    def parse_constant(name: str) -> float:
        raise PayloadError(f"not JSON: {name} is not a JSON number")

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        document = dict(pairs)
        if len(document) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    raise PayloadError(f"duplicate key {_quote(key)} in one object")
                seen.add(key)
        return document

    return json.JSONDecoder(
        parse_int=parse_int,
        parse_float=parse_float,
        parse_constant=parse_constant,
        object_pairs_hook=unique_keys,
    )


def _quote(value: Any, limit: int = 40) -> str:
    """A short rendering of a JSON value for a reason, written as JSON (`null`, `true`,
    `"text"`, control characters escaped)."""
    if isinstance(value, str) and len(value) > limit:
        return json.dumps(value[:limit], ensure_ascii=False) + f"... ({len(value):,} characters)"
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= limit else shown[:limit] + "..."


def nesting_depth_exceeds(text: str, max_depth: int) -> bool:
    """Whether `text` nests arrays/objects deeper than `max_depth`, brackets inside strings
    not counted. A flat scan over the structural characters only: linear, no recursion."""
    if text.count("{") + text.count("[") <= max_depth:
        return False  # cannot be deeper: the common case costs two counts
    depth = 0
    in_string = False
    escaped_at = -1
    for match in _STRUCTURE.finditer(text):
        char, at = match.group(), match.start()
        if in_string:
            if at == escaped_at:
                continue
            if char == "\\":
                escaped_at = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _has_lone_surrogate(document: Any) -> bool:
    """Whether any key or string holds a surrogate code point (json decodes a lone `\\ud800`
    escape to one; a valid pair becomes one astral character). Iterative."""
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            strings: Iterable[str] = (node,)
        elif isinstance(node, dict):
            strings = node.keys()
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
            continue
        else:
            continue
        for s in strings:
            if not s.isascii():
                try:
                    s.encode("utf-8")
                except UnicodeEncodeError:
                    return True
    return False


def load_json(payload: bytes, limits: PayloadLimits) -> Any:
    """The payload as a JSON value, within `limits`, or `PayloadError` saying what is wrong."""
    if not payload:
        raise PayloadError("empty payload: no JSON (an empty retained message clears a topic)")
    if len(payload) > limits.max_bytes:
        raise PayloadError(
            f"payload too large: {len(payload):,} bytes, more than max_payload_bytes "
            f"{limits.max_bytes:,}"
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(
            f"not UTF-8: byte 0x{payload[exc.start]:02x} at offset {exc.start} ({exc.reason})"
        ) from None
    if text.startswith("\ufeff"):
        raise PayloadError("not JSON: a byte-order mark before the text (RFC 8259 §8.1)")
    if nesting_depth_exceeds(text, limits.max_depth):
        raise PayloadError(f"nested too deep: more than max_depth {limits.max_depth} levels")
    try:
        document = limits._decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if "\\u" in text and _has_lone_surrogate(document):
        raise PayloadError("not UTF-8: a string holds a lone surrogate escape (\\ud800-\\udfff)")
    return document


# --- pointers, timestamps, values ---------------------------------------------------------


def resolve_pointer(document: Any, pointer: str) -> Any:
    """RFC 6901: `/a/b/0`; `~1` is '/', `~0` is '~'. Returns `MISSING` when absent."""
    node = document
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            if token not in node:
                return MISSING
            node = node[token]
        elif isinstance(node, list):
            if not (token.isascii() and token.isdigit()) or int(token) >= len(node):
                return MISSING
            node = node[int(token)]
        else:
            return MISSING
    return node


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
    if fmt.timestamp_format in ("epoch_s", "epoch_ms"):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise PayloadError(
                f"bad timestamp: {_quote(value)} is not a number ({fmt.timestamp_format})"
            )
        ms = _epoch_ms(value, fmt.timestamp_format == "epoch_s")
        if earliest <= ms <= latest:
            return ms
        for unit, mul, div in _OTHER_UNITS[fmt.timestamp_format]:
            if earliest <= ms * mul // div <= latest:
                raise PayloadError(
                    f"implausible timestamp: {_quote(value)} looks like {unit}, but the format says "
                    f"{fmt.timestamp_format}"
                )
        raise _outside(_quote(value), ms, earliest, latest, limits)
    if not isinstance(value, str):
        raise PayloadError(f"bad timestamp: {_quote(value)} is not an ISO-8601 string")
    if len(value) > _MAX_ISO_CHARS:
        raise PayloadError(f"bad timestamp: {_quote(value)} is not ISO-8601 (too long)")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(fmt.timestamp_timezone))
        ms = (moment - _EPOCH) // _MS  # aware arithmetic: no conversion, no overflow
    except (ValueError, OverflowError):
        raise PayloadError(f"bad timestamp: {_quote(value)} is not ISO-8601") from None
    if earliest <= ms <= latest:
        return ms
    raise _outside(_quote(value), ms, earliest, latest, limits)


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


def parse_payload(
    payload: bytes,
    fmt: PayloadFormat,
    meter_id: str,
    received_ms: int,
    limits: PayloadLimits | None = None,
) -> list[Reading]:
    """Readings in canonical units. A value that is absent (or null) is skipped; one that is
    not a finite number makes the whole message a dead letter (a half-read message hides
    faults). `limits`: the site's (`PayloadLimits.of_site`); default: `default_limits()`."""
    limits = limits or default_limits()
    document = load_json(payload, limits)
    if not isinstance(document, dict):
        raise PayloadError(f"not an object: the payload is a JSON {_json_type(document)}")
    if fmt.timestamp:
        raw_ts = resolve_pointer(document, fmt.timestamp)
        if raw_ts is MISSING:
            raise PayloadError(f"no timestamp at {fmt.timestamp}")
        ts_ms = parse_timestamp(raw_ts, fmt, limits, received_ms)
    else:
        ts_ms = received_ms
    readings = []
    for spec_field in fmt.fields:
        raw = resolve_pointer(document, spec_field.pointer)
        if raw is MISSING or raw is None:
            continue
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise PayloadError(
                f"not a number: {spec_field.pointer} is {_quote(raw)}, not a finite number"
            )
        spec = QUANTITIES[spec_field.quantity]
        value = float(raw) * conversion_factor(spec_field.unit, spec.unit)
        if not spec.accepts(value):
            raise PayloadError(
                f"out of range: {spec_field.pointer} gives {spec_field.quantity} = {value:g} "
                f"{spec.unit.value}, outside [{spec.low:g}, {spec.high:g}]"
            )
        readings.append(Reading(meter_id, spec_field.quantity, ts_ms, value))
    if not readings:
        raise PayloadError("no values: none of the format's fields is present")
    return readings


def _json_type(value: Any) -> str:
    return {
        list: "array",
        str: "string",
        int: "number",
        float: "number",
        bool: "boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)
