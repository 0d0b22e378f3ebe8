"""The handful of Grafana HTTP calls `epcmon dashboards push` needs, over httpx.

Not `grafana-client`: it pulls in `urllib3-future`, which shadows `urllib3` under
`influxdb-client` (DESIGN.md). Upserts are idempotent: run `push` again and nothing changes
but the dashboards' versions.
"""

from __future__ import annotations

from typing import Any

import httpx

from core.errors import GrafanaError


class GrafanaClient:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout_s,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GrafanaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, json: Any = None, ok404: bool = False) -> Any:
        try:
            r = self._http.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise GrafanaError(f"{method} {path}: {exc}") from exc
        if ok404 and r.status_code == 404:
            return None
        if r.status_code >= 400:
            detail = r.text[:300]
            raise GrafanaError(f"{method} {path}: HTTP {r.status_code}: {detail}")
        return r.json() if r.content else None

    def health(self) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET", "/api/health")
        return data

    def ensure_folder(self, uid: str, title: str) -> None:
        if self._call("GET", f"/api/folders/{uid}", ok404=True) is None:
            self._call("POST", "/api/folders", {"title": title, "uid": uid})

    def upsert_datasource(self, source: dict[str, Any]) -> None:
        uid = source["uid"]
        if self._call("GET", f"/api/datasources/uid/{uid}", ok404=True) is None:
            self._call("POST", "/api/datasources", source)
        else:
            self._call("PUT", f"/api/datasources/uid/{uid}", source)

    def upsert_dashboard(self, dashboard: dict[str, Any], folder_uid: str) -> str:
        """Create or overwrite by uid; returns the dashboard's URL path in Grafana."""
        body = {
            "dashboard": {**dashboard, "id": None},
            "folderUid": folder_uid,
            "message": "epcmon dashboards push",
            "overwrite": True,
        }
        answer = self._call("POST", "/api/dashboards/db", body)
        return str(answer.get("url", "")) if isinstance(answer, dict) else ""
