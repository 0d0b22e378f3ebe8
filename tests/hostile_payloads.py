"""A hostile MQTT payload corpus: every JSON, number, encoding and timestamp edge we could
think of, as data the tests (and anyone else) can import.

Each `Case` is a payload for one of three payload formats (`FORMATS`), with what the parser
must make of it: readings (`reason=None`), or a `PayloadError` whose reason contains
`reason`. The formats are the shapes real devices write:

- `flat_ms`: `{"ts": <epoch ms>, "p": <W>, "e": <kWh>}` (an IoT meter);
- `flat_s`:  the same with `"ts"` in epoch seconds;
- `tasmota`: `{"Time": "<local ISO-8601>", "ENERGY": {"Power": <W>, "Total": <kWh>}}`.

Timestamps are built around `now_ms` (the receive time the parser is given), so the cases
stay at the edges of the plausibility window whatever the date. `MAX_BYTES` and `MAX_DEPTH`
are `[mqtt]`'s defaults.

    for case in corpus(now_ms):
        parse_payload(case.payload, FORMATS[case.fmt], "M", now_ms, limits)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.config import MqttConfig, PayloadFormat

_DEFAULTS = MqttConfig()
MAX_BYTES = _DEFAULTS.max_payload_bytes
MAX_DEPTH = _DEFAULTS.max_depth
MAX_NUMBER_CHARS = _DEFAULTS.max_number_chars

FORMATS: dict[str, PayloadFormat] = {
    "flat_ms": PayloadFormat.model_validate(
        {
            "timestamp": "/ts",
            "timestamp_format": "epoch_ms",
            "fields": [
                {"pointer": "/p", "quantity": "power", "unit": "W"},
                {"pointer": "/e", "quantity": "energy_import", "unit": "kWh"},
            ],
        }
    ),
    "flat_s": PayloadFormat.model_validate(
        {
            "timestamp": "/ts",
            "timestamp_format": "epoch_s",
            "fields": [
                {"pointer": "/p", "quantity": "power", "unit": "W"},
                {"pointer": "/e", "quantity": "energy_import", "unit": "kWh"},
            ],
        }
    ),
    "tasmota": PayloadFormat.model_validate(
        {
            "timestamp": "/Time",
            "timestamp_format": "iso8601",
            "timestamp_timezone": "Asia/Shanghai",
            "fields": [
                {"pointer": "/ENERGY/Power", "quantity": "power", "unit": "W"},
                {"pointer": "/ENERGY/Total", "quantity": "energy_import", "unit": "kWh"},
            ],
        }
    ),
}


@dataclass(frozen=True)
class Case:
    name: str
    fmt: str
    payload: bytes
    reason: str | None
    """A fragment of the dead-letter reason; None: the payload gives readings."""


def _j(text: str) -> bytes:
    return text.encode("utf-8")


def corpus(now_ms: int) -> list[Case]:
    """Every case, for a parser whose receive time is `now_ms` (UTC epoch ms)."""
    ts = now_ms - 60_000  # a minute ago: plausible
    ts_s = ts // 1000
    local = (datetime.fromtimestamp(ts / 1000, UTC) + timedelta(hours=8)).strftime(
        "%Y-%m-%dT%H:%M:%S"
    )
    cases: list[Case] = []

    def flat(name: str, body: str | bytes, reason: str | None) -> None:
        cases.append(Case(name, "flat_ms", body if isinstance(body, bytes) else _j(body), reason))

    def ms_ts(name: str, value: str, reason: str | None) -> None:
        flat(name, f'{{"ts": {value}, "p": 1000, "e": 12.5}}', reason)

    def s_ts(name: str, value: str, reason: str | None) -> None:
        cases.append(Case(name, "flat_s", _j(f'{{"ts": {value}, "p": 1000, "e": 12.5}}'), reason))

    def iso(name: str, value: str, reason: str | None) -> None:
        body = f'{{"Time": {value}, "ENERGY": {{"Power": 850, "Total": 12.345}}}}'
        cases.append(Case(name, "tasmota", _j(body), reason))

    def value(name: str, p: str, reason: str | None) -> None:
        flat(name, f'{{"ts": {ts}, "p": {p}, "e": 12.5}}', reason)

    # --- the valid baseline, and valid edges ------------------------------------------------
    flat("valid", f'{{"ts": {ts}, "p": 1000, "e": 12.5}}', None)
    flat("valid compact", f'{{"ts":{ts},"p":1000,"e":12.5}}', None)
    flat("valid with whitespace", f'\n\t {{ "ts" : {ts} , "p" : 1000 }} \r\n', None)
    flat("valid, extra unknown fields", f'{{"ts": {ts}, "p": 1, "x": [1, {{"y": null}}]}}', None)
    flat("valid, only one field", f'{{"ts": {ts}, "e": 1}}', None)
    flat("valid, one field null", f'{{"ts": {ts}, "p": null, "e": 1}}', None)
    flat("valid, unicode elsewhere", f'{{"ts": {ts}, "p": 1, "名": "电表 ⚡"}}', None)
    flat("valid, astral pair escape", f'{{"ts": {ts}, "p": 1, "n": "\\ud83d\\ude00"}}', None)
    flat("valid, brackets inside strings", f'{{"ts": {ts}, "p": 1, "s": "{"[" * 500}"}}', None)
    flat("valid, escaped quotes", f'{{"ts": {ts}, "p": 1, "s": "a\\"[[[[\\\\"}}', None)
    value("negative zero", "-0", None)
    value("negative zero float", "-0.0", None)
    value("zero exponent", "0e0", None)
    value("upper-case exponent", "1E3", None)
    value("power at the top of its range", "1e8", None)  # 1e8 W = 1e5 kW
    value("32-character literal", "1" + "0" * 5 + "." + "0" * 25, None)
    ms_ts("ms with a fraction", f"{ts}.5", None)
    ms_ts("ms a few minutes ahead", str(now_ms + 5 * 60_000), None)
    s_ts("seconds", str(ts_s), None)
    s_ts("seconds with a fraction", f"{ts_s}.25", None)
    iso("local time", f'"{local}"', None)
    iso("with Z", f'"{datetime.fromtimestamp(ts / 1000, UTC):%Y-%m-%dT%H:%M:%S}Z"', None)
    iso("with an offset", f'"{local}+08:00"', None)
    iso("with microseconds", f'"{local}.123456"', None)
    pad = MAX_BYTES - len(_j(f'{{"ts": {ts}, "p": 1, "pad": ""}}'))
    flat("exactly max_payload_bytes", f'{{"ts": {ts}, "p": 1, "pad": "{"x" * pad}"}}', None)
    nested = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    flat("nested to max_depth", f'{{"ts": {ts}, "p": 1, "n": {nested}}}', None)

    # --- not JSON -------------------------------------------------------------------------
    for name, body in [
        ("plain text", "not json"),
        ("open brace", "{"),
        ("close brace", "}"),
        ("unquoted key", "{not json}"),
        ("trailing comma", f'{{"ts": {ts}, "p": 1,}}'),
        ("single quotes", f"{{'ts': {ts}, 'p': 1}}"),
        ("comment", f'{{"ts": {ts}, /* c */ "p": 1}}'),
        ("two objects", f'{{"ts": {ts}, "p": 1}}{{"ts": {ts}, "p": 2}}'),
        ("JSON lines", f'{{"ts": {ts}, "p": 1}}\n{{"ts": {ts}, "p": 2}}'),
        ("whitespace only", " \n\t "),
        ("hex number", f'{{"ts": {ts}, "p": 0x10}}'),
        ("leading zero", f'{{"ts": {ts}, "p": 01}}'),
        ("plus sign", f'{{"ts": {ts}, "p": +1}}'),
        ("bare point", f'{{"ts": {ts}, "p": .5}}'),
        ("trailing point", f'{{"ts": {ts}, "p": 1.}}'),
        ("lower-case nan", f'{{"ts": {ts}, "p": nan}}'),
        ("undefined", f'{{"ts": {ts}, "p": undefined}}'),
        ("raw control character", f'{{"ts": {ts}, "p": 1, "s": "a\x01b"}}'),
        ("raw NUL in a string", f'{{"ts": {ts}, "p": 1, "s": "a\x00b"}}'),
        ("NUL byte", "\x00"),
        ("unterminated string", f'{{"ts": {ts}, "p": 1, "s": "abc'),
        ("unterminated escapes", '"' + '\\"' * 5000),
        ("bad escape", f'{{"ts": {ts}, "p": 1, "s": "\\x41"}}'),
        ("truncated unicode escape", f'{{"ts": {ts}, "p": 1, "s": "\\ud8"}}'),
    ]:
        flat(name, body, "not JSON")
    flat("empty payload", b"", "empty payload")
    flat("NaN literal", f'{{"ts": {ts}, "p": NaN}}', "NaN is not a JSON number")
    flat("Infinity literal", f'{{"ts": {ts}, "p": Infinity}}', "Infinity is not a JSON number")
    flat("-Infinity literal", f'{{"ts": {ts}, "p": -Infinity}}', "Infinity is not a JSON number")
    flat("NaN timestamp", '{"ts": NaN, "p": 1}', "NaN is not a JSON number")

    # --- not an object --------------------------------------------------------------------
    for name, body in [
        ("null", "null"),
        ("true", "true"),
        ("false", "false"),
        ("number", "1"),
        ("string", '"hello"'),
        ("empty array", "[]"),
        ("array of readings", f'[{{"ts": {ts}, "p": 1}}]'),
    ]:
        flat(f"top-level {name}", body, "not an object")
    flat("empty object", "{}", "no timestamp at /ts")

    # --- numbers --------------------------------------------------------------------------
    value("1e400", "1e400", "overflows a double")
    value("-1e400", "-1e400", "overflows a double")
    value("1e-400 underflows", "1e-400", "underflows to 0")
    value("4300-digit integer", "9" * 4300, "number out of range")
    value("5000-digit integer", "1" * 5000, "number out of range")
    value("33-character literal", "1" * 33, "number out of range")
    value("long fraction", "0." + "1" * 40, "number out of range")
    value("huge exponent literal", "1e" + "9" * 30, "number out of range")
    value("1e308 W", "1e308", "out of range: /p gives power")
    value("power beyond its range", "1e9", "out of range: /p gives power")
    flat("negative energy", f'{{"ts": {ts}, "e": -5}}', "out of range: /e gives energy_import")
    value("number as a string", '"1000"', "not a number: /p")
    value("NaN as a string", '"NaN"', "not a number: /p")
    value("true", "true", "not a number: /p")
    value("false", "false", "not a number: /p")
    value("array", "[1]", "not a number: /p")
    value("object", '{"v": 1}', "not a number: /p")
    flat("both fields null", f'{{"ts": {ts}, "p": null, "e": null}}', "no values")
    flat("no fields", f'{{"ts": {ts}}}', "no values")
    flat("fields misspelt", f'{{"ts": {ts}, "P": 1, "E": 2}}', "no values")

    # --- duplicate keys -------------------------------------------------------------------
    flat("duplicate value key", f'{{"ts": {ts}, "p": 1, "p": 2}}', 'duplicate key "p"')
    flat(
        "duplicate carrying a value past the range check",
        f'{{"ts": {ts}, "p": 1e12, "p": 1}}',
        'duplicate key "p"',
    )
    flat("duplicate timestamp", f'{{"ts": 0, "ts": {ts}, "p": 1}}', 'duplicate key "ts"')
    flat("duplicate nested", f'{{"ts": {ts}, "p": 1, "x": {{"a": 1, "a": 2}}}}', "duplicate key")
    flat("duplicate empty key", f'{{"ts": {ts}, "p": 1, "": 1, "": 2}}', 'duplicate key ""')

    # --- structure and size ---------------------------------------------------------------
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    flat("nested one past max_depth", f'{{"ts": {ts}, "p": 1, "n": {deep}}}', "nested too deep")
    flat("objects nested 1000 deep", '{"a":' * 1000 + "1" + "}" * 1000, "nested too deep")
    flat("arrays nested 30000 deep", "[" * 30_000 + "]" * 30_000, "nested too deep")
    flat("unbalanced nesting", "[" * 60_000, "nested too deep")
    flat("one byte over max_payload_bytes", b" " * (MAX_BYTES + 1), "payload too large")
    flat("1 MiB of zeros", b"\x00" * (1 << 20), "payload too large")
    flat(
        "1 MiB of valid JSON",
        _j(f'{{"ts": {ts}, "p": 1, "pad": "{"x" * (1 << 20)}"}}'),
        "payload too large",
    )
    many_keys = ", ".join(f'"k{i}": {i}' for i in range(3000))
    flat("3000 keys", f'{{"ts": {ts}, "p": 1, {many_keys}}}', None)

    # --- encodings ------------------------------------------------------------------------
    body = f'{{"ts": {ts}, "p": 1000, "e": 12.5}}'
    flat("UTF-16 with BOM", body.encode("utf-16"), "not UTF-8")
    flat("UTF-16-BE with BOM", b"\xfe\xff" + body.encode("utf-16-be"), "not UTF-8")
    flat("UTF-16-LE without BOM", body.encode("utf-16-le"), "not JSON")
    flat("UTF-32", body.encode("utf-32"), "not UTF-8")
    flat("UTF-8 BOM", b"\xef\xbb\xbf" + _j(body), "byte-order mark")
    flat("GBK", f'{{"ts": {ts}, "p": 1, "名称": "电表"}}'.encode("gbk"), "not UTF-8")
    flat("Latin-1", f'{{"ts": {ts}, "p": 1, "n": "café"}}'.encode("latin-1"), "not UTF-8")
    flat(
        "encoded surrogate (CESU-8)",
        _j(f'{{"ts": {ts}, "p": 1, "s": "') + b'\xed\xa0\x80"}',
        "not UTF-8",
    )
    flat("overlong slash", _j(f'{{"ts": {ts}, "p": 1, "s": "') + b'\xc0\xaf"}', "not UTF-8")
    flat("truncated UTF-8", _j(f'{{"ts": {ts}, "p": 1, "s": "') + b'\xe7\x94"}', "not UTF-8")
    flat("binary", bytes(range(256)), "not UTF-8")
    flat("lone high surrogate", f'{{"ts": {ts}, "p": 1, "s": "\\ud800"}}', "lone surrogate")
    flat("lone low surrogate", f'{{"ts": {ts}, "p": 1, "s": "\\udc00"}}', "lone surrogate")
    flat("reversed pair", f'{{"ts": {ts}, "p": 1, "s": "\\ude00\\ud83d"}}', "lone surrogate")
    flat("lone surrogate key", f'{{"ts": {ts}, "p": 1, "\\udfff": 1}}', "lone surrogate")
    flat("lone surrogate value", f'{{"ts": {ts}, "p": "\\ud800"}}', "lone surrogate")

    # --- timestamps: epoch ms -------------------------------------------------------------
    for name, raw in [
        ("year 1", "-62135596800000"),
        ("year 1900", "-2208988800000"),
        ("1970 (epoch 0)", "0"),
        ("negative", "-1"),
        ("2000 (an unset RTC)", "946684800000"),
        ("1e-3", "0.001"),
        ("-1e308", "-1e308"),
    ]:
        ms_ts(f"ts {name}", raw, "before the earliest plausible time")
    for name, raw in [
        ("year 3000", "32503680000000"),
        ("year 9999", "253402300799000"),
        ("1e17 ms", "1e17"),
        ("1e17 ms as an integer", "100000000000000000"),
        ("1e20", "1e20"),
        ("1e308", "1e308"),
        ("2**63", str(2**63)),
        ("2**64", str(2**64)),
        ("2**70", str(2**70)),
        ("an hour ahead", str(now_ms + 3_600_000)),
    ]:
        ms_ts(f"ts {name}", raw, "ahead of the receive time")
    ms_ts("seconds sent as ms", str(ts_s), "looks like seconds")
    ms_ts("seconds with fraction sent as ms", f"{ts_s}.5", "looks like seconds")
    ms_ts("microseconds sent as ms", str(ts * 1000), "looks like microseconds")
    ms_ts("nanoseconds sent as ms", str(ts * 1_000_000), "looks like nanoseconds")
    ms_ts("ts as a string", f'"{ts}"', "is not a number (epoch_ms)")
    ms_ts("ts true", "true", "is not a number (epoch_ms)")
    ms_ts("ts null", "null", "is not a number (epoch_ms)")
    ms_ts("ts array", f"[{ts}]", "is not a number (epoch_ms)")
    ms_ts("ts object", f'{{"v": {ts}}}', "is not a number (epoch_ms)")
    ms_ts("ts ISO string", '"2026-01-01T00:00:00Z"', "is not a number (epoch_ms)")
    flat("ts missing", '{"p": 1}', "no timestamp at /ts")

    # --- timestamps: epoch seconds --------------------------------------------------------
    s_ts("ms sent as seconds", str(ts), "looks like milliseconds")
    s_ts("µs sent as seconds", str(ts * 1000), "looks like microseconds")
    s_ts("seconds 0", "0", "before the earliest plausible time")
    s_ts("seconds 1e20", "1e20", "ahead of the receive time")
    s_ts("seconds 1e308", "1e308", "ahead of the receive time")
    s_ts("seconds -1e308", "-1e308", "before the earliest plausible time")
    s_ts("seconds 2**70", str(2**70), "ahead of the receive time")
    s_ts("seconds 1e17 (ms 1e20)", "1e17", "ahead of the receive time")

    # --- timestamps: ISO-8601 (Tasmota) ---------------------------------------------------
    iso("Tasmota year 0001", '"0001-01-01T00:00:00"', "before the earliest plausible time")
    iso("year 1 with +14:00", '"0001-01-01T00:00:00+14:00"', "before the earliest plausible time")
    iso("year 1900", '"1900-01-01T00:00:00"', "before the earliest plausible time")
    iso("1970", '"1970-01-01T08:00:00"', "before the earliest plausible time")
    iso("year 3000", '"3000-01-01T00:00:00"', "ahead of the receive time")
    iso("year 9999 end", '"9999-12-31T23:59:59.999999"', "ahead of the receive time")
    iso("year 9999 at -12:00", '"9999-12-31T23:59:59-12:00"', "ahead of the receive time")
    iso("month 13", '"2026-13-01T00:00:00"', "not ISO-8601")
    iso("February 30", '"2026-02-30T00:00:00"', "not ISO-8601")
    iso("hour 24", '"2026-01-01T24:00:00"', "not ISO-8601")
    iso("offset +25:00", '"2026-01-01T00:00:00+25:00"', "not ISO-8601")
    iso("year 0", '"0000-01-01T00:00:00"', "not ISO-8601")
    iso("year 10000", '"10000-01-01T00:00:00"', "not ISO-8601")
    iso("slashes", '"05/01/2026 09:00"', "not ISO-8601")
    iso("empty", '""', "not ISO-8601")
    iso("very long", '"' + "2026" * 1000 + '"', "too long")
    iso("lone surrogate", '"2026-01-01T00:00:00\\ud800"', "lone surrogate")
    iso("epoch number", str(ts), "is not an ISO-8601 string")
    iso("null", "null", "is not an ISO-8601 string")
    iso("true", "true", "is not an ISO-8601 string")
    return cases


def valid_probe(i: int, now_ms: int) -> bytes:
    """The i-th valid `flat_ms` message (distinct timestamps, so each is stored once)."""
    return json.dumps({"ts": now_ms - 3_600_000 + i * 1000, "p": 1000 + i, "e": 10 + i}).encode()
