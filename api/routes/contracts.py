"""Contracts: terms, the baseline, savings, statements, the baseline-vs-actual plot.

Every role may ask; a vendor sees only the contracts its key is bound to, and any other
contract id is a 404, the same answer as for one that does not exist. Each route declares
its output schema (`api/schemas.py`); a statement is served as its full record, from which
`epcmon savings verify` recomputes it.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api import fast
from api.cache import ResponseCache
from api.common import Format, csv_response, json_bytes_response, json_response
from api.deps import AnyKey, SiteDep
from api.errors import BadRequest
from api.keys import Principal
from api.routes.meters import ERRORS
from api.savings_cache import SavingsCache
from api.schemas import (
    BaselineOut,
    ContractSummaryOut,
    ErrorOut,
    SavingsRowOut,
    StatementEntryOut,
    StatementOut,
)
from core.config import Contract, SiteConfig, UtilityName
from core.errors import InsufficientData, NotFound
from processing.contract import (
    Baseline,
    SavingsResult,
    Statement,
    check_month_closed,
    parse_month,
)
from processing.savings import PeriodSavings
from processing.statements import StatementStore
from storage.base import TimeSeriesStore

router = APIRouter(prefix="/api/v1/contracts", tags=["contracts"])
log = logging.getLogger("epcmon.api")

Utility = UtilityName


def visible_contract(site: SiteConfig, who: Principal, contract_id: str) -> Contract:
    if not who.may_see_contract(contract_id):
        raise NotFound(f"no contract {contract_id!r}")
    return site.contract(contract_id)


def statements_of(request: Request) -> StatementStore:
    store: StatementStore = request.app.state.statements
    return store


def baseline_of(request: Request, contract: Contract, utility: Utility) -> Baseline:
    if utility not in contract.utility_names():
        raise NotFound(f"contract {contract.id} has no {utility} boundary")
    cache: SavingsCache = request.app.state.savings_cache
    return found_baseline(
        contract, utility, cache.baseline(statements_of(request), contract.id, utility)
    )


async def baseline_async(request: Request, contract: Contract, utility: Utility) -> Baseline:
    """`baseline_of` on the event loop when the baseline is cached, else in a worker thread."""
    if utility not in contract.utility_names():
        raise NotFound(f"contract {contract.id} has no {utility} boundary")
    cache: SavingsCache = request.app.state.savings_cache
    hit = cache.cached_baseline(statements_of(request), contract.id, utility)
    if hit is None:
        return await fast.blocking(lambda: baseline_of(request, contract, utility))
    return found_baseline(contract, utility, hit[0])


def found_baseline(contract: Contract, utility: Utility, baseline: Baseline | None) -> Baseline:
    if baseline is None:
        raise InsufficientData(
            f"contract {contract.id}: no {utility} baseline has been fitted yet "
            f"(epcmon baseline fit --contract {contract.id})"
        )
    return baseline


def period_row(p: PeriodSavings, unit: str) -> dict[str, Any]:
    return {
        "period": p.label,
        "start": p.start.isoformat(),
        "end": p.end.isoformat(),
        "days": p.days,
        "days_used": p.days_used,
        "baseline": p.adjusted_baseline,
        "actual": p.actual,
        "avoided": p.avoided,
        "u68": p.u68.u,
        "u90": p.u90.u,
        "fsu68": p.u68.fsu,
        "fsu90": p.u90.fsu,
        "unit": unit,
    }


def savings_rows(result: SavingsResult, period: str) -> list[dict[str, Any]]:
    """The rows of `/savings?period=`: days with both sides known, or periods with the
    running `cumulative` (also read by `api/routes/grafana.py`)."""
    rows: list[dict[str, Any]]
    if period == "day":
        d = result.daily
        rows = [
            {
                "period": str(day),
                "baseline": float(b),
                "actual": float(a),
                "avoided": float(b - a),
                "estimated": bool(e),
                "unit": result.unit,
            }
            for day, b, a, e in zip(
                d.day.tolist(),
                d.adjusted_baseline.tolist(),
                d.actual.tolist(),
                d.estimated.tolist(),
                strict=True,
            )
            if b == b and a == a  # days with both sides known
        ]
    else:
        periods = {"month": result.months, "year": result.years, "total": (result.total,)}[period]
        rows = [period_row(p, result.unit) for p in periods]
        running = 0.0
        for row in rows:
            running += row["avoided"]
            row["cumulative"] = running
    return rows


def _ok(model: Any, *, csv: bool = False) -> dict[int | str, dict[str, Any]]:
    """The routes' documented answers: `model` on 200 (and CSV when offered), and the errors."""
    ok: dict[str, Any] = {"model": model}
    if csv:
        ok["content"] = {"text/csv": {"schema": {"type": "string"}}}
    return {200: ok, 422: {"model": ErrorOut}, **ERRORS}


@router.get("", responses=_ok(list[ContractSummaryOut]))
def list_contracts(who: AnyKey, site: SiteDep) -> Response:
    return json_response(
        [
            {
                "id": c.id,
                "name": c.name,
                "vendor": c.vendor,
                "reporting_start": c.reporting_start.isoformat(),
                "utilities": list(c.utility_names()),
            }
            for c in site.contracts
            if who.may_see_contract(c.id)
        ]
    )


@router.get("/{contract_id}", responses=_ok(Contract))
def contract_terms(who: AnyKey, site: SiteDep, contract_id: str) -> Response:
    """The contract as configured: periods, boundary, measures, tariffs, shares, guarantee."""
    return json_response(visible_contract(site, who, contract_id).model_dump(mode="json"))


@router.get("/{contract_id}/baseline", responses=_ok(BaselineOut))
def contract_baseline(
    who: AnyKey, request: Request, site: SiteDep, contract_id: str, utility: Utility = "electricity"
) -> Response:
    """The fitted baseline model (its JSON, from which an auditor can recompute), its fit
    statistics and the data-sufficiency findings."""
    contract = visible_contract(site, who, contract_id)
    return json_response(baseline_of(request, contract, utility).to_dict())


@router.get("/{contract_id}/savings", responses=_ok(list[SavingsRowOut], csv=True))
async def contract_savings(
    who: AnyKey,
    request: Request,
    contract_id: str,
    period: Annotated[Literal["day", "month", "year", "total"], Query()] = "month",
    utility: Utility = "electricity",
    format: Format = "json",
) -> Response:
    """Avoided energy per day, month, contract year or in total, with its uncertainty at 68 %
    and 90 %, and the cumulative sum (`cumulative` on month rows)."""
    state = request.app.state
    site: SiteConfig = state.site
    store: TimeSeriesStore = state.store
    contract = visible_contract(site, who, contract_id)
    baseline = await baseline_async(request, contract, utility)
    cache: SavingsCache = state.savings_cache
    hit = cache.cached(site, store, contract, utility, baseline)
    if hit is None:  # the first request computes it (once: the others wait for it)
        hit = await fast.blocking(
            lambda: cache.get_stamped(site, store, contract, utility, baseline)
        )
    stamp, result = hit
    if format == "csv":
        rows = savings_rows(result, period)
        header = list(rows[0]) if rows else ["period"]
        return csv_response(
            header, ([r[h] for h in header] for r in rows), f"{contract.id}-savings-{period}.csv"
        )
    # the body is serialised once per computed result (dashboards poll the same question)
    bodies: ResponseCache = state.response_cache
    key = ("savings", contract.id, utility, baseline.fitted_at, stamp, period)
    body = bodies.get(key)
    if body is None:
        body = orjson.dumps(savings_rows(result, period))
        bodies.put(key, body)
    return json_bytes_response(body)


@router.get("/{contract_id}/statements", responses=_ok(list[StatementEntryOut]))
def contract_statements(
    who: AnyKey, request: Request, site: SiteDep, contract_id: str, utility: Utility = "electricity"
) -> Response:
    """Every month with figures: its newest final statement (`status` "final", `version` the
    number of times it was written: late data makes a new version), or the running month's
    provisional figures, refreshed by the service every pass. A statement whose baseline or
    data fails a sufficiency or fit criterion says so: `status` "unreliable: <finding>"."""
    contract = visible_contract(site, who, contract_id)
    return json_response(
        [
            {
                "month": e.month,
                "status": e.status,
                "version": e.version,
                "created_at": e.created_at,
                "inputs_digest": e.inputs_digest,
                "avoided": e.avoided,
            }
            for e in statements_of(request).months(contract.id, utility)
        ]
    )


def stored_record(
    request: Request,
    site: SiteConfig,
    who: Principal,
    contract_id: str,
    month: str,
    utility: Utility,
) -> tuple[dict[str, Any], str]:
    """The month's record (final, else provisional) and its status."""
    contract = visible_contract(site, who, contract_id)
    try:
        parse_month(month)
    except (ValueError, InsufficientData) as exc:
        raise BadRequest(f"month {month!r}: expected YYYY-MM") from exc
    if utility not in contract.utility_names():
        raise NotFound(f"contract {contract.id} has no {utility} boundary")
    found = statements_of(request).record(contract.id, month, utility)
    if found is not None:
        return found
    check_month_closed(site, contract.id, month)  # refuses a month not over yet (422)
    raise NotFound(
        f"no statement for {contract.id} {month} yet: the service writes it "
        f"{contract.statements.settle_days} days after the month ends, once its data is there"
    )


def stored_statement(
    request: Request,
    site: SiteConfig,
    who: Principal,
    contract_id: str,
    month: str,
    utility: Utility,
) -> Statement:
    return Statement.from_dict(stored_record(request, site, who, contract_id, month, utility)[0])


@router.get("/{contract_id}/statements/{month}", responses=_ok(StatementOut, csv=True))
def contract_statement(
    who: AnyKey,
    request: Request,
    site: SiteDep,
    contract_id: str,
    month: str,
    utility: Utility = "electricity",
    format: Format = "json",
) -> Response:
    """The statement's full record: its numbers (month, contract year to date, cumulative;
    money by tariff period, the vendor's share, carbon, the guarantee on both bases with the
    probability it was met), `status`, findings, the model's JSON, the contract, the inputs
    (per day, per hour for an hourly model) and their digest, the software version.
    `epcmon savings verify FILE` recomputes it from this document alone."""
    record, status = stored_record(request, site, who, contract_id, month, utility)
    if format == "csv":
        stmt = Statement.from_dict(record)
        rows = [
            period_row(p, stmt.unit) | {"carbon_t": stmt.carbon_t.get(k, 0.0)}
            for k, p in stmt.periods
        ]
        header = list(rows[0])
        return csv_response(
            header, ([r[h] for h in header] for r in rows), f"{stmt.contract_id}-{month}.csv"
        )
    return json_response({**record, "status": status})


@router.get(
    "/{contract_id}/statements/{month}/plot.png",
    responses={200: {"content": {"image/png": {}}}, **ERRORS},
)
def contract_plot(
    who: AnyKey,
    request: Request,
    site: SiteDep,
    contract_id: str,
    month: str,
    utility: Utility = "electricity",
) -> Response:
    """Baseline against actual for the statement's reporting days (PNG)."""
    from processing.plots import plot_statement

    stmt = stored_statement(request, site, who, contract_id, month, utility)
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_statement(stmt, Path(tmp) / "plot.png")
        return Response(path.read_bytes(), media_type="image/png")
