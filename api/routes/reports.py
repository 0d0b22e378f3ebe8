"""The monthly energy report (XLSX, PDF) for download: for admin and engineer keys.

A viewer key is a 403, as a vendor's is: viewer keys are the read-only keys dashboards
(Grafana) poll with, while the report is a document the facility office hands to the
administration, and asking for one may write it (seconds of CPU, a file on disk); the
figures it holds stay readable to viewers through `/bills`, `/intensity` and the contracts.

`epcmon run` writes each closed month's report by itself (`reports.schedule`); a download
serves the stored files when they are current, and otherwise writes them first (the same
fingerprint decides: new statements, late data, an edited site file). A month not ended is
a 422, one not started or malformed a 400.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, Response

from api.common import json_response
from api.deps import SiteDep, StoreDep, allow
from api.errors import BadRequest
from api.keys import Principal, Role
from api.routes.meters import ERRORS
from core.config import SiteConfig
from core.errors import InsufficientData
from processing.bills import MonthError, month_range
from processing.statements import StatementStore
from reports.build import current_report, stored_reports
from storage.base import TimeSeriesStore

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

Author = Annotated[Principal, Depends(allow(Role.ADMIN, Role.ENGINEER))]
"""Who may download the report: the building's admins and engineers."""
MONTH = re.compile(r"^\d{4}-\d{2}$")
MEDIA = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}


def _dir(request: Request) -> Path:
    out: Path = request.app.state.reports_dir
    return out


@router.get("", responses=ERRORS)
def list_reports(_who: Author, request: Request, site: SiteDep) -> Response:
    """The reports written so far, oldest month first: month, when, from which statements,
    the site's kWh and m³, and where to download each file."""
    rows: list[dict[str, Any]] = []
    for m in stored_reports(site, _dir(request)):
        rows.append(
            {
                "month": m["month"],
                "generated_at": m["generated_at"],
                "data_through": m.get("data_through"),
                "statements": m.get("statements", []),
                "kwh": m.get("kwh"),
                "water_m3": m.get("water_m3"),
                "xlsx": f"/api/v1/reports/{m['month']}.xlsx",
                "pdf": f"/api/v1/reports/{m['month']}.pdf",
            }
        )
    return json_response(rows)


def _serve(
    request: Request, site: SiteConfig, store: TimeSeriesStore, month: str, kind: str
) -> Response:
    if not MONTH.match(month):
        raise BadRequest(f"month {month!r}: expected YYYY-MM, e.g. 2026-01")
    try:
        _start, _end, status = month_range(site, month)
    except MonthError as exc:
        raise BadRequest(str(exc)) from None
    if status != "final":
        raise InsufficientData(
            f"month {month} has not ended in {site.site.timezone}: its report is written "
            f"{site.reports.settle_days} days after it ends"
        )
    statements: StatementStore = request.app.state.statements
    try:
        files = current_report(site, store, statements, month, _dir(request))
    except ImportError as exc:  # the extra's libraries: fpdf2, XlsxWriter
        raise HTTPException(503, str(exc)) from exc
    path = files.xlsx if kind == "xlsx" else files.pdf
    return FileResponse(path, media_type=MEDIA[kind], filename=path.name)


@router.get(
    "/{month}.xlsx",
    responses={**ERRORS, 200: {"content": {MEDIA["xlsx"]: {}}}},
    response_class=FileResponse,
)
def report_xlsx(
    _who: Author, request: Request, site: SiteDep, store: StoreDep, month: str
) -> Response:
    """The month's report as an Excel workbook: site totals and year on year, departments,
    buildings, intensity against the targets, the contract's savings and guarantee, meters
    offline and data gaps, and the bills with every pool a column."""
    return _serve(request, site, store, month, "xlsx")


@router.get(
    "/{month}.pdf",
    responses={**ERRORS, 200: {"content": {MEDIA["pdf"]: {}}}},
    response_class=FileResponse,
)
def report_pdf(
    _who: Author, request: Request, site: SiteDep, store: StoreDep, month: str
) -> Response:
    """The month's report as a PDF (Chinese first, the fonts embedded), with the same
    figures as the workbook."""
    return _serve(request, site, store, month, "pdf")
