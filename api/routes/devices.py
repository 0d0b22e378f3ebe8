"""Devices nobody configured: what arrives over MQTT from devices no meter of the site file
claims (`storage.devices`, written by the collector), so that an installer can adopt them, as
Home Assistant lists discovered devices. Read-only; the building's roles, never vendors."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.common import iso
from api.deps import Reader, SiteDep
from api.routes.meters import ERRORS
from core.config import SiteConfig
from core.readings import from_ms
from storage.devices import Sighting, read_unconfigured

router = APIRouter(prefix="/api/v1/devices", tags=["operations"])


class UnconfiguredDeviceOut(BaseModel):
    topic: str = Field(description="the MQTT topic its messages arrive on")
    meter: str | None = Field(
        description="the meter id the site file's route gives it (a `[[meters]]` entry with "
        "this id and the route adopts it); null when no route matches the topic"
    )
    route: str | None = Field(description="the `[mqtt.routes.NAME]` whose pattern matches")
    count: int = Field(description="messages received from it")
    first_seen: str
    last_seen: str
    last_payload: str | None = Field(
        description="the last payload as text (cut at 4 KiB); null when it is not UTF-8"
    )
    last_payload_b64: str | None = Field(description="the last payload, when not UTF-8")
    payload_bytes: int = Field(description="the last payload's full size")
    truncated: bool
    reason: str = Field(description="why its messages are dead letters (`unknown meter: ...`)")
    suggestion: str | None = Field(
        description="a site-file snippet (TOML) that would configure it, guessed from the "
        "payload: check it before use"
    )


@router.get("/unconfigured", response_model=list[UnconfiguredDeviceOut], responses=ERRORS)
def unconfigured(
    _who: Reader,
    request: Request,
    site: SiteDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[UnconfiguredDeviceOut]:
    """The devices seen most recently first; a device a meter now claims is left out."""
    rows = read_unconfigured(request.app.state.ops.devices_path, limit + len(site.meters))
    return [_out(s) for s in rows if not _configured(site, s)][:limit]


def _configured(site: SiteConfig, sighting: Sighting) -> bool:
    if sighting.meter:
        return sighting.meter in site.meters_by_id
    return any(m.mqtt is not None and m.mqtt.topic == sighting.topic for m in site.meters)


def _text(payload: bytes, truncated: bool) -> str | None:
    """The payload as text, also when the cut went through a multi-byte character."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        if truncated and exc.start >= len(payload) - 3 and exc.reason == "unexpected end of data":
            return payload[: exc.start].decode("utf-8")
        return None


def _out(s: Sighting) -> UnconfiguredDeviceOut:
    text = _text(s.payload, len(s.payload) < s.payload_bytes)
    return UnconfiguredDeviceOut(
        topic=s.topic,
        meter=s.meter or None,
        route=s.route or None,
        count=s.count,
        first_seen=iso(from_ms(s.first_ms)),
        last_seen=iso(from_ms(s.last_ms)),
        last_payload=text,
        last_payload_b64=None if text is not None else base64.b64encode(s.payload).decode(),
        payload_bytes=s.payload_bytes,
        truncated=len(s.payload) < s.payload_bytes,
        reason=s.reason,
        suggestion=s.suggestion or None,
    )
