"""Typed dependencies: the routes ask for what they need, `create_app` provides it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.config import SiteConfig
from storage.base import TimeSeriesStore


def get_site(request: Request) -> SiteConfig:
    site: SiteConfig = request.app.state.site
    return site


def get_store(request: Request) -> TimeSeriesStore:
    store: TimeSeriesStore = request.app.state.store
    return store


SiteDep = Annotated[SiteConfig, Depends(get_site)]
StoreDep = Annotated[TimeSeriesStore, Depends(get_store)]
