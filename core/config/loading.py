"""Reading a site file: TOML, validation, cross-references, one `ConfigError` naming file,
entity and key."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.config.base import FieldError
from core.config.portfolio import PortfolioFile
from core.config.references import check_references
from core.config.site import SiteConfig
from core.errors import ConfigError

# --------------------------------------------------------------------------- loading

_SINGULAR = {
    "buildings": "building",
    "tenants": "tenant",
    "gateways": "gateway",
    "meters": "meter",
    "contracts": "contract",
    "payload_formats": "payload_format",
}


def _entity_and_key(raw: Mapping[str, Any], loc: tuple[int | str, ...]) -> tuple[str, str]:
    """('meters', 3, 'modbus', 'unit') -> ("meter 'E-12'", 'modbus.unit')."""
    if not loc:
        return "", ""
    section = str(loc[0])
    if section == "notify" and len(loc) >= 3 and loc[1] == "channels":
        return _channel_entity_and_key(raw, loc)
    if section in _SINGULAR and len(loc) >= 2:
        label = _SINGULAR[section]
        ident: object = loc[1]
        if isinstance(loc[1], int):
            items = raw.get(section)
            if isinstance(items, list) and loc[1] < len(items) and isinstance(items[loc[1]], dict):
                ident = items[loc[1]].get("id", f"#{loc[1] + 1}")
            else:
                ident = f"#{loc[1] + 1}"
        key = ".".join(str(p) for p in loc[2:]) or "(entry)"
        return f"{label} {ident!r}", key
    return f"[{section}]", ".".join(str(p) for p in loc[1:]) or "(section)"


def _channel_entity_and_key(raw: Mapping[str, Any], loc: tuple[int | str, ...]) -> tuple[str, str]:
    """('notify', 'channels', 0, 'email', 'host') -> ("notify channel 'ops-mail'", 'host')."""
    notify = raw.get("notify")
    channels = notify.get("channels") if isinstance(notify, dict) else None
    index = loc[2]
    ident: object = f"#{index + 1}" if isinstance(index, int) else index
    rest = loc[3:]
    if isinstance(index, int) and isinstance(channels, list) and index < len(channels):
        entry = channels[index]
        if isinstance(entry, dict):
            ident = entry.get("id", ident)
            if rest and rest[0] == entry.get("type"):  # pydantic names the union's member
                rest = rest[1:]
    return f"notify channel {ident!r}", ".".join(str(p) for p in rest) or "(entry)"


def _from_validation_error(path: str, raw: Mapping[str, Any], err: ValidationError) -> ConfigError:
    problems = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        cause = e.get("ctx", {}).get("error")
        if isinstance(cause, FieldError):  # a model-level check that names its key
            loc = (*loc, cause.key)
        entity, key = _entity_and_key(raw, loc)
        # pydantic prefixes our own messages with "Value error, ": they read better without
        msg = str(cause) if isinstance(cause, ValueError) else e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif (
            "input" in e and not isinstance(e["input"], dict | list) and repr(e["input"]) not in msg
        ):
            msg = f"{msg} (got {e['input']!r})"
        problems.append((entity, key, msg))
    entity, key, msg = problems[0]
    more = "".join(f"\n  also: {e}: {k}: {m}" for e, k, m in problems[1:])
    return ConfigError(msg + more, file=path, entity=entity, key=key)


_TOP_LEVEL_ARRAYS = re.compile(r"^(buildings|tenants|gateways|meters|contracts)$")


def parse_site(
    data: Mapping[str, Any],
    *,
    source: str = "<memory>",
    known_profiles: Collection[str] | None = None,
) -> SiteConfig:
    """Validate an already-parsed TOML document."""
    for key, value in data.items():
        if _TOP_LEVEL_ARRAYS.match(key) and not isinstance(value, list):
            raise ConfigError(
                f"must be an array of tables ([[{key}]]), not {type(value).__name__}",
                file=source,
                entity=f"[{key}]",
                key=key,
            )
    try:
        cfg = SiteConfig.model_validate(data)
    except ValidationError as err:
        raise _from_validation_error(source, data, err) from None
    check_references(cfg, source, known_profiles)
    cfg._source = source
    return cfg


def load_site(path: str | Path, *, known_profiles: Collection[str] | None = None) -> SiteConfig:
    """Read, validate and cross-check a site file. Raises `ConfigError`, never half-loads."""
    return parse_site(read_toml(path), source=str(path), known_profiles=known_profiles)


def load_portfolio_file(path: str | Path) -> PortfolioFile:
    """Read and validate a portfolio's `portfolio.toml`. Raises `ConfigError`."""
    data = read_toml(path)
    try:
        return PortfolioFile.model_validate(data)
    except ValidationError as err:
        raise _from_validation_error(str(path), data, err) from None


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file's document; a file that cannot be read, is not UTF-8 or not TOML is a
    `ConfigError` naming it."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(p)) from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"not UTF-8 text: byte 0x{exc.object[exc.start]:02x} on line {line} "
            "(save the file as UTF-8; GBK/GB18030 editors are a common cause)",
            file=str(p),
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=str(p)) from None
