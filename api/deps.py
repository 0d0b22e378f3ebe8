"""Typed dependencies: the routes ask for what they need, `create_app` provides it.

They are `async` because none of them blocks (the key lookup is one indexed SQLite row):
FastAPI would otherwise hop to its thread pool for each one, on every request.

Every route under /api/v1 asks for a principal: no key is a 401, a role that may not is a
403, and the rate limit is a 429. Vendors see only their contracts (routes filter by
`Principal.may_see_contract` and answer 404 for the others).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from api.keys import KeyStore, Principal, Role
from api.ratelimit import RateLimiter
from core.config import SiteConfig
from storage.base import TimeSeriesStore


async def get_site(request: Request) -> SiteConfig:
    site: SiteConfig = request.app.state.site
    return site


async def get_store(request: Request) -> TimeSeriesStore:
    store: TimeSeriesStore = request.app.state.store
    return store


_ALL_ROLES = frozenset(Role)


class KeyAuth(SecurityBase):
    """The whole check in one dependency: the key from `Authorization: Bearer` (or
    `X-API-Key`), the principal, the rate limit, the role. One callable instead of a chain
    of dependencies with header parameters: FastAPI's dependency solving and the headers'
    validation were the largest share of a request's time on the event loop (profiled with
    py-spy under bench.api). As a `SecurityBase` it is documented in the OpenAPI document
    as the `bearer` scheme, on every route that asks for it."""

    def __init__(self, *roles: Role) -> None:
        self.roles = frozenset(roles) or _ALL_ROLES
        self.model = HTTPBearerModel(
            bearerFormat="epc_<id>_<secret>",
            description="an API key (`epcmon keys create`); `X-API-Key: <key>` works too",
        )
        self.scheme_name = "bearer"

    async def __call__(self, request: Request) -> Principal:
        headers = request.headers
        key = headers.get("x-api-key")
        authorization = headers.get("authorization")
        if authorization and authorization[:7].lower() == "bearer ":
            key = authorization[7:].strip()
        if not key:
            raise HTTPException(
                401,
                "an API key is required (Authorization: Bearer <key>)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        state = request.app.state
        keys: KeyStore = state.keys
        principal = keys.authenticate(key)
        if principal is None:
            raise HTTPException(
                401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
            )
        limiter: RateLimiter = state.limiter
        wait = limiter.acquire(principal.key_id)
        if wait > 0:
            raise HTTPException(
                429, "rate limit exceeded", headers={"Retry-After": f"{max(1, round(wait))}"}
            )
        request.state.key_id = principal.key_id  # for the access log: the id, never the key
        if principal.role not in self.roles:
            raise HTTPException(403, f"role {principal.role.value!r} may not use this resource")
        if principal.sites:  # a site-scoped key, on one site's routes
            site: SiteConfig | None = getattr(state, "site", None)
            if site is not None and site.site.id not in principal.sites:
                raise HTTPException(
                    403, f"this key is scoped to site(s) {', '.join(sorted(principal.sites))}"
                )
        return principal


def allow(*roles: Role) -> KeyAuth:
    """The dependency for routes that `roles` may use (a key of another role is a 403)."""
    return KeyAuth(*roles)


SiteDep = Annotated[SiteConfig, Depends(get_site)]
StoreDep = Annotated[TimeSeriesStore, Depends(get_store)]
AnyKey = Annotated[Principal, Depends(KeyAuth())]
"""Every role; vendors are filtered to their contracts by the route."""
Reader = Annotated[Principal, Depends(allow(Role.ADMIN, Role.ENGINEER, Role.VIEWER))]
"""The building's data: engineers, viewers (Grafana), admins; never vendors."""
