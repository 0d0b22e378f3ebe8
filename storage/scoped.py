"""One site's view of a store shared by a portfolio of sites.

In a portfolio deployment every site's readings go to one store (one DuckDB file, one
InfluxDB database), and a meter is addressed as `<site>/<meter>` there: two institutions may
both have an `E-TR1`. Everything above the store (collectors, recompute, alarms, the API)
keeps working with the site file's own meter ids through `SiteStore`, which adds the prefix on
the way in and takes it off on the way out, and never shows another site's series.

    shared = storage.open_store(portfolio.storage)
    view = SiteStore(shared, "county-a")
    view.write(batch)                    # stored as county-a/E-TR1, ...
    view.latest(["E-TR1"])               # read back as E-TR1
"""

from __future__ import annotations

from dataclasses import replace

from core.readings import Reading, ReadingBatch
from storage.base import Agg, Every, Series, TimeSeriesStore

SEPARATOR = "/"
"""Between the site and the meter id; neither id may contain it (the site file's id rule)."""


def qualified(site_id: str, meter_id: str) -> str:
    """`site/meter`: the meter's id in a portfolio's shared store."""
    return f"{site_id}{SEPARATOR}{meter_id}"


def split(qualified_id: str) -> tuple[str, str]:
    """`site/meter` -> (site, meter); an id without a site is ("", id)."""
    site, sep, meter = qualified_id.partition(SEPARATOR)
    return (site, meter) if sep else ("", qualified_id)


class SiteStore:
    """`inner` as site `site_id` sees it (the `TimeSeriesStore` contract, unqualified ids).
    Closing the view leaves the shared store open for its owner to close, unless the view
    `owns` it (one site of a portfolio opened alone, e.g. by `epcmon bills`)."""

    def __init__(self, inner: TimeSeriesStore, site_id: str, *, owns: bool = False) -> None:
        self.inner = inner
        self.site_id = site_id
        self.owns = owns
        self._prefix = f"{site_id}{SEPARATOR}"

    def _q(self, meter_id: str) -> str:
        return self._prefix + meter_id

    def write(self, batch: ReadingBatch) -> int:
        return self.inner.write(batch.with_meter_prefix(self._prefix))

    def read_raw(self, meter_id: str, quantity: str, start_ms: int, end_ms: int) -> Series:
        return self.inner.read_raw(self._q(meter_id), quantity, start_ms, end_ms)

    def aggregate(
        self,
        meter_id: str,
        quantity: str,
        start_ms: int,
        end_ms: int,
        every: Every,
        agg: Agg,
        tz: str = "UTC",
    ) -> Series:
        return self.inner.aggregate(self._q(meter_id), quantity, start_ms, end_ms, every, agg, tz)

    def consumption(
        self,
        meter_id: str,
        quantity: str,
        start_ms: int,
        end_ms: int,
        every: Every,
        tz: str = "UTC",
    ) -> Series:
        return self.inner.consumption(self._q(meter_id), quantity, start_ms, end_ms, every, tz)

    def latest(self, meter_ids: list[str] | None = None) -> list[Reading]:
        if meter_ids is None:
            mine = [m for m, _ in self.series_keys()]
            if not mine:
                return []
            meter_ids = sorted(set(mine))
        cut = len(self._prefix)
        return [
            replace(r, meter_id=r.meter_id[cut:])
            for r in self.inner.latest([self._q(m) for m in meter_ids])
        ]

    def series_keys(self) -> list[tuple[str, str]]:
        cut = len(self._prefix)
        return [(m[cut:], q) for m, q in self.inner.series_keys() if m.startswith(self._prefix)]

    def close(self) -> None:
        if self.owns:
            self.inner.close()
