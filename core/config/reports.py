"""The monthly energy report (XLSX and PDF): `[reports]`."""

from __future__ import annotations

from pydantic import Field

from core.config.base import _Model


class ReportsConfig(_Model):
    """The monthly energy report for the administration: `[reports]`."""

    enabled: bool = True
    """`epcmon run` writes each closed month's report by itself (`epcmon report` and the API
    work either way)."""
    dir: str = ""
    """Where the reports are kept; empty: `reports/` beside the statements file
    (`storage.statements_file`)."""
    months: int = Field(default=12, ge=1, le=120)
    """How many closed months back `epcmon run` keeps a current report for (it writes the
    missing ones at start, and rewrites one when its statements or data change)."""
    settle_days: int = Field(default=3, ge=0, le=28)
    """Days after a month ends before `epcmon run` writes its report (late readings settle);
    it also waits, at most one `schedule.recompute_every_s`, for the month's final
    statements."""
    every_s: int = Field(default=600, ge=60, le=86_400)
    """How often `epcmon run` checks whether a report is due or out of date (cheap when
    nothing changed: it compares a fingerprint of the month's statements and totals)."""
