"""The wire: write targets (v1 `/write` over httpx, v2 `/api/v2/write` through
influxdb-client in synchronous mode) and InfluxQL over `/query` (httpx).

A write target posts one body once and says whether trying again can help:

- `Retryable`: no connection, a timeout, HTTP 429 or ≥ 500; the store retries with backoff
  and spools when the retries run out;
- `StoreUnavailable`: the server answers but will not take writes until someone acts (HTTP
  401/403: credentials, 404: no such database or bucket); spooled at once, not retried;
- `BadReadings`: the server refused the points themselves (HTTP 400, 422: a type conflict,
  points beyond the retention policy, a time it cannot parse); trying again cannot help, so
  they are neither retried nor spooled;
- `StoreError`: anything else the server refuses (HTTP 413, ...): spooled, tried later.

Secrets live only in the clients' headers: never in a URL, a message or a repr.
"""

from __future__ import annotations

import gzip as gzip_codec
import json
from typing import Any, Literal

import httpx
import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from core.errors import BadReadings, StoreError, StoreUnavailable

Mode = Literal["v1", "v2", "v3"]

CHUNK_ROWS = 10_000
"""Rows per chunk of a query answer."""


class Retryable(Exception):
    """A write that may succeed if tried again later."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _server_says(body: bytes | str) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        parsed = json.loads(text)
    except ValueError:
        return text.strip()[:300]
    if isinstance(parsed, dict):
        return str(parsed.get("error") or parsed.get("message") or parsed)[:300]
    return text.strip()[:300]


def classify(status: int, body: bytes | str, retry_after: str | None, where: str) -> Exception:
    """The exception for a non-2xx answer to a write."""
    said = _server_says(body)
    if status == 429 or status >= 500:
        return Retryable(f"{where}: HTTP {status}: {said}", _retry_after(retry_after))
    if status in (401, 403):
        return StoreUnavailable(f"{where}: HTTP {status}, credentials refused: {said}")
    if status == 404:
        return StoreUnavailable(f"{where}: HTTP 404, no such database or bucket: {said}")
    if status in (400, 422):
        return BadReadings(f"{where}: HTTP {status}, the server refused the points: {said}")
    return StoreError(f"{where}: HTTP {status}: {said}")


class V1WriteTarget:
    """`POST /write?db=&rp=&precision=` (InfluxDB 1.x), Basic auth when a user is set."""

    def __init__(
        self,
        url: str,
        *,
        database: str,
        retention_policy: str,
        precision: str,
        username: str,
        password: str | None,
        gzip: bool,
        timeout_s: float,
    ) -> None:
        self._where = f"InfluxDB {url} /write"
        self._params = {"db": database, "precision": precision}
        if retention_policy:
            self._params["rp"] = retention_policy
        self._gzip = gzip
        auth = httpx.BasicAuth(username, password or "") if username else None
        self._client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s, auth=auth)

    def post(self, body: bytes) -> None:
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._gzip:
            body = gzip_codec.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        try:
            answer = self._client.post("/write", params=self._params, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise Retryable(f"{self._where}: {type(exc).__name__}: {exc}") from exc
        if answer.status_code >= 300:
            raise classify(
                answer.status_code,
                answer.content,
                answer.headers.get("Retry-After"),
                self._where,
            )

    def close(self) -> None:
        self._client.close()


class V2WriteTarget:
    """`POST /api/v2/write?org=&bucket=&precision=` through influxdb-client, synchronous,
    `Authorization: Token`; its own retries off (ours decide, then the spool)."""

    def __init__(
        self,
        url: str,
        *,
        org: str,
        bucket: str,
        precision: str,
        token: str | None,
        gzip: bool,
        timeout_s: float,
    ) -> None:
        self._where = f"InfluxDB {url} /api/v2/write"
        self._org = org
        self._bucket = bucket
        self._precision: Any = WritePrecision.MS if precision == "ms" else WritePrecision.S
        self._client = InfluxDBClient(
            url=url,
            token=token or "",
            org=org,
            enable_gzip=gzip,
            timeout=int(timeout_s * 1000),
            retries=False,
        )
        self._write = self._client.write_api(write_options=SYNCHRONOUS)

    def post(self, body: bytes) -> None:
        try:
            self._write.write(
                bucket=self._bucket, org=self._org, record=body, write_precision=self._precision
            )
        except ApiException as exc:
            headers: Any = exc.headers or {}
            raise classify(
                int(exc.status or 0), exc.body or "", headers.get("Retry-After"), self._where
            ) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise Retryable(f"{self._where}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]


class QueryClient:
    """InfluxQL over `GET /query?db=&rp=&epoch=ms`. Auth by mode: 1.x Basic (user and
    password), 2.x `Authorization: Token` (v1 compatibility API, DBRP mapping), 3.x
    `Authorization: Bearer`."""

    def __init__(
        self,
        url: str,
        *,
        mode: Mode,
        database: str,
        retention_policy: str,
        username: str,
        password: str | None,
        token: str | None,
        timeout_s: float,
    ) -> None:
        self._where = f"InfluxDB {url} /query"
        self._params = {"db": database, "epoch": "ms"}
        if retention_policy:
            self._params["rp"] = retention_policy
        headers: dict[str, str] = {}
        auth: httpx.Auth | None = None
        if mode == "v1":
            if username:
                auth = httpx.BasicAuth(username, password or "")
        elif token:
            headers["Authorization"] = f"{'Token' if mode == 'v2' else 'Bearer'} {token}"
        self._client = httpx.Client(
            base_url=url.rstrip("/"), timeout=timeout_s, auth=auth, headers=headers
        )

    def query(self, statements: str) -> list[Any]:
        """The parsed JSON documents answering `statements` (one or several, `;`-separated).

        Asked for in chunks of `CHUNK_ROWS` rows: a server with a `max-row-limit` would
        otherwise cut a long answer short (marking it only as `partial`)."""
        params = {**self._params, "chunked": "true", "chunk_size": str(CHUNK_ROWS), "q": statements}
        try:
            answer = self._client.get("/query", params=params)
        except httpx.TransportError as exc:
            raise StoreUnavailable(f"{self._where}: {type(exc).__name__}: {exc}") from exc
        if answer.status_code in (401, 403):
            raise StoreUnavailable(
                f"{self._where}: HTTP {answer.status_code}, credentials refused: "
                f"{_server_says(answer.content)}"
            )
        if answer.status_code >= 500:
            raise StoreUnavailable(
                f"{self._where}: HTTP {answer.status_code}: {_server_says(answer.content)}"
            )
        try:
            parsed = [json.loads(line) for line in answer.text.splitlines() if line.strip()]
        except ValueError as exc:
            raise StoreError(
                f"{self._where}: HTTP {answer.status_code} and no JSON: {answer.text[:200]!r}"
            ) from exc
        if answer.status_code >= 300 and not any(
            isinstance(doc, dict) and "error" in doc for doc in parsed
        ):
            raise StoreError(f"{self._where}: HTTP {answer.status_code}: {answer.text[:200]!r}")
        return parsed

    def query_csv(self, statement: str) -> bytes:
        """The CSV answer to one statement (`name,tags,time,<columns>`; empty when nothing
        matches), for bulk reads parsed column-wise."""
        params = {**self._params, "q": statement}
        try:
            answer = self._client.get("/query", params=params, headers={"Accept": "text/csv"})
        except httpx.TransportError as exc:
            raise StoreUnavailable(f"{self._where}: {type(exc).__name__}: {exc}") from exc
        if answer.status_code in (401, 403):
            raise StoreUnavailable(
                f"{self._where}: HTTP {answer.status_code}, credentials refused: "
                f"{_server_says(answer.content)}"
            )
        if answer.status_code >= 500:
            raise StoreUnavailable(
                f"{self._where}: HTTP {answer.status_code}: {_server_says(answer.content)}"
            )
        if answer.status_code >= 300:
            raise StoreError(f"{self._where}: HTTP {answer.status_code}: {answer.text[:200]!r}")
        return answer.content

    def close(self) -> None:
        self._client.close()
