"""The built-in web page at `/` (files from `dashboards.web`). No key is needed to load the
page: it holds no data, and asks for a key before it calls /api/v1."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from dashboards.web import ASSETS, ROOT

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


@router.get("/")
def index() -> FileResponse:
    return FileResponse(ROOT / "index.html", media_type="text/html", headers=NO_STORE)


@router.get("/static/{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:  # a fixed list: no path from the request reaches the filesystem
        raise HTTPException(404, f"no asset {name!r}")
    return FileResponse(ROOT / name, media_type=ASSETS[name], headers=NO_STORE)
