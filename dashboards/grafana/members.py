"""What a portfolio member's dashboards have that a lone site's do not.

A portfolio gets one set of the four site dashboards per site, not one set switching on a
variable: every panel is built from its site's own file (its incomers, chiller plant,
buildings, departments, contracts), which differ from site to site, so one set with a site
picker would show one site's panels over another's meters. Each member's set still works
through the `site` variable (a custom variable holding its site id, hidden: there is nothing
to pick): InfluxQL keeps to `"site" = '$site'`, the meter variable lists that site's meters,
and Infinity URLs go through `/api/v1/sites/$site/...`. Sites are reached from one another
and from the portfolio overview by dashboard links (tags `epcmon-portfolio`, `site:<id>`)
and by the overview table's links.
"""

from __future__ import annotations

import hashlib

from grafana_foundation_sdk.builders.dashboard import CustomVariable, Dashboard, DashboardLink
from grafana_foundation_sdk.models.dashboard import (
    DashboardLinkType,
    VariableHide,
    VariableOption,
)

from core.config import SiteConfig

PREFIX = "epcmon"
PORTFOLIO_TAG = "epcmon-portfolio"
"""The portfolio overview's tag: every member dashboard links to it."""
UID_MAX = 40
"""Grafana's limit on a dashboard uid."""


def uid_for(site: SiteConfig, stem: str) -> str:
    """`epcmon-<stem>` for a lone site; `epcmon-<site>-<stem>` for a portfolio member (a
    digest of it when that is longer than Grafana takes)."""
    if not site.store_scope:
        return f"{PREFIX}-{stem}"
    uid = f"{PREFIX}-{site.store_scope}-{stem}"
    if len(uid) <= UID_MAX:
        return uid
    digest = hashlib.sha256(uid.encode()).hexdigest()[:12]
    return f"{PREFIX}-{site.store_scope[: UID_MAX - len(stem) - 21]}-{digest}-{stem}"


def site_tag(site: SiteConfig) -> str:
    """The tag of every dashboard of one portfolio member."""
    return f"site:{site.site.id}"


def site_variable(site: SiteConfig) -> CustomVariable:
    option = VariableOption(text=site.site.id, value=site.site.id, selected=True)
    return (
        CustomVariable("site")
        .label("单位 / Site")
        .values(site.site.id)
        .current(option)
        .hide(VariableHide.HIDE_VARIABLE)
    )


def in_portfolio(d: Dashboard, site: SiteConfig) -> Dashboard:
    """`d` with its site's variable (first) and links to the overview and its siblings."""
    return (
        d.with_variable(site_variable(site))
        .link(
            DashboardLink("组合概览 / Portfolio overview")
            .type(DashboardLinkType.DASHBOARDS)
            .tags([PORTFOLIO_TAG])
            .keep_time(True)
        )
        .link(
            DashboardLink(f"{site.site.name} / {site.site.name_en or site.site.id}")
            .type(DashboardLinkType.DASHBOARDS)
            .tags([site_tag(site)])
            .as_dropdown(True)
            .keep_time(True)
        )
    )
