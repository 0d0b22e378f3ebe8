"""`epcmon dashboards push`: folder, datasources, then dashboards, in that order."""

from __future__ import annotations

from core.config import SiteConfig
from dashboards.grafana.build import build_all
from dashboards.grafana.client import GrafanaClient
from dashboards.grafana.provisioning import FOLDER_TITLE, FOLDER_UID, datasources


def push(
    client: GrafanaClient,
    site: SiteConfig,
    *,
    influx_url: str,
    api_url: str,
    viewer_key: str,
    influx_token: str = "",
    influx_password: str = "",
) -> list[str]:
    """Upsert everything; returns the dashboards' URL paths."""
    client.ensure_folder(FOLDER_UID, FOLDER_TITLE)
    for source in datasources(
        site,
        influx_url=influx_url,
        api_url=api_url,
        viewer_key=viewer_key,
        influx_token=influx_token,
        influx_password=influx_password,
    ):
        client.upsert_datasource(source)
    return [client.upsert_dashboard(d, FOLDER_UID) for d in build_all(site).values()]
