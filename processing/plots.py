"""Baseline against actual, as a PNG for the statement (matplotlib: `pip install epcmon[report]`).

Two panels over the reporting period up to the statement's month: the adjusted baseline and
the actual per day (the month shaded), and the cumulative avoided energy with its 90 %
uncertainty at each month's end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from processing.contract import Statement
from processing.models import model_from_dict
from processing.savings import daily_savings, months_between, summarise

INSTALL_HINT = "plots need matplotlib: pip install 'epcmon[report]' (or pip install matplotlib)"


def plot_statement(stmt: Statement, path: str | Path) -> Path:
    """Write the statement's baseline-vs-actual figure to `path` (PNG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # an optional extra
        raise ImportError(INSTALL_HINT) from exc
    from core.config import Contract

    contract = Contract.model_validate(stmt.contract)
    model = model_from_dict(stmt.model)
    assert model.stats is not None
    inputs = stmt.inputs
    adjustments = [a for a in contract.adjustments if a.utility == stmt.utility]
    ds = daily_savings(model, inputs.daily, inputs.hourly, inputs.estimated, adjustments)
    days = ds.day.astype("datetime64[ms]").astype(object)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    top.plot(
        days, ds.adjusted_baseline, color="tab:blue", lw=1.2, label="adjusted baseline (model)"
    )
    top.plot(days, ds.actual, color="tab:orange", lw=1.0, label="actual")
    month = stmt.month_savings
    top.axvspan(
        np.datetime64(month.start).astype("datetime64[ms]").astype(object),
        np.datetime64(month.end).astype("datetime64[ms]").astype(object),
        color="0.9",
        zorder=0,
    )
    top.set_ylabel(f"{stmt.unit} per day")
    top.set_title(
        f"{stmt.contract_id} {stmt.month}: avoided {month.avoided:,.0f} {stmt.unit} "
        f"± {month.u90.u:,.0f} (90 %)"
    )
    top.legend(loc="upper left")
    cum = np.cumsum(np.where(ds.used, ds.avoided, 0.0))
    bottom.plot(days, cum, color="tab:green", label="cumulative avoided")
    gran = model.GRANULARITY
    ends, values, errors = [], [], []
    for _, _, last in months_between(contract.reporting_start, month.end):
        p = summarise(ds, model.stats, gran, label="", start=contract.reporting_start, end=last)
        ends.append(np.datetime64(last, "ms").astype(object))
        values.append(p.avoided)
        errors.append(p.u90.u)
    bottom.errorbar(
        ends, values, yerr=errors, fmt="o", color="tab:green", capsize=3, label="90 % uncertainty"
    )
    bottom.set_ylabel(f"cumulative {stmt.unit}")
    bottom.legend(loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


__all__ = ["INSTALL_HINT", "plot_statement"]
