"""The FastAPI app factory. Nothing is built at import time."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware

from alarms.model import Dispatcher
from alarms.store import AlarmStore, default_path
from api.cache import Flights, ResponseCache
from api.common import json_response
from api.deps import Reader
from api.errors import install_error_handler
from api.keys import KeyStore
from api.metrics import install_metrics, metrics_response
from api.page import router as page_router
from api.ratelimit import RateLimiter
from api.routes import alarms as alarm_routes
from api.routes import (
    bills,
    consumption,
    contracts,
    devices,
    grafana,
    meters,
    operations,
    reports,
    whoami,
)
from api.routes import site as site_routes
from api.routes.meters import ERRORS
from api.savings_cache import SavingsCache
from api.schemas import HealthOut
from api.status import CollectorStatus, OpsContext, health_body, probe_store
from core.config import SiteConfig
from core.health import Health
from processing.statements import StatementStore
from reports.build import reports_dir as default_reports_dir
from storage.base import TimeSeriesStore
from storage.devices import DEVICES_FILE

DESCRIPTION = """
Energy monitoring and energy-performance-contract (合同能源管理) savings for one site.

Every `/api/v1` route needs an API key (`Authorization: Bearer <key>`, created with
`epcmon keys create`). Roles: `admin`, `engineer`, `viewer` (read-only, for Grafana) see the
building; `vendor` keys see only their own contracts. Times are ISO-8601 UTC; values floats.
"""


def create_app(
    site: SiteConfig,
    store: TimeSeriesStore,
    *,
    keys: KeyStore | None = None,
    status: CollectorStatus | None = None,
    data_dir: Path | None = None,
    statements: StatementStore | None = None,
    health: Health | None = None,
    reports_dir: Path | None = None,
    alarms: AlarmStore | None = None,
    alarm_dispatcher: Dispatcher | None = None,
) -> FastAPI:
    # /docs is served by api/page.py with Swagger UI's files from dashboards/web/vendor/ (the
    # defaults load them from a CDN, which an intranet cannot reach); no ReDoc
    # FastAPI's native OpenTelemetry is off: /metrics is ours, and its per-request check of
    # the global providers (environment lookups) showed in the py-spy profile of every request
    app = FastAPI(
        title="epcmon",
        description=DESCRIPTION,
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.site = site
    app.state.store = store
    app.state.keys = keys or KeyStore(site.api.keys_path)
    app.state.limiter = RateLimiter(site.api.rate_limit_per_s, site.api.rate_burst)
    app.state.statements = statements or StatementStore(site.storage.statements_file)
    app.state.health = health or Health()
    app.state.savings_cache = SavingsCache()
    app.state.response_cache = ResponseCache()
    app.state.flights = Flights()
    app.state.bills_cache = bills.ResultCache()
    app.state.reports_dir = reports_dir or default_reports_dir(site, app.state.statements.path)
    app.state.alarms = alarms or AlarmStore(default_path(site, app.state.statements.path))
    app.state.alarm_dispatcher = alarm_dispatcher
    spool = getattr(store, "spool", None)
    app.state.ops = OpsContext(
        status=status,
        health=app.state.health,
        dead_letters_path=str((data_dir or Path("data")) / "dead-letters.jsonl"),
        devices_path=str((data_dir or Path("data")) / DEVICES_FILE),
        spool_depth=(lambda: spool.depth) if spool is not None else None,
        spool_store=store if spool is not None else None,
        alarms_active=app.state.alarms.active_counts,
    )
    if site.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(site.api.cors_origins),
            allow_methods=["GET"],
            allow_headers=["Authorization", "X-API-Key"],
        )
    install_error_handler(app)
    registry = install_metrics(app, app.state.ops)
    for router in (
        site_routes.router,
        meters.router,
        consumption.router,
        bills.router,
        contracts.router,
        grafana.router,
        operations.router,
        devices.router,
        reports.router,
        alarm_routes.router,
        whoami.router,
        page_router,
    ):
        app.include_router(router)

    @app.get("/healthz", response_model=HealthOut, tags=["operations"])
    async def healthz() -> Response:
        """Liveness: 200 when every part of the service runs and nothing is degraded; 503
        naming what is not (a part down with its last error, the store refusing writes, ...).
        No key needed: it carries states and error messages, no data."""
        who = {"site": site.site.id, "pid": os.getpid()}
        ok, body = health_body(app.state.health, await probe_store(store), who)
        return json_response(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], responses=ERRORS)
    def metrics(_who: Reader) -> Response:
        """Prometheus text format (scrape with a viewer key as bearer token)."""
        return metrics_response(registry)

    return app


def warm_caches(app: FastAPI) -> int:
    """Compute what the first visitors would otherwise wait for: the contracts' savings, and
    the last closed month's bills and intensity. Blocking: run it in a worker thread after the
    server starts. Returns how many contract boundaries' savings were computed."""
    cache: SavingsCache = app.state.savings_cache
    done = cache.warm(app.state.site, app.state.store, app.state.statements)
    bills.warm(app.state.bills_cache, app.state.site, app.state.store)
    return done
