"""Operations: stale meters, availability, dead letters, spool depth."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.common import iso
from api.deps import Reader, SiteDep, StoreDep
from api.routes.meters import ERRORS
from api.schemas import DeadLetterOut, MeterStatusOut, SpoolOut
from core.readings import from_ms
from storage.deadletters import read_dead_letters

router = APIRouter(prefix="/api/v1/operations", tags=["operations"])

STALE_AFTER_INTERVALS = 3
"""A meter is stale when nothing arrived for three of its intervals."""


@router.get("/meters", response_model=list[MeterStatusOut], responses=ERRORS)
def meter_status(
    _who: Reader,
    site: SiteDep,
    store: StoreDep,
    stale_only: Annotated[bool, Query(description="only meters that stopped reporting")] = False,
) -> list[MeterStatusOut]:
    last: dict[str, int] = {}
    for r in store.latest():
        last[r.meter_id] = max(last.get(r.meter_id, 0), r.ts_ms)
    now_ms = int(time.time() * 1000)
    out = []
    for m in site.meters:
        seen = last.get(m.id)
        age = (now_ms - seen) / 1000 if seen is not None else None
        stale = age is None or age > STALE_AFTER_INTERVALS * m.poll_interval_s
        if stale_only and not stale:
            continue
        out.append(
            MeterStatusOut(
                meter=m.id,
                kind=m.kind.value,
                protocol=m.protocol,
                last_seen=iso(from_ms(seen)) if seen is not None else None,
                age_s=age,
                expected_interval_s=m.poll_interval_s,
                stale=stale,
            )
        )
    return out


@router.get("/dead-letters", response_model=list[DeadLetterOut], responses=ERRORS)
def dead_letters(
    _who: Reader, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[DeadLetterOut]:
    # the newest first, from the end of the file and its rotated ones, never a whole file
    records = read_dead_letters(request.app.state.ops.dead_letters_path, limit)
    out = []
    for record in reversed(records):
        out.append(
            DeadLetterOut(
                time=iso(from_ms(int(record["received_ms"]))),
                source=str(record["source"]),
                reason=str(record["reason"]),
                payload=record.get("payload"),
            )
        )
    return out


@router.get("/spool", response_model=SpoolOut, responses=ERRORS)
def spool(_who: Reader, request: Request, site: SiteDep) -> SpoolOut:
    depth = request.app.state.ops.spool_depth
    return SpoolOut(
        backend=site.storage.backend, spooled_batches=int(depth()) if callable(depth) else 0
    )
