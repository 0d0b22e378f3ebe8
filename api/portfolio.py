"""The API of a portfolio deployment: one address serving the portfolio and every site.

Addresses (`site` is the site file's `[site] id`):

| path | served by |
|---|---|
| `/api/v1/portfolio`, `/api/v1/portfolio/...`, `/api/v1/sites`, `/healthz`, `/` | the portfolio's own routes and page |
| `/api/v1/sites/<site>/<route>` | site `<site>`'s `/api/v1/<route>` (meters, contracts, bills, alarms: every route a single site has) |
| `/sites/<site>/...` | site `<site>`'s app as it is: its page at `/sites/<site>/`, `/docs`, `/metrics` |
| any other `/api/v1/<route>` | the key's own site when it is scoped to exactly one (or is a vendor's whose contracts are at one site), else the first site |

Each site's routes check keys as a single site's do, plus the key's sites: a key scoped to
other sites gets 403 there (`api.deps.KeyAuth`). One key file for the deployment.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

from fastapi import FastAPI, Response
from fastapi.responses import FileResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.common import json_response
from api.errors import install_error_handler
from api.keys import KeyStore, Principal, Role
from api.ratelimit import RateLimiter
from api.routes import portfolio as portfolio_routes
from api.status import health_body, probe_store
from core.config import Portfolio
from core.health import Health
from dashboards.web import ROOT
from storage.base import TimeSeriesStore

API = "/api/v1"


def create_portfolio_app(
    portfolio: Portfolio,
    site_apps: Mapping[str, FastAPI],
    *,
    keys: KeyStore,
    store: TimeSeriesStore,
    health: Health,
) -> FastAPI:
    """The portfolio's routes, in front of every site's app (the module's table)."""
    app = FastAPI(
        title="epcmon portfolio",
        description="Energy monitoring of a portfolio of sites (公共机构). See /api/v1/sites.",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
    )
    app.state.portfolio = portfolio
    app.state.site_apps = dict(site_apps)
    app.state.keys = keys
    app.state.store = store
    app.state.health = health
    app.state.limiter = RateLimiter(portfolio.api.rate_limit_per_s, portfolio.api.rate_burst)
    app.state.figures_cache = portfolio_routes.FiguresCache(max_entries=256)
    app.state.versions = {}
    app.state.versions_lock = threading.Lock()
    install_error_handler(app)
    app.include_router(portfolio_routes.router)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        """The portfolio page: the sites ranked, the totals, links to each site's page."""
        return FileResponse(
            ROOT / "portfolio.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
        )

    install_healthz(app, portfolio, store, health, sorted(site_apps))

    return PortfolioRouter(app, keys)  # type: ignore[return-value]


def health_app(portfolio: Portfolio, store: TimeSeriesStore, health: Health) -> FastAPI:
    """`/healthz` alone, for a portfolio's collector and worker processes."""
    app = FastAPI(title="epcmon portfolio health", docs_url=None, redoc_url=None)
    install_healthz(app, portfolio, store, health, [s.site.id for s in portfolio.sites])
    return app


def install_healthz(
    app: FastAPI,
    portfolio: Portfolio,
    store: TimeSeriesStore,
    health: Health,
    sites: list[str],
) -> None:
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> Response:
        """Liveness of the whole deployment: every site's parts (`<site>/<part>`) and the
        shared ones; 503 naming what is not well. No key: states and errors, no data."""
        who = {"portfolio": portfolio.info.id, "pid": os.getpid(), "sites": sorted(sites)}
        ok, body = health_body(health, await probe_store(store), who)
        return json_response(body, status_code=200 if ok else 503)


class PortfolioRouter:
    """The ASGI dispatcher of the module's table (an app of its own so that every site's app
    stays exactly the app a single site serves). Attribute access reaches the portfolio's
    FastAPI app (`router.state`, `router.openapi()`)."""

    def __init__(self, app: FastAPI, keys: KeyStore) -> None:
        self.app = app
        self.keys = keys

    def __getattr__(self, name: str) -> object:
        return getattr(self.app, name)

    @property
    def site_apps(self) -> dict[str, FastAPI]:
        apps: dict[str, FastAPI] = self.app.state.site_apps
        return apps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith("/sites/") and path.count("/") == 2 and path[7:] in self.site_apps:
            # the site's page uses relative addresses: they need the trailing slash
            await RedirectResponse(path + "/", status_code=308)(scope, receive, send)
            return
        target, path = self.route(scope)
        if target is self.app:
            await self.app(scope, receive, send)
            return
        inner = dict(scope)
        inner["path"] = path
        inner["raw_path"] = path.encode()
        await target(inner, receive, send)

    def route(self, scope: Scope) -> tuple[ASGIApp, str]:
        """The app a request goes to and the path it sees there."""
        path: str = scope["path"]
        if path.startswith(API + "/sites/"):
            site, _, rest = path[len(API + "/sites/") :].partition("/")
            if site in self.site_apps and rest:
                return self.site_apps[site], f"{API}/{rest}"
        elif path.startswith("/sites/"):
            site, _, rest = path[len("/sites/") :].partition("/")
            if site in self.site_apps:
                return self.site_apps[site], "/" + rest
        if path in ("/", "/healthz", API + "/sites") or path.startswith(API + "/portfolio"):
            return self.app, path
        if path.startswith(API + "/sites/") or path.startswith("/sites/"):
            return self.app, path  # an unknown site: the portfolio's 404
        return self.site_apps[self.default_site(scope)], path

    def default_site(self, scope: Scope) -> str:
        """The site an unqualified route means: the key's one site, else the first."""
        first = next(iter(self.site_apps))
        principal = self._principal(scope)
        if principal is None:
            return first
        if len(principal.sites) == 1:
            (only,) = principal.sites
            if only in self.site_apps:
                return only
        if principal.role is Role.VENDOR:
            portfolio: Portfolio = self.app.state.portfolio
            holding = [
                s.site.id
                for s in portfolio.sites
                if any(c.id in principal.contracts for c in s.contracts)
            ]
            if len(holding) == 1:
                return holding[0]
        return first

    def _principal(self, scope: Scope) -> Principal | None:
        key = None
        for name, value in scope.get("headers", ()):
            if name == b"x-api-key":
                key = value.decode("latin-1")
            elif name == b"authorization" and value[:7].lower() == b"bearer ":
                key = value[7:].decode("latin-1").strip()
                break
        return self.keys.authenticate(key) if key else None
