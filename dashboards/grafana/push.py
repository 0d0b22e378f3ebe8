"""`epcmon dashboards push`: folder, datasources, then dashboards, in that order."""

from __future__ import annotations

from core.config import Portfolio, SiteConfig
from dashboards.grafana.client import GrafanaClient
from dashboards.grafana.portfolio import build_any, datasource_site
from dashboards.grafana.provisioning import FOLDER_TITLE, FOLDER_UID, datasources


def push(
    client: GrafanaClient,
    target: SiteConfig | Portfolio,
    *,
    influx_url: str,
    api_url: str,
    viewer_key: str,
    influx_token: str = "",
    influx_password: str = "",
) -> list[str]:
    """Upsert everything of a site file or a portfolio (its overview, then every member's
    dashboards); returns the dashboards' URL paths."""
    client.ensure_folder(FOLDER_UID, FOLDER_TITLE)
    for source in datasources(
        datasource_site(target),
        influx_url=influx_url,
        api_url=api_url,
        viewer_key=viewer_key,
        influx_token=influx_token,
        influx_password=influx_password,
    ):
        client.upsert_datasource(source)
    return [client.upsert_dashboard(d, FOLDER_UID) for d in build_any(target).values()]
