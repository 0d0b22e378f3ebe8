"""Turning one MQTT payload into readings by the site's payload formats: pure, no I/O, and
bounded.

The site file's payload formats say where each value lives (RFC 6901 JSON pointers), in
which unit, with which scale and offset, and where the device wrote its timestamp; a format
with `records` reads an array of records in one message (a batch of readings, or a gateway's
whole bus, each record naming its meter for a route whose template takes a value from the
payload). Anything we cannot use raises `PayloadError` with a reason precise enough for the
dead-letter record; the reason starts with a short category (`not JSON: ...`, `implausible
timestamp: ...`) that the dead letters count by, and names the record when there are several
(`out of range: record 3: /Ep gives ...`).

Nothing a payload holds can make this module raise anything else, recurse without bound, or
hand on a reading the store cannot hold: the JSON is read within the limits
(`collectors.mqtt.bounded`), every timestamp must fall in the plausibility window
(`collectors.mqtt.timestamps`), and every value must be finite and in the quantity's
plausible range after scale, offset and unit conversion. A message with one bad record is
refused whole: a half-read message hides faults.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from collectors.mqtt.bounded import (
    HARD_LATEST_MS,
    PayloadLimits,
    default_limits,
    json_type,
    load_json,
    nesting_depth_exceeds,
    number_in_string,
    quote,
)
from collectors.mqtt.timestamps import describe_ms, parse_timestamp
from core.config import PayloadFormat
from core.config.topics import NAME_CHARS
from core.errors import PayloadError
from core.quantities import QUANTITIES, conversion_factor
from core.readings import Reading

__all__ = [
    "HARD_LATEST_MS",
    "MISSING",
    "PayloadLimits",
    "Record",
    "default_limits",
    "describe_ms",
    "load_json",
    "nesting_depth_exceeds",
    "parse_payload",
    "parse_records",
    "parse_timestamp",
    "resolve_pointer",
]

MISSING = object()
_NAME = re.compile(NAME_CHARS)
MAX_NAME_CHARS = 64
"""A meter name taken from a payload becomes part of a meter id, which is at most 64."""


class Record(NamedTuple):
    """One record of a message: the meter names it carries (for the route's template), its
    time, and its values in canonical units."""

    names: tuple[str, ...]
    ts_ms: int
    values: tuple[tuple[str, float], ...]
    """(quantity, value) in the quantity's canonical unit."""


def resolve_pointer(document: Any, pointer: str) -> Any:
    """RFC 6901: `/a/b/0`; `~1` is '/', `~0` is '~'. Returns `MISSING` when absent."""
    node = document
    for token in _tokens(pointer):
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


@lru_cache(maxsize=4096)
def _tokens(pointer: str) -> tuple[str, ...]:
    """A pointer's reference tokens, unescaped (a site has a few hundred pointers at most)."""
    return tuple(raw.replace("~1", "/").replace("~0", "~") for raw in pointer.split("/")[1:])


def parse_payload(
    payload: bytes,
    fmt: PayloadFormat,
    meter_id: str,
    received_ms: int,
    limits: PayloadLimits | None = None,
) -> list[Reading]:
    """Readings in canonical units, all of meter `meter_id` (a format read for one meter).
    A value that is absent (or null) is skipped; one that is not a finite number makes the
    whole message a dead letter (a half-read message hides faults). `limits`: the site's
    (`PayloadLimits.of_site`); default: `default_limits()`."""
    return [
        Reading(meter_id, quantity, record.ts_ms, value)
        for record in parse_records(payload, fmt, received_ms, limits)
        for quantity, value in record.values
    ]


def parse_records(
    payload: bytes,
    fmt: PayloadFormat,
    received_ms: int,
    limits: PayloadLimits | None = None,
    names: Sequence[str] = (),
) -> list[Record]:
    """The message's records, each with its time, its values in canonical units, and the
    values at the pointers `names` (the payload variables of a route's meter template) as
    meter names. Without `records` in the format the message is one record."""
    limits = limits or default_limits()
    document = load_json(payload, limits)
    if fmt.records is None:
        if not isinstance(document, dict):
            raise PayloadError(f"not an object: the payload is a JSON {json_type(document)}")
        ts_ms = _timestamp(document, fmt, limits, received_ms) if fmt.timestamp else received_ms
        values = _values(document, fmt, limits)
        if not values:
            raise PayloadError("no values: none of the format's fields is present")
        return [Record(_names(document, names), ts_ms, values)]
    return _records(document, fmt, limits, received_ms, names)


def _records(
    document: Any,
    fmt: PayloadFormat,
    limits: PayloadLimits,
    received_ms: int,
    names: Sequence[str],
) -> list[Record]:
    where = fmt.records or "the payload"
    array = resolve_pointer(document, fmt.records or "")
    if array is MISSING:
        raise PayloadError(f"no records at {fmt.records}")
    if not isinstance(array, list):
        raise PayloadError(f"not an array: {where} is a JSON {json_type(array)}")
    shared_ms = received_ms
    if fmt.timestamp and fmt.timestamp_scope == "message":
        if not isinstance(document, dict):
            raise PayloadError(f"not an object: the payload is a JSON {json_type(document)}")
        shared_ms = _timestamp(document, fmt, limits, received_ms)
    own_time = bool(fmt.timestamp) and fmt.timestamp_scope == "record"
    out = []
    for i, record in enumerate(array):
        if not isinstance(record, dict):
            raise PayloadError(
                f"not an object: record {i} of {where} is a JSON {json_type(record)}"
            )
        try:
            values = _values(record, fmt, limits)
            if not values:
                continue  # a meter on the bus that did not answer: nothing to store
            ts_ms = _timestamp(record, fmt, limits, received_ms) if own_time else shared_ms
            out.append(Record(_names(record, names), ts_ms, values))
        except PayloadError as exc:
            category, _, detail = str(exc).partition(": ")
            raise PayloadError(
                f"{category}: record {i}: {detail}" if detail else f"{category}: record {i}"
            ) from None
    if not out:
        raise PayloadError(
            f"no values: none of the format's fields is present in any of the {len(array)} "
            f"records of {where}"
        )
    return out


def _timestamp(node: Any, fmt: PayloadFormat, limits: PayloadLimits, received_ms: int) -> int:
    raw = resolve_pointer(node, fmt.timestamp)
    if raw is MISSING:
        raise PayloadError(f"no timestamp at {fmt.timestamp}")
    return parse_timestamp(raw, fmt, limits, received_ms)


def _values(
    node: dict[str, Any], fmt: PayloadFormat, limits: PayloadLimits
) -> tuple[tuple[str, float], ...]:
    out = []
    for spec_field in fmt.fields:
        raw = resolve_pointer(node, spec_field.pointer)
        if raw is MISSING or raw is None:
            continue
        number = raw
        if fmt.numeric_strings and isinstance(raw, str):
            number = number_in_string(raw, limits.max_number_chars)
        if (
            isinstance(number, bool)
            or not isinstance(number, int | float)
            or not math.isfinite(number)
        ):
            raise PayloadError(
                f"not a number: {spec_field.pointer} is {quote(raw)}, not a finite number"
            )
        spec = QUANTITIES[spec_field.quantity]
        written = float(number) * spec_field.scale + spec_field.offset
        value = written * conversion_factor(spec_field.unit, spec.unit)
        if not spec.accepts(value):
            raise PayloadError(
                f"out of range: {spec_field.pointer} gives {spec_field.quantity} = {value:g} "
                f"{spec.unit.value}, outside [{spec.low:g}, {spec.high:g}]"
            )
        out.append((spec_field.quantity, value))
    return tuple(out)


def _names(node: dict[str, Any], pointers: Sequence[str]) -> tuple[str, ...]:
    """The meter names at `pointers`: strings or whole numbers of id characters."""
    out = []
    for pointer in pointers:
        raw = resolve_pointer(node, pointer)
        if raw is MISSING or raw is None:
            raise PayloadError(f"no meter name at {pointer}")
        if isinstance(raw, int) and not isinstance(raw, bool):
            name = str(raw)
        elif isinstance(raw, str):
            name = raw
        else:
            name = ""
        if not name or len(name) > MAX_NAME_CHARS or _NAME.fullmatch(name) is None:
            raise PayloadError(
                f"bad meter name: {pointer} is {quote(raw)}, not up to {MAX_NAME_CHARS} "
                "letters, digits, '_', '.' or '-'"
            )
        out.append(name)
    return tuple(out)
