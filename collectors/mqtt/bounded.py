"""The bounded JSON reader: one MQTT payload to a JSON value, or `PayloadError`. Pure.

Nothing a payload holds can make this module raise anything else, recurse without bound, or
use memory out of proportion to the payload. In order:

1. size: at most `max_payload_bytes`, checked before anything is decoded;
2. encoding: strict UTF-8 (no byte-order mark, no lone surrogates, escaped or not);
3. nesting: at most `max_depth` levels, counted by a flat scan before `json` sees the text
   (the C decoder recurses once per level);
4. literals: numbers of at most `max_number_chars` characters that are finite doubles
   (`NaN`, `Infinity`, `1e400` refused), and no key twice in one object (the last value would
   otherwise win silently, and could carry a value past the range check).

`PayloadLimits` also carries the plausibility window every device timestamp must fall in
(`collectors.mqtt.timestamps`).
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

from core.config import MqttConfig, SiteConfig
from core.errors import PayloadError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
HARD_LATEST_MS = 7_258_118_400_000
"""2200-01-01T00:00Z: the latest timestamp ever handed on, whatever the window says, so that a
stored time is representable everywhere downstream (int64 nanoseconds end in 2262)."""


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


def _too_long(literal: str, max_chars: int) -> PayloadError:
    return PayloadError(
        f"number out of range: a literal of {len(literal)} characters "
        f"({literal[:12]}...) is longer than {max_chars}"
    )


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise PayloadError(f"number out of range: {literal} overflows a double")
    if value == 0.0 and _NONZERO_MANTISSA.search(literal.partition("e")[0].partition("E")[0]):
        raise PayloadError(f"number out of range: {literal} underflows to 0")
    return value + 0.0  # -0.0 -> 0.0


_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
"""A number written in a string (`numeric_strings`): JSON's grammar, leading zeros allowed
(meters pad their registers: `"000123.45"`), ASCII digits only (`str.isdigit` takes `١٢`)."""


def number_in_string(text: str, max_chars: int) -> int | float | None:
    """The number a string holds (`"1234.5"`), within the literal limits; None when the string
    is not a plain decimal number. `PayloadError` when it is one out of range."""
    match = _DECIMAL.fullmatch(text)  # linear: payloads are bounded, the pattern cannot nest
    if match is None:
        return None
    if len(text) > max_chars:
        raise _too_long(text, max_chars)
    if match.group(1) is None and match.group(2) is None:
        return int(text)
    return _finite_float(text)


def _strict_decoder(max_chars: int) -> json.JSONDecoder:
    def parse_int(literal: str) -> int:
        if len(literal) > max_chars:
            raise _too_long(literal, max_chars)
        return int(literal)

    def parse_float(literal: str) -> float:
        if len(literal) > max_chars:
            raise _too_long(literal, max_chars)
        return _finite_float(literal)

    def parse_constant(name: str) -> float:
        raise PayloadError(f"not JSON: {name} is not a JSON number")

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        document = dict(pairs)
        if len(document) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    raise PayloadError(f"duplicate key {quote(key)} in one object")
                seen.add(key)
        return document

    return json.JSONDecoder(
        parse_int=parse_int,
        parse_float=parse_float,
        parse_constant=parse_constant,
        object_pairs_hook=unique_keys,
    )


def quote(value: Any, limit: int = 40) -> str:
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


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for reasons."""
    return {
        list: "array",
        str: "string",
        int: "number",
        float: "number",
        bool: "boolean",
        type(None): "null",
        dict: "object",
    }.get(type(value), type(value).__name__)
