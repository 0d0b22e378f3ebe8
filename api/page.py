"""The built-in web page at `/` (files from `dashboards.web`), and the OpenAPI docs at
`/docs` with Swagger UI served from the same files (no CDN: they work offline).

No key is needed to load either: they hold no data; the page asks for a key before it calls
/api/v1, and /docs sends one only when the user enters it under "Authorize".
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from dashboards.web import ASSETS, IMMUTABLE, ROOT, SWAGGER_UI

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
KEEP = {"Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"}


@router.get("/")
def index() -> FileResponse:
    return FileResponse(ROOT / "index.html", media_type="text/html", headers=NO_STORE)


@router.get("/static/{name:path}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:  # a fixed list: no path from the request reaches the filesystem
        raise HTTPException(404, f"no asset {name!r}")
    headers = KEEP if name in IMMUTABLE else NO_STORE
    return FileResponse(ROOT / name, media_type=ASSETS[name], headers=headers)


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    """Swagger UI over /openapi.json, its script and styles from /static/vendor/."""
    root = request.scope.get("root_path", "").rstrip("/")
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} API",
        swagger_js_url=f"{root}/static/{SWAGGER_UI}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/static/{SWAGGER_UI}/swagger-ui.css",
        swagger_favicon_url=f"{root}/static/{SWAGGER_UI}/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},
    )
