"""A month's report on disk: the XLSX, the PDF and a small manifest, kept together (by
default in `reports/` beside the statements file), rewritten when what they show changed.

    files = write_report(site, store, statements, "2025-12", out_dir)    # always writes
    files = current_report(site, store, statements, "2025-12", out_dir)  # writes if out of date

*Out of date* is judged by a fingerprint that is cheap to compute (no bills, no PDF): the
report format, the site file's settings, the month's statement of every contract boundary
(status, version, inputs digest) and the site's measured kWh and m³ for the month. Late
readings that change the site's totals, a new version of a statement, or an edited site file
all make a new report; the manifest keeps the fingerprint it was made from.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any

from core.config import SiteConfig
from core.errors import InsufficientData
from processing.bills import parse_month
from processing.monthly import SiteMonth, site_months
from processing.statements import StatementStore
from reports.content import ReportData, check_closed, collect
from storage.base import TimeSeriesStore

FORMAT = 1
"""Bumped when the documents change shape: every stored report is then rewritten."""

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass(frozen=True)
class ReportFiles:
    month: str
    xlsx: Path
    pdf: Path
    manifest: Path

    def read_manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.manifest.read_text(encoding="utf-8"))
        return data


def reports_dir(site: SiteConfig, statements_path: str | None = None) -> Path:
    """Where the site's reports are kept: `reports.dir`, or `reports/` beside the statements
    file (`statements_path`, default `storage.statements_file`; `data/reports` when the
    statements are in memory)."""
    if site.reports.dir:
        return Path(site.reports.dir)
    path = statements_path or site.storage.statements_file
    if path == ":memory:":
        return Path("data") / "reports"
    return Path(PurePath(path).parent) / "reports"


def files_for(site: SiteConfig, month: str, out_dir: Path) -> ReportFiles:
    stem = f"{site.site.id}-energy-report-{month}"
    return ReportFiles(
        month,
        out_dir / f"{stem}.xlsx",
        out_dir / f"{stem}.pdf",
        out_dir / f"{stem}.json",
    )


def statement_state(site: SiteConfig, statements: StatementStore, month: str) -> list[list[Any]]:
    """(contract, utility, status, version, inputs digest) of every boundary's month."""
    out: list[list[Any]] = []
    for c in site.contracts:
        for utility in c.utility_names():
            entry = next((e for e in statements.months(c.id, utility) if e.month == month), None)
            if entry is not None:
                out.append([c.id, utility, entry.status, entry.version, entry.inputs_digest])
    return out


def fingerprint(site: SiteConfig, statements: StatementStore, month: str, totals: SiteMonth) -> str:
    doc = {
        "format": FORMAT,
        "site": hashlib.sha256(site.model_dump_json().encode()).hexdigest(),
        "statements": statement_state(site, statements, month),
        "totals": [round(totals.kwh, 3), round(totals.water_m3, 3)],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def month_totals(site: SiteConfig, store: TimeSeriesStore, month: str) -> SiteMonth:
    first = parse_month(month)
    return site_months(site, store, first, first)[0]


@contextmanager
def _month_lock(path: Path) -> Iterator[None]:
    """One writer per report at a time in this process (the schedule and a download)."""
    with _locks_guard:
        lock = _locks.setdefault(str(path), threading.Lock())
    with lock:
        yield


def _replace(write: Any, data: ReportData, target: Path) -> None:
    """Write to a temporary file beside `target`, then move it in place (readers never see
    half a file)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    os.close(fd)
    try:
        write(data, Path(tmp))
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_report(
    site: SiteConfig,
    store: TimeSeriesStore,
    statements: StatementStore,
    month: str,
    out_dir: Path,
    *,
    now: datetime | None = None,
) -> ReportFiles:
    """Write the month's XLSX, PDF and manifest. Refuses a month not ended (`MonthError`)
    and one the store has nothing of (`InsufficientData`)."""
    from reports.pdf import write_pdf
    from reports.xlsx import write_xlsx

    check_closed(site, month, now)
    files = files_for(site, month, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _month_lock(files.manifest):
        totals = month_totals(site, store, month)
        if (
            totals.kwh == 0
            and totals.water_m3 == 0
            and not statement_state(site, statements, month)
        ):
            raise InsufficientData(
                f"no data for {month}: the store has no reading of the site's incomers or water "
                "mains in it, and no contract has a statement of it"
            )
        stamp = fingerprint(site, statements, month, totals)
        data = collect(site, store, statements, month, now=now)
        _replace(write_xlsx, data, files.xlsx)
        _replace(write_pdf, data, files.pdf)
        manifest = {
            "site": site.site.id,
            "month": month,
            "generated_at": data.generated_at,
            "fingerprint": stamp,
            "format": FORMAT,
            "xlsx": files.xlsx.name,
            "pdf": files.pdf.name,
            "data_through": data.bills["through"],
            "statements": [
                {"contract": c.contract_id, "utility": c.utility, "status": c.status,
                 "version": c.version}
                for c in data.savings
            ],
            "kwh": data.bills["site"]["kwh"],
            "water_m3": data.bills["site"]["water_m3"],
        }  # fmt: skip
        tmp = files.manifest.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, files.manifest)
    return files


def stored_fingerprint(files: ReportFiles) -> str | None:
    """The fingerprint of the stored report, or None when it is missing or incomplete."""
    if not (files.manifest.exists() and files.xlsx.exists() and files.pdf.exists()):
        return None
    try:
        return str(files.read_manifest()["fingerprint"])
    except (OSError, ValueError, KeyError):
        return None


def current_report(
    site: SiteConfig,
    store: TimeSeriesStore,
    statements: StatementStore,
    month: str,
    out_dir: Path,
) -> ReportFiles:
    """The stored report when it is current, else a new one written now."""
    check_closed(site, month)
    files = files_for(site, month, out_dir)
    stamp = fingerprint(site, statements, month, month_totals(site, store, month))
    if stored_fingerprint(files) == stamp:
        return files
    return write_report(site, store, statements, month, out_dir)


def stored_reports(site: SiteConfig, out_dir: Path) -> list[dict[str, Any]]:
    """The manifests of every stored report of the site, oldest month first."""
    out = []
    for path in sorted(out_dir.glob(f"{site.site.id}-energy-report-*.json")):
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return out


__all__ = [
    "FORMAT",
    "ReportFiles",
    "current_report",
    "files_for",
    "fingerprint",
    "month_totals",
    "reports_dir",
    "stored_fingerprint",
    "stored_reports",
    "write_report",
]
