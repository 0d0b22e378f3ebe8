"""A suggested site-file snippet for an unconfigured device, from its last payload. Pure.

An installer adopting a device copies it into the site file, checks it and sets what no
payload can say (the building, the tenant, the parent). Two cases:

- the topic matches a route (`[mqtt.routes.NAME]`), or a gateway's message names a meter the
  route's template maps: the route says everything but the meter entry, so the snippet is
  a `[[meters]]` entry with `route = NAME` and the id the route gives;
- no route: a `[payload_formats.NAME]` guessed from the payload (its timestamp and its form,
  whether numbers come as strings, an array of records, each numeric value with the quantity
  and unit its key suggests) and a `[[meters]]` entry on the topic. Values whose key suggests
  no quantity are listed as comments.

The snippet is always valid TOML; the guesses are marked as guesses. The payload is read
with the collector's bounds (`load_json`), and at most `MAX_FIELDS` values are looked at.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from collectors.mqtt.bounded import PayloadLimits, load_json, number_in_string
from collectors.mqtt.routing import Unrouted
from core.config import SiteConfig
from core.errors import PayloadError
from core.quantities import QUANTITIES

MAX_FIELDS = 40
"""Numeric values looked at in one payload: a device with more is configured by hand."""

# (words in the key, quantity, unit): the first whose word is in the key's words wins
_GUESSES: tuple[tuple[frozenset[str], str, str], ...] = (
    (frozenset({"pf", "factor", "powerfactor", "cos"}), "power_factor", "1"),
    (frozenset({"reactive", "var", "kvar"}), "reactive_power", "kvar"),
    (frozenset({"apparent", "va", "kva"}), "apparent_power", "kVA"),
    (
        frozenset({"ep", "epi", "kwh", "energy", "total", "import", "consumption"}),
        "energy_import",
        "kWh",
    ),
    (frozenset({"power", "p", "watt", "w", "activepower"}), "power", "W"),
    (frozenset({"kw"}), "power", "kW"),
    (frozenset({"voltage", "volt", "u", "ua", "v"}), "voltage_l1", "V"),
    (frozenset({"current", "i", "ia", "amp", "a"}), "current_l1", "A"),
    (frozenset({"frequency", "freq", "hz", "f"}), "frequency", "Hz"),
    (frozenset({"flow", "instantflow", "flowrate", "m3h"}), "flow", "m3/h"),
    (frozenset({"volume", "totalflow", "cumulative", "m3", "water", "reading"}), "volume", "m3"),
    (frozenset({"pressure", "mpa"}), "pressure", "MPa"),
    (frozenset({"humidity", "rh", "hum"}), "relative_humidity", "%"),
    (frozenset({"irradiance", "ghi", "solar"}), "solar_irradiance", "W/m2"),
    (frozenset({"temperature", "temp", "t", "tc"}), "outdoor_temperature", "degC"),
)
_TIME_KEYS = frozenset({"time", "ts", "timestamp", "datetime", "date", "readtime", "t", "dt"})
_TIME_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S", "%Y/%m/%d %H:%M")
_KINDS = {
    "electricity": {
        "power",
        "energy_import",
        "voltage_l1",
        "current_l1",
        "power_factor",
        "frequency",
        "reactive_power",
        "apparent_power",
    },
    "water": {"volume", "flow", "pressure"},
    "weather": {"outdoor_temperature", "relative_humidity", "solar_irradiance"},
}
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
_NOT_ID = re.compile(r"[^A-Za-z0-9_.\-]+")


def suggest(site: SiteConfig, where: Unrouted, payload: bytes, limits: PayloadLimits) -> str:
    """A snippet that would configure the device (module doc); '' when the payload gives
    nothing to go on (not JSON, no number in it) and no route covers the topic."""
    if where.route and "{/" not in where.meter_id:
        route = site.mqtt.routes[where.route]
        kind = _kind({f.quantity for f in site.payload_formats[route.format].fields})
        return _meter(site, where.meter_id, kind, f'route = "{where.route}"', where.topic)
    try:
        document = load_json(payload, limits)
    except PayloadError:
        return ""
    records = ""
    sample = document
    if isinstance(document, list) and document and isinstance(document[0], dict):
        records, sample = "", document[0]
    elif isinstance(document, dict):
        for key, value in document.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                records, sample = "/" + _escape(key), value[0]
                break
    else:
        return ""
    in_records = sample is not document
    leaves = list(_leaves(sample))
    time_lines, time_pointer = _timestamp(leaves, site.site.timezone)
    if not time_pointer and in_records and isinstance(document, dict):
        time_lines, time_pointer = _timestamp(list(_leaves(document)), site.site.timezone)
        if time_pointer:
            time_lines.insert(1, 'timestamp_scope = "message"')
    fields: list[tuple[str, str, str]] = []
    others: list[str] = []
    strings = False
    for pointer, value in leaves:
        if pointer == time_pointer or len(fields) + len(others) >= MAX_FIELDS:
            continue
        number = value
        if isinstance(value, str):
            number = number_in_string(value, limits.max_number_chars) if len(value) < 40 else None
            strings = strings or number is not None
        if isinstance(number, bool) or not isinstance(number, int | float):
            continue
        guess = _quantity(pointer)
        if guess is None:
            others.append(
                f"#   {{ pointer = {_toml(pointer)}, quantity = ?, unit = ? }},  # {value!r}"
            )
        else:
            fields.append((pointer, *guess))
    if not fields and not others:
        return ""
    name = _free_name(site, _NOT_ID.sub("-", where.topic).strip("-._")[:64] or "device")
    lines = [
        f"# guessed from the last payload on {where.topic}: check every quantity and unit",
        f"[payload_formats.{_toml(name)}]",
    ]
    if in_records:
        lines.append(f"records = {_toml(records)}")
    lines += time_lines
    if strings:
        lines.append("numeric_strings = true")
    lines.append("fields = [")
    lines += [
        f"  {{ pointer = {_toml(p)}, quantity = {_toml(q)}, unit = {_toml(u)} }},"
        for p, q, u in fields
    ]
    lines += [f"  {line}" for line in others]
    lines.append("]")
    if not fields:
        lines.insert(0, "# no value's key names a quantity: fill in fields (at least one)")
    kind = _kind({q for _, q, _ in fields})
    meter = _meter(
        site, name, kind, f"topic = {_toml(where.topic)}\nformat = {_toml(name)}", where.topic
    )
    return "\n".join(lines) + "\n\n" + meter


def _meter(site: SiteConfig, meter_id: str, kind: str, source: str, topic: str) -> str:
    building = site.buildings[0].id
    return (
        f"# a meter for {topic}: set its building (and tenant, parent)\n"
        "[[meters]]\n"
        f"id = {_toml(meter_id)}\n"
        f'kind = "{kind}"\n'
        f"building = {_toml(building)}\n"
        "[meters.mqtt]\n"
        f"{source}\n"
    )


def _kind(quantities: set[str]) -> str:
    best = max(_KINDS, key=lambda k: len(_KINDS[k] & quantities))
    return best if _KINDS[best] & quantities else "electricity"


def _quantity(pointer: str) -> tuple[str, str] | None:
    """The quantity and unit a value's key suggests: the whole key first (`totalFlow`), then
    its words (`total`, `flow`)."""
    key = pointer.rsplit("/", 1)[-1]
    whole = {key.lower()}
    words = {w.lower() for w in _WORD.findall(key)}
    for candidates in (whole, words):
        for keys, quantity, unit in _GUESSES:
            if keys & candidates and quantity in QUANTITIES:
                return quantity, unit
    return None


def _timestamp(leaves: list[tuple[str, Any]], zone: str) -> tuple[list[str], str]:
    """The lines of the format's timestamp and the pointer it takes, from the first value
    whose key names a time; none: the receive time."""
    for pointer, value in leaves:
        words = {w.lower() for w in _WORD.findall(pointer.rsplit("/", 1)[-1])}
        if not (words & _TIME_KEYS or pointer.rsplit("/", 1)[-1].lower() in _TIME_KEYS):
            continue
        form = _time_form(value)
        if form is None:
            continue
        lines = [f"timestamp = {_toml(pointer)}", f"timestamp_format = {_toml(form)}"]
        if form not in ("epoch_s", "epoch_ms"):
            lines.append(f"timestamp_timezone = {_toml(zone)}  # if the device writes local time")
        return lines, pointer
    return [], ""


def _time_form(value: Any) -> str | None:
    if isinstance(value, str) and len(value) <= 40:
        if value.isascii() and value.isdigit():
            value = int(value)
        else:
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
                return "iso8601"
            except ValueError:
                pass
            for form in _TIME_FORMATS:
                try:
                    datetime.strptime(value, form)
                    return form
                except ValueError:
                    continue
            return None
    if isinstance(value, int) and not isinstance(value, bool):
        if 10**12 <= value < 10**13:
            return "epoch_ms"
        if 10**9 <= value < 10**10:
            return "epoch_s"
    return None


def _leaves(node: Any) -> Iterator[tuple[str, Any]]:
    """(pointer, value) of the scalars under `node`, depth first, objects only (arrays of
    values are not a reading's shape); iterative and bounded by the payload's size."""
    stack: list[tuple[str, Any]] = [("", node)]
    while stack:
        pointer, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{pointer}/{_escape(k)}", v) for k, v in reversed(value.items()))
        elif not isinstance(value, list) and pointer:
            yield pointer, value


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _free_name(site: SiteConfig, base: str) -> str:
    taken = set(site.meters_by_id) | set(site.payload_formats)
    name, n = base, 2
    while name in taken:
        suffix = f"-{n}"
        name, n = base[: 64 - len(suffix)] + suffix, n + 1
    if not name[0].isalnum():
        name = "d" + name[:63]
    return name


def _toml(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, but TOML has no surrogate pairs (so
    non-ASCII stays as it is) and wants DEL escaped too."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
