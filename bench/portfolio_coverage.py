"""Does the portfolio's 90 % interval contain the true portfolio savings nine times in ten?

    .venv/bin/python -m bench.portfolio_coverage              # 20 city seeds, ~4 min
    .venv/bin/python -m bench.portfolio_coverage --seeds 2    # a smoke test

For each seed the simulators generate the 8-site city (`simulators.city`: the administrative
center and seven county/district centers, each site drawing its own weather, habits and noise
from the city's seed, except the reference site, whose file fixes its own seed), write every
contract's boundary meters and weather station hourly from 2023-09 to 2026-10, fit each
contract's baseline and compute its first contract year's avoided energy and 90 % interval
as the service does (`fit_baseline`, `compute_savings`), and combine them as
`/api/v1/portfolio` does (sum; root sum of squares of the absolute 90 % uncertainties).
Scored against the simulator's truth (`simulators.city_truth`): how often the portfolio's
interval holds the truth (the anchor: 90 %), the contracts' own coverage, and the mean
standardised error (z, 0 when unbiased; |z| > 1.645 is outside).

The RSS rule assumes the sites' errors are independent; here they are by construction (each
site its own weather). Real sites of one city share their weather, and errors that weather
drives would then add up more than RSS says: this benchmark cannot show that.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import contextlib
import io
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import storage
from epcmon.simulate import HistoryOptions
from epcmon.simulate_city import run_portfolio_history
from epcmon.sites import load_portfolio
from processing.contract import compute_savings, fit_baseline
from processing.portfolio import rss
from simulators.city import generate_city
from simulators.city_truth import city_truth
from storage.scoped import SiteStore

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "sites" / "luan-admin-center.toml"
Z90 = 1.645


@dataclass(frozen=True)
class Seed:
    seed: int
    estimate: float
    truth: float
    u90: float
    contract_z: tuple[float, ...]

    @property
    def z(self) -> float:
        return (self.estimate - self.truth) / self.u90 * Z90

    @property
    def inside(self) -> bool:
        return abs(self.estimate - self.truth) <= self.u90


def city_seed(seed: int, sites: int, workdir: Path) -> Seed:
    directory = workdir / f"city-{seed}"
    directory.mkdir()
    city = generate_city(sites, seed=seed, reference_text=REFERENCE.read_text(encoding="utf-8"))
    for name, text in city.files().items():
        if name == "portfolio.toml":
            text = text.replace(
                'path = "data/luan-city.duckdb"', f'path = "{directory / "city.duckdb"}"'
            )
        (directory / name).write_text(text, encoding="utf-8")
    with contextlib.redirect_stdout(io.StringIO()):
        run_portfolio_history(
            str(directory),
            HistoryOptions(start="2023-09-01", end="2026-10-01", interval="1h", progress=False),
            boundary=True,
        )
    portfolio = load_portfolio(directory)
    truth = {row.contract: row.savings_kwh for row in city_truth(portfolio.sites)}
    shared = storage.open_store(portfolio.storage, None, spool=False)
    estimates, uncertainties, zs, truths = [], [], [], []
    try:
        for site in portfolio.sites:
            view = SiteStore(shared, site.site.id)
            for contract in site.contracts:
                baseline = fit_baseline(site, contract.id, view)
                year = compute_savings(site, contract.id, view, baseline=baseline).years[0]
                estimates.append(year.avoided)
                uncertainties.append(year.u90.u)
                truths.append(truth[contract.id])
                zs.append((year.avoided - truth[contract.id]) / year.u90.u * Z90)
    finally:
        shared.close()
    return Seed(seed, sum(estimates), sum(truths), rss(uncertainties), tuple(zs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=20, help="city seeds 0..N-1 (default 20)")
    parser.add_argument("--sites", type=int, default=8, help="sites per city (default 8)")
    args = parser.parse_args(argv)
    print(
        f"portfolio interval coverage: {args.seeds} seeds of a {args.sites}-site city, each "
        "contract's first contract year, 90 % intervals combined by root sum of squares"
    )
    results: list[Seed] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            began = time.perf_counter()
            r = city_seed(seed, args.sites, Path(tmp))
            results.append(r)
            print(
                f"  seed {seed:2d}: estimated {r.estimate:>11,.0f} ± {r.u90:>9,.0f} kWh, true "
                f"{r.truth:>11,.0f} ({(r.estimate - r.truth) / r.truth:+.1%}), z {r.z:+.2f} "
                f"{'inside' if r.inside else 'OUTSIDE'}  ({time.perf_counter() - began:.0f} s)",
                flush=True,
            )
    inside = sum(r.inside for r in results)
    contracts = [z for r in results for z in r.contract_z]
    contracts_inside = sum(abs(z) <= Z90 for z in contracts)
    print()
    print(
        f"portfolio: {inside}/{len(results)} inside its 90 % interval "
        f"({inside / len(results):.0%}; anchor 90 %), mean z {statistics.fmean(r.z for r in results):+.2f}"
        f", sd {statistics.pstdev([r.z for r in results]) / Z90:.2f} of the stated 90 % half-width"
    )
    print(
        f"contracts: {contracts_inside}/{len(contracts)} inside ({contracts_inside / len(contracts):.0%}),"
        f" mean z {statistics.fmean(contracts):+.2f}"
    )
    spread = [abs(r.estimate - r.truth) / r.u90 for r in results]
    print(
        f"median |error| / u90: {statistics.median(spread):.2f} (≈ 0.41 for a calibrated interval)"
    )
    return 0 if math.isfinite(sum(spread)) else 1


if __name__ == "__main__":
    sys.exit(main())
