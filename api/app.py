"""The FastAPI app factory. Nothing is built at import time."""

from __future__ import annotations

from fastapi import FastAPI

from api.errors import install_error_handler
from api.routes import meters
from core.config import SiteConfig
from storage.base import TimeSeriesStore


def create_app(site: SiteConfig, store: TimeSeriesStore) -> FastAPI:
    app = FastAPI(
        title="epcmon",
        summary="Energy monitoring and energy-performance-contract savings",
        version="0.1.0",
    )
    app.state.site = site
    app.state.store = store
    install_error_handler(app)
    app.include_router(meters.router)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "site": site.site.id}

    return app
