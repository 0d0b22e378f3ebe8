"""Typed dependencies: the routes ask for what they need, `create_app` provides it.

They are `async` because none of them blocks (the key lookup is one indexed SQLite row):
FastAPI would otherwise hop to its thread pool for each one, on every request.

Every route under /api/v1 asks for a principal: no key is a 401, a role that may not is a
403, and the rate limit is a 429. Vendors see only their contracts (routes filter by
`Principal.may_see_contract` and answer 404 for the others).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

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


async def get_principal(
    request: Request,
    authorization: Annotated[str | None, Header(description="`Bearer <API key>`")] = None,
    x_api_key: Annotated[str | None, Header(description="the API key (alternative)")] = None,
) -> Principal:
    key = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    if not key:
        raise HTTPException(
            401,
            "an API key is required (Authorization: Bearer <key>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    keys: KeyStore = request.app.state.keys
    principal = keys.authenticate(key)
    if principal is None:
        raise HTTPException(
            401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    limiter: RateLimiter = request.app.state.limiter
    wait = limiter.acquire(principal.key_id)
    if wait > 0:
        raise HTTPException(
            429, "rate limit exceeded", headers={"Retry-After": f"{max(1, round(wait))}"}
        )
    request.state.key_id = principal.key_id  # for the access log: the id, never the key
    return principal


def allow(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in roles:
            raise HTTPException(403, f"role {principal.role.value!r} may not use this resource")
        return principal

    return check


SiteDep = Annotated[SiteConfig, Depends(get_site)]
StoreDep = Annotated[TimeSeriesStore, Depends(get_store)]
AnyKey = Annotated[Principal, Depends(get_principal)]
"""Every role; vendors are filtered to their contracts by the route."""
Reader = Annotated[Principal, Depends(allow(Role.ADMIN, Role.ENGINEER, Role.VIEWER))]
"""The building's data: engineers, viewers (Grafana), admins; never vendors."""
