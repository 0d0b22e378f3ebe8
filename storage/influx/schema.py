"""How readings lie in InfluxDB: one measurement per quantity, one float field, five tags.

    <quantity>,building=<id>,kind=<kind>,meter=<id>,site=<id>,tenant=<id> value=<float> <time>

- **measurement**: the quantity name from the vocabulary (`power`, `energy_import`,
  `outdoor_temperature`, ...), so a Grafana query reads like the question:
  `SELECT mean("value") FROM "power" WHERE "meter" = 'E-D01' AND $timeFilter GROUP BY time(1h)`.
- **field**: `value`, always a float in the quantity's canonical unit (an integer once and a
  float later would be a type conflict the server refuses).
- **tags**, all ids from the site file, never measured values or free text (in a portfolio's
  shared store `meter` is `<site>/<meter>`, and `site` its site):
  `meter` (always), and when the store knows the site: `site`, `building`, `kind`
  (`electricity`, `water`, `thermal`, `weather`) and `tenant` (omitted for meters that meter
  no tenant). Cardinality is bounded by the site file: one series per (meter, quantity), at
  most a few thousand for the reference site.
- **time**: milliseconds by default (`precision = "s"` for whole seconds).

Reads select by `meter` and measurement only, so they find a meter's points whatever its
other tags. A meter's tags must stay what they were when its history was written: moving a
meter to another building or tenant in the site file starts new series, and a point rewritten
with the new tags would stand beside the old one instead of replacing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from core.config import SiteConfig

FIELD = "value"
"""The one field of every point."""

TAG_KEYS = ("building", "kind", "meter", "site", "tenant")
"""Every tag key epcmon writes, in the sorted order line protocol prefers."""


def meter_tags(
    site: SiteConfig | None, sites: Sequence[SiteConfig] = ()
) -> Mapping[str, Mapping[str, str]]:
    """Tags of every meter the site file knows, by meter id (without the `meter` tag); of a
    portfolio's `sites`, by `<site>/<meter>` (the ids its shared store holds)."""
    tags: dict[str, dict[str, str]] = {}
    for one, prefix in [(site, "")] * (site is not None) + [(s, f"{s.site.id}/") for s in sites]:
        assert one is not None
        for meter in one.meters:
            these = {"building": meter.building, "kind": meter.kind.value, "site": one.site.id}
            if meter.tenant is not None:
                these["tenant"] = meter.tenant
            tags[prefix + meter.id] = these
    return tags


def tags_of(
    meter_id: str, known: Mapping[str, Mapping[str, str]], site_id: str | None
) -> dict[str, str]:
    """All tags of a point of `meter_id`: its site-file tags and `meter`; a meter the site
    file does not know gets `meter` and `site` only."""
    tags = dict(known.get(meter_id, {}))
    if not tags and site_id is not None:
        tags["site"] = site_id
    tags["meter"] = meter_id
    return {key: tags[key] for key in sorted(tags)}
