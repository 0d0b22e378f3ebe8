"""Turning one MQTT payload into readings: pure, no I/O.

The site file's payload formats say where each value lives (RFC 6901 JSON pointers), in
which unit, and where the device wrote its timestamp. Anything we cannot use raises
`PayloadError` with a reason precise enough for the dead-letter record.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.config import PayloadFormat
from core.errors import PayloadError
from core.quantities import QUANTITIES, conversion_factor
from core.readings import Reading

MISSING = object()


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
            if not token.isdigit() or int(token) >= len(node):
                return MISSING
            node = node[int(token)]
        else:
            return MISSING
    return node


def parse_timestamp(value: Any, fmt: PayloadFormat) -> int:
    """Device timestamp to UTC epoch ms."""
    if fmt.timestamp_format in ("epoch_s", "epoch_ms"):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise PayloadError(f"timestamp {value!r} is not a number ({fmt.timestamp_format})")
        return int(value * 1000) if fmt.timestamp_format == "epoch_s" else int(value)
    if not isinstance(value, str):
        raise PayloadError(f"timestamp {value!r} is not an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"timestamp {value!r} is not ISO-8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(fmt.timestamp_timezone))
    return int(moment.astimezone(UTC).timestamp() * 1000)


def parse_payload(
    payload: bytes, fmt: PayloadFormat, meter_id: str, received_ms: int
) -> list[Reading]:
    """Readings in canonical units. A value that is absent is skipped; one that is not a
    finite number makes the whole message a dead letter (a half-read message hides faults)."""
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise PayloadError(f"expected a JSON object, got {type(document).__name__}")
    if fmt.timestamp:
        raw_ts = resolve_pointer(document, fmt.timestamp)
        if raw_ts is MISSING:
            raise PayloadError(f"no timestamp at {fmt.timestamp}")
        ts_ms = parse_timestamp(raw_ts, fmt)
    else:
        ts_ms = received_ms
    readings = []
    for field in fmt.fields:
        raw = resolve_pointer(document, field.pointer)
        if raw is MISSING or raw is None:
            continue
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise PayloadError(f"{field.pointer} is {raw!r}, not a finite number")
        spec = QUANTITIES[field.quantity]
        value = float(raw) * conversion_factor(field.unit, spec.unit)
        if not spec.accepts(value):
            raise PayloadError(
                f"out of range: {field.pointer} gives {field.quantity} = {value:g} {spec.unit.value}, "
                f"outside [{spec.low:g}, {spec.high:g}]"
            )
        readings.append(Reading(meter_id, field.quantity, ts_ms, value))
    if not readings:
        raise PayloadError("none of the format's fields is present")
    return readings
