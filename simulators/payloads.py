"""Render a payload the way a device with a given payload format would write it.

The inverse of `collectors.mqtt.payload.parse_payload`: the JSON pointers of the format
become nested objects, values go out in the format's units, the timestamp in its form.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.config import PayloadFormat
from core.quantities import QUANTITIES, conversion_factor


def _put(document: dict[str, Any], pointer: str, value: Any) -> None:
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
    node = document
    for token in tokens[:-1]:
        node = node.setdefault(token, {})
    node[tokens[-1]] = value


def render_timestamp(ts_ms: int, fmt: PayloadFormat) -> int | float | str:
    if fmt.timestamp_format == "epoch_ms":
        return ts_ms
    if fmt.timestamp_format == "epoch_s":
        return ts_ms // 1000
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    if fmt.timestamp_timezone == "UTC":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    # devices that write local time write it without an offset
    return moment.astimezone(ZoneInfo(fmt.timestamp_timezone)).strftime("%Y-%m-%dT%H:%M:%S")


def render_payload(fmt: PayloadFormat, values: dict[str, float], ts_ms: int) -> bytes:
    document: dict[str, Any] = {}
    if fmt.timestamp:
        _put(document, fmt.timestamp, render_timestamp(ts_ms, fmt))
    for field in fmt.fields:
        if field.quantity in values:
            factor = conversion_factor(field.unit, QUANTITIES[field.quantity].unit)
            _put(document, field.pointer, round(values[field.quantity] / factor, 4))
    return json.dumps(document, separators=(",", ":")).encode()
