"""What the contract year's savings are worth, against the simulator's hourly truth.

    .venv/bin/python -m bench.money                    # seeds 0-3, daily and hourly models
    .venv/bin/python -m bench.money --seeds 1 --models daily

For each seed: two years of the reference boundary (hourly), the baseline fitted on the first,
the statement of the contract year's last month (2026-06); the truth is each hour's true
savings priced at its own tariff period. Printed per seed and model: the avoided kWh, the money
(CNY) and its average price against the truth's, and the old split by each day's consumption
on the same avoided kWh (the anchor: −5.3 % on seed 1 with the daily model, issue 13).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from core.config import contract_weather_station, load_site
from processing import economics
from processing.contract import fit_baseline, statement
from processing.evaluate import days_of
from processing.models import model_from_dict
from simulators.history import generate_history
from storage.duckdb_store import DuckDBStore

SITE = Path(__file__).resolve().parents[1] / "sites" / "luan-admin-center.toml"
CONTRACT = "epc-2025-01"
YEAR = (date(2025, 7, 1), date(2026, 7, 1))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.money", description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2,3", help="comma-separated simulator seeds")
    p.add_argument("--models", default="daily,hourly", help="daily, hourly, billing")
    args = p.parse_args(argv)
    site = load_site(SITE)
    c = site.contract(CONTRACT)
    assert c.tariff is not None
    prices = np.array(c.tariff.price_table())
    zone = ZoneInfo(site.site.timezone)
    print(
        f"{'seed':>4} {'model':<7} {'true kWh':>10} {'true CNY':>10} {'kWh':>10} {'CNY':>10} "
        f"{'money':>7} {'price':>7} {'by day':>7}"
    )
    for seed in (int(s) for s in args.seeds.split(",")):
        h = generate_history(
            site,
            datetime(2024, 7, 1, tzinfo=UTC),
            datetime(2026, 7, 2, tzinfo=UTC),
            interval="1h",
            seed=seed,
            meters=[*c.meters, contract_weather_station(site, c)],
        )
        true = np.sum([h.true_savings_kwh[m] for m in c.meters], axis=0)
        local = [datetime.fromtimestamp(int(t) / 1000, zone) for t in h.ts_ms]
        day = np.array([t.date() for t in local])
        sel = (day >= YEAR[0]) & (day < YEAR[1])
        hour_price = np.array([prices[t.month - 1, t.hour] for t in local])
        t_kwh, t_cny = float(true[sel].sum()), float((true * hour_price)[sel].sum())
        with DuckDBStore(":memory:") as store:
            store.write(h.readings)
            for model in args.models.split(","):
                b = fit_baseline(site, CONTRACT, store, model=model)
                s = statement(site, CONTRACT, store, "2026-06", baseline=b)
                money = s.money["year_to_date"]
                m = model_from_dict(s.model)
                ds = days_of(m, s.inputs.daily, s.inputs.hourly, s.inputs.estimated)
                old = economics.value_shares(
                    np.where(ds.used, ds.avoided, 0.0),
                    np.nan_to_num(s.inputs.shares, nan=0.0),
                    economics.period_prices(s.inputs.daily.day, c.tariff),
                    c.vendor_share,
                )
                kwh = s.year_to_date.avoided
                print(
                    f"{seed:>4} {model:<7} {t_kwh:>10,.0f} {t_cny:>10,.0f} {kwh:>10,.0f} "
                    f"{money.total_cny:>10,.0f} {money.total_cny / t_cny - 1:>+7.2%} "
                    f"{money.average_price / (t_cny / t_kwh) - 1:>+7.2%} "
                    f"{old.total_cny / t_cny - 1:>+7.2%}"
                )
    print("money, price: the statement against the truth; by day: the old split, same kWh")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
