"""Alarms: the active ones (or the cleared, or all), each with its history, and the
acknowledge route, the API's first write.

Every role may list alarms; a vendor sees only those whose meters all lie in its contracts'
boundaries (and their weather station), and any other alarm id is a 404, the same answer as
for one that does not exist. `POST /api/v1/alarms/{id}/ack` is for admin and engineer keys
(a viewer key is a dashboard's, read-only); it records the key's name and id as who
acknowledged, and is closed to browsers of other origins (CORS allows GET only).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from alarms.model import Alarm, Dispatcher
from alarms.store import AlarmStore
from api.deps import AnyKey, SiteDep, allow
from api.keys import Principal, Role
from api.routes.meters import ERRORS
from api.schemas_alarms import AlarmDetailOut, AlarmEventOut, AlarmOut, AlarmPageOut
from core.config import SiteConfig, contract_weather_station
from core.errors import NotFound
from core.readings import to_ms

router = APIRouter(prefix="/api/v1/alarms", tags=["alarms"])

AlarmId = Annotated[int, Path(ge=1, le=2**53, description="the alarm's id")]
Acknowledger = Annotated[Principal, Depends(allow(Role.ADMIN, Role.ENGINEER))]
"""Who may acknowledge: the building's admins and engineers."""


def _store(request: Request) -> AlarmStore:
    store: AlarmStore = request.app.state.alarms
    return store


def boundary_meters(site: SiteConfig, who: Principal) -> frozenset[str] | None:
    """The meters a vendor key may see alarms of; None: every alarm (the building's roles)."""
    if who.role is not Role.VENDOR:
        return None
    meters: set[str] = set()
    for contract in site.contracts:
        if not who.may_see_contract(contract.id):
            continue
        for utility in contract.utility_names():
            meters.update(contract.terms(utility).meters)
        meters.add(contract_weather_station(site, contract))
    return frozenset(meters)


def _visible(allowed: frozenset[str] | None, alarm: Alarm) -> bool:
    return allowed is None or (bool(alarm.meters) and set(alarm.meters) <= allowed)


@router.get("", response_model=AlarmPageOut, responses=ERRORS)
def list_alarms(
    who: AnyKey,
    request: Request,
    site: SiteDep,
    state: Annotated[
        Literal["active", "cleared", "all"], Query(description="which alarms")
    ] = "active",
    since: Annotated[
        datetime | None,
        Query(description="only alarms raised, updated or cleared since (ISO-8601; naive: UTC)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AlarmPageOut:
    """Alarms, active first, then the most severe, then the newest; a vendor key sees those
    of its contracts' boundaries only."""
    allowed = boundary_meters(site, who)
    since_ms = None
    if since is not None:
        since_ms = to_ms(since if since.tzinfo else since.replace(tzinfo=UTC))
    page = _store(request).alarms(
        state=state,
        since_ms=since_ms,
        limit=limit,
        offset=offset,
        visible=lambda a: _visible(allowed, a),
    )
    return AlarmPageOut.of(page, offset, limit)


def _visible_alarm(request: Request, site: SiteConfig, who: Principal, alarm_id: int) -> Alarm:
    alarm = _store(request).get(alarm_id)
    if not _visible(boundary_meters(site, who), alarm):
        raise NotFound(f"no alarm {alarm_id}")
    return alarm


@router.get("/{alarm_id}", response_model=AlarmDetailOut, responses=ERRORS)
def alarm_detail(who: AnyKey, request: Request, site: SiteDep, alarm_id: AlarmId) -> AlarmDetailOut:
    """One alarm with its history (raised, updated, acknowledged, cleared)."""
    alarm = _visible_alarm(request, site, who, alarm_id)
    history = [AlarmEventOut.of(e) for e in _store(request).history(alarm_id)]
    return AlarmDetailOut(**AlarmOut.of(alarm).model_dump(), history=history)


@router.post("/{alarm_id}/ack", response_model=AlarmOut, responses=ERRORS)
def acknowledge(who: Acknowledger, request: Request, alarm_id: AlarmId) -> AlarmOut:
    """Acknowledge an alarm: the key's name and id are recorded as who, with the time. An
    alarm already acknowledged stays acknowledged by whoever did it first."""
    store = _store(request)
    alarm = store.get(alarm_id)
    if alarm.acknowledged_by is not None:
        return AlarmOut.of(alarm)
    by = f"{who.name} (key {who.key_id})" if who.name else f"key {who.key_id}"
    done = store.acknowledge(alarm_id, by, int(time.time() * 1000))
    dispatcher: Dispatcher | None = request.app.state.alarm_dispatcher
    if dispatcher is not None:
        dispatcher.dispatch([done])
    return AlarmOut.of(done.alarm)
