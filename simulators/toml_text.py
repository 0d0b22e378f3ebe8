"""Writing TOML: the small subset the generated site files need (no writer is installed).

    dumps({"site": {"id": "x", "name": "某地"}, "meters": [{"id": "E-1", "mqtt": Inline(...)}]})

- a mapping is a table (`[a.b]`), a list of mappings an array of tables (`[[a]]`), written
  after the plain keys of their parent, in insertion order;
- `Inline(mapping)` is an inline table (`{ k = v }`), also inside lists;
- values: str, bool, int, finite float, `date`, `datetime` (with its offset), lists of them.

What comes out is read back by `tomllib` to the same data (the tests check it); anything
else (NaN, a set, a naive time) is a `TypeError`/`ValueError` here, never a file that does
not load.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b"}


class Inline(dict[str, Any]):
    """A mapping written as an inline table: `{ gateway = "gw-1", unit = 3 }`."""


def key(name: str) -> str:
    """`name` as a TOML key: bare when it can be, else a quoted string."""
    return name if _BARE_KEY.match(name) else string(name)


def string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def value(v: Any) -> str:
    """One value, inline."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"TOML has no place for {v!r} in a site file")
        return repr(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, datetime):
        if v.tzinfo is None:
            raise ValueError(f"{v!r}: a time needs its UTC offset")
        return v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Mapping):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, Sequence):
        return "[" + ", ".join(value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML: {v!r}")


def _is_table(v: Any) -> bool:
    return isinstance(v, Mapping) and not isinstance(v, Inline)


def _is_table_array(v: Any) -> bool:
    return (
        isinstance(v, Sequence)
        and not isinstance(v, str)
        and bool(v)
        and all(_is_table(x) for x in v)
    )


WIDTH = 100
"""An array whose line would be longer is written one element a line."""


def _line(k: str, v: Any) -> str:
    line = f"{key(k)} = {value(v)}"
    if len(line) <= WIDTH or isinstance(v, (str, Mapping)) or not isinstance(v, Sequence):
        return line
    return f"{key(k)} = [\n" + "".join(f"  {value(x)},\n" for x in v) + "]"


def _body(table: Mapping[str, Any], path: str, out: list[str]) -> None:
    for k, v in table.items():
        if not (_is_table(v) or _is_table_array(v)):
            out.append(_line(k, v))
    for k, v in table.items():
        name = f"{path}.{key(k)}" if path else key(k)
        if _is_table(v):
            plain = any(not (_is_table(x) or _is_table_array(x)) for x in v.values())
            if plain or not v:
                out += ["", f"[{name}]"]
            _body(v, name, out)
        elif _is_table_array(v):
            for item in v:
                out += ["", f"[[{name}]]"]
                _body(item, name, out)


def dumps(doc: Mapping[str, Any], header: str = "") -> str:
    """The document as TOML text; `header` lines become comments at the top."""
    out = [f"# {line}".rstrip() for line in header.splitlines()]
    body: list[str] = []
    _body(doc, "", body)
    while body and body[0] == "":
        body.pop(0)
    if out and body:
        out.append("")
    return "\n".join(out + body) + "\n"
