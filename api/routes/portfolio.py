"""The portfolio's routes: its sites, and every site's energy, intensity and avoided energy with
their totals (uncertainty combined by root sum of squares) and rankings.

What a key sees: admin/engineer/viewer keys the sites they are scoped to (all when none);
a vendor key only its contracts, at whichever sites they are, and nothing of the buildings
(no consumption, no intensity). The figures are `processing.portfolio`'s, from each site's
own savings (the same cached results its contract routes serve).
"""

from __future__ import annotations

import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from starlette.datastructures import State

from api.common import csv_response, json_bytes_response, json_response
from api.deps import AnyKey
from api.errors import BadRequest
from api.keys import Principal, Role
from api.routes.bills import ResultCache
from api.routes.meters import ERRORS
from api.savings_cache import SavingsCache
from core.config import Contract, Portfolio, SiteConfig, UtilityName
from core.errors import InsufficientData
from processing.bills import last_closed_month, parse_month
from processing.contract import SavingsResult
from processing.portfolio import (
    ContractFigures,
    PortfolioFigures,
    SiteFigures,
    Window,
    portfolio_figures,
    site_energy,
    site_figures,
)
from processing.statements import MonthEntry, StatementStore

router = APIRouter(prefix="/api/v1", tags=["portfolio"])
FiguresCache = ResultCache
"""Each site's consumption per window (a read of its root meters), refreshed at most once a
minute; the savings come from each site's own savings cache."""

MonthQ = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM (local)")]


def _portfolio(state: State) -> Portfolio:
    portfolio: Portfolio = state.portfolio
    return portfolio


def visible_sites(state: State, who: Principal) -> list[SiteConfig]:
    """The sites' current files (a reload updates them) that the key may see."""
    apps = state.site_apps
    sites = [apps[s.site.id].state.site for s in _portfolio(state).sites if s.site.id in apps]
    if who.role is Role.VENDOR:
        return [s for s in sites if any(who.may_see_contract(c.id) for c in s.contracts)]
    return [s for s in sites if who.may_see_site(s.site.id)]


@router.get("/sites", responses=ERRORS)
def list_sites(request: Request, who: AnyKey) -> Response:
    """The portfolio's sites this key may see, with where their routes and pages are."""
    out = []
    for s in visible_sites(request.app.state, who):
        row: dict[str, Any] = {
            "id": s.site.id,
            "name": s.site.name,
            "name_en": s.site.name_en,
            "contracts": [c.id for c in s.contracts if who.may_see_contract(c.id)],
            "api": f"/api/v1/sites/{s.site.id}",
            "page": f"/sites/{s.site.id}/",
        }
        if who.role is not Role.VENDOR:
            row |= {
                "floor_area_m2": sum(b.floor_area_m2 for b in s.buildings),
                "buildings": len(s.buildings),
                "meters": len(s.meters),
                "staff": sum(t.staff for t in s.tenants),
            }
        out.append(row)
    return json_response(out)


def _window(state: State, first: str | None, last: str | None, year: int | None) -> Window:
    default = last_closed_month(_portfolio(state).sites[0])
    try:
        last_day = parse_month(last or default)
        first_day = parse_month(first) if first else _months_before(last_day, 11)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if first_day > last_day:
        raise BadRequest(f"first {first} is after last {last or default}")
    if (last_day.year - first_day.year) * 12 + last_day.month - first_day.month >= 120:
        raise BadRequest("at most 120 months at once")
    return Window(first_day, last_day, year)


def _months_before(day: date, n: int) -> date:
    index = day.year * 12 + day.month - 1 - n
    return date(index // 12, index % 12 + 1, 1)


def _site_figures(state: State, site: SiteConfig, window: Window, who: Principal) -> SiteFigures:
    app = state.site_apps[site.site.id]
    savings: SavingsCache = app.state.savings_cache
    statements: StatementStore = app.state.statements
    store = app.state.store

    def savings_of(s: SiteConfig, c: Contract, u: UtilityName) -> SavingsResult | None:
        baseline = savings.baseline(statements, c.id, u)
        if baseline is None:
            return None
        try:
            return savings.get(s, store, c, u, baseline)
        except InsufficientData:
            return None

    def months_of(_s: SiteConfig, c: Contract, u: UtilityName) -> list[MonthEntry]:
        return statements.months(c.id, u)

    energy = (0.0, 0.0)
    if who.role is not Role.VENDOR:  # what the roots measured: building data
        cache: ResultCache = state.figures_cache
        window_months = (window.first, window.last)
        energy = cache.get((site.site.id, window_months), lambda: site_energy(site, store, window))
    return site_figures(
        site, energy, window, savings_of, months_of, lambda c: who.may_see_contract(c.id)
    )


def _contract(c: ContractFigures) -> dict[str, Any]:
    return {
        "id": c.contract_id,
        "name": c.name,
        "vendor": c.vendor,
        "utility": c.utility,
        "unit": c.unit,
        "start": c.start.isoformat() if c.start else None,
        "end": c.end.isoformat() if c.end else None,
        "adjusted_baseline": c.adjusted_baseline,
        "actual": c.actual,
        "avoided": c.avoided,
        "u90": c.u90,
        "statements": {
            "final": c.status.final,
            "provisional": c.status.provisional,
            "unreliable": c.status.unreliable,
            "last_final": c.status.last_final,
        },
        "note": c.note or None,
    }


def _site(s: SiteFigures, building: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": s.site_id,
        "name": s.name,
        "avoided_kwh": s.avoided_kwh,
        "u90_kwh": s.u90_kwh,
        "contracts": [_contract(c) for c in s.contracts],
    }
    if building:
        row |= {
            "floor_area_m2": s.floor_area_m2,
            "staff": s.staff,
            "kwh": s.kwh,
            "water_m3": s.water_m3,
            "kwh_per_m2": s.kwh_per_m2,
        }
    return row


def figures_body(figures: PortfolioFigures, building: bool) -> dict[str, Any]:
    w = figures.window
    sites = {s.site_id: s for s in figures.sites}
    totals: dict[str, Any] = {
        "sites": len(figures.sites),
        "contracts": sum(len(s.contracts) for s in figures.sites),
        "avoided_kwh": figures.avoided_kwh,
        "u90_kwh": figures.u90_kwh,
        "interval_90_kwh": [
            figures.avoided_kwh - figures.u90_kwh,
            figures.avoided_kwh + figures.u90_kwh,
        ],
        "adjusted_baseline_kwh": figures.adjusted_baseline_kwh,
    }
    ranking: dict[str, Any] = {
        "by_savings": [
            {"site": i, "avoided_kwh": sites[i].avoided_kwh, "u90_kwh": sites[i].u90_kwh}
            for i in figures.by_savings
            if sites[i].contracts
        ]
    }
    if building:
        totals |= {
            "floor_area_m2": figures.floor_area_m2,
            "kwh": figures.kwh,
            "water_m3": figures.water_m3,
            "kwh_per_m2": figures.kwh_per_m2,
        }
        ranking["by_intensity"] = [
            {"site": i, "kwh_per_m2": sites[i].kwh_per_m2, "kwh": sites[i].kwh}
            for i in figures.by_intensity
        ]
    return {
        "window": {
            "first": w.first.strftime("%Y-%m"),
            "last": w.last.strftime("%Y-%m"),
            "contract_year": w.year,
        },
        "totals": totals,
        "ranking": ranking,
        "sites": [_site(s, building) for s in figures.sites],
        "method": "avoided energy per contract (IPMVP, each contract's own baseline and "
        "interval); the portfolio's 90 % uncertainty is the root sum of squares of the "
        "contracts' absolute 90 % uncertainties (independent baselines)",
    }


VERSIONS_S = 1.0
"""How long the sites' statement versions are taken as read: a request under load does not
ask 200 SQLite files whether they changed (profiled: 77 % of the route at 50 connections)."""


def _versions(state: State, sites: list[SiteConfig]) -> tuple[tuple[int, int], ...]:
    """Every visible site's statements version, read at most once a second, by one thread
    at a time: the others take the last reading meanwhile."""
    ids = tuple(s.site.id for s in sites)
    held: dict[tuple[str, ...], tuple[float, tuple[tuple[int, int], ...]]] = state.versions
    hit = held.get(ids)
    if hit is not None and time.monotonic() - hit[0] < VERSIONS_S:
        return hit[1]
    lock: threading.Lock = state.versions_lock
    if hit is not None and not lock.acquire(blocking=False):
        return hit[1]  # another request is reading them now
    if hit is None:
        lock.acquire()
    try:
        versions = tuple(state.site_apps[sid].state.statements.version() for sid in ids)
        held[ids] = (time.monotonic(), versions)
        return versions
    finally:
        lock.release()


def _key(state: State, who: Principal, window: Window) -> tuple[object, ...]:
    """What the figures depend on: the window, the key's scope, the sites' statements."""
    sites = visible_sites(state, who)
    scope = (who.role is Role.VENDOR, tuple(sorted(who.contracts)), tuple(sorted(who.sites)))
    return (window, scope, _versions(state, sites))


def _figures(state: State, who: Principal, window: Window) -> PortfolioFigures:
    """The figures the key may see, cached per window and key scope while no site's
    statements changed (a new baseline or statement is seen within a second; the savings
    under them refresh at most every minute, as each site's contract routes do)."""
    cache: ResultCache = state.figures_cache
    figures: PortfolioFigures = cache.get(
        ("figures", *_key(state, who, window)),
        lambda: portfolio_figures(
            window, [_site_figures(state, s, window, who) for s in visible_sites(state, who)]
        ),
    )
    return figures


def _body(state: State, who: Principal, window: Window) -> bytes:
    """`figures_body` serialised, cached beside the figures."""
    cache: ResultCache = state.figures_cache
    building = who.role is not Role.VENDOR
    body: bytes = cache.get(
        ("body", building, *_key(state, who, window)),
        lambda: orjson.dumps(figures_body(_figures(state, who, window), building)),
    )
    return body


def warm(state: State) -> None:
    """Compute what the portfolio page asks first, for the keys that see every site: the
    last 12 closed months and the first contract years (at start, off the request path)."""
    everyone = Principal("warm", Role.ADMIN, frozenset(), "warm")
    for year in (None, 1):
        _body(state, everyone, _window(state, None, None, year))


@router.get("/portfolio", responses=ERRORS)
def portfolio(
    request: Request,
    who: AnyKey,
    first: MonthQ = None,
    last: MonthQ = None,
    year: Annotated[
        int | None,
        Query(ge=1, le=30, description="each contract's contract year N instead of the months"),
    ] = None,
    format: Literal["json", "csv"] = "json",
) -> Response:
    """Every visible site's consumption (kWh, m³), intensity (kWh/m²) and avoided energy over
    the local months `first`..`last` (default: the last 12 closed months), with the
    portfolio's totals, its 90 % interval (root sum of squares) and the sites ranked by
    intensity and by savings. `year=N`: each contract's N-th contract year for the savings."""
    state = request.app.state
    window = _window(state, first, last, year)
    if format == "csv":
        figures = _figures(state, who, window)
        building = who.role is not Role.VENDOR
        return _csv(figures, building, f"portfolio-{figures.window.last:%Y-%m}.csv")
    return json_bytes_response(_body(state, who, window))


def _csv(figures: PortfolioFigures, building: bool, filename: str) -> Response:
    header = ["site", "name", "contract", "vendor", "utility", "unit", "avoided", "u90"]
    header += ["statements_final", "statements_provisional"]
    if building:
        header += ["floor_area_m2", "kwh", "water_m3", "kwh_per_m2"]
    rows: list[list[object]] = []
    for s in figures.sites:
        energy = [s.floor_area_m2, s.kwh, s.water_m3, s.kwh_per_m2] if building else []
        for c in s.contracts or (None,):
            row: list[object] = [s.site_id, s.name]
            if c is None:
                row += [""] * 8
            else:
                row += [c.contract_id, c.vendor, c.utility, c.unit, c.avoided, c.u90]
                row += [c.status.final, c.status.provisional]
            rows.append(row + energy)
    total: list[object] = ["total", "", "", "", "", "kWh", figures.avoided_kwh, figures.u90_kwh]
    total += ["", ""]
    if building:
        total += [figures.floor_area_m2, figures.kwh, figures.water_m3, figures.kwh_per_m2]
    rows.append(total)
    return csv_response(header, rows, filename)


@router.get("/portfolio/report", responses=ERRORS)
def portfolio_report(
    request: Request,
    who: AnyKey,
    month: MonthQ = None,
    format: Literal["json", "csv", "xlsx"] = "json",
) -> Response:
    """The monthly energy report at portfolio level: the month, and the 12 months through
    it, for every visible site, with totals and rankings (default: the last closed month);
    `xlsx`: the same as a workbook (the sites ranked, the totals, the contracts)."""
    state = request.app.state
    single = _window(state, month, month, None)
    year = Window(_months_before(single.last, 11), single.last)
    building = who.role is not Role.VENDOR
    month_figures = _figures(state, who, single)
    label = f"{single.last:%Y-%m}"
    if format == "csv":
        return _csv(month_figures, building, f"portfolio-report-{label}.csv")
    portfolio_info = _portfolio(state).info
    twelve = _figures(state, who, year)
    if format == "xlsx":
        if not building:
            raise HTTPException(403, "the workbook is the buildings' report: not for vendor keys")
        from reports.portfolio import write_portfolio_xlsx

        with tempfile.TemporaryDirectory() as tmp:
            path = write_portfolio_xlsx(
                portfolio_info.name, label, month_figures, twelve, Path(tmp) / "report.xlsx"
            )
            body = path.read_bytes()
        return Response(
            body,
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={
                "Content-Disposition": f'attachment; filename="portfolio-report-{label}.xlsx"'
            },
        )
    return json_response(
        {
            "portfolio": {"id": portfolio_info.id, "name": portfolio_info.name},
            "month": figures_body(month_figures, building),
            "twelve_months": figures_body(twelve, building),
        }
    )


@router.get("/portfolio/info")
def portfolio_info(request: Request) -> Response:
    """The portfolio's id and name, for the page's title (no key: it carries no data)."""
    info = _portfolio(request.app.state).info
    return json_response({"id": info.id, "name": info.name, "name_en": info.name_en})
