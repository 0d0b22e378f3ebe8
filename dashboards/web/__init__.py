"""The built-in web page: static HTML, CSS and scripts (no build step), with its chart
library (uPlot) and the OpenAPI docs' Swagger UI vendored under `vendor/`.

The API serves these files at `/`, `/static/` and `/docs`; the page asks for a key and calls
/api/v1. Nothing is fetched from outside: the page works on an intranet with no internet.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
UPLOT = "vendor/uplot-1.6.32"
SWAGGER_UI = "vendor/swagger-ui-5.36.0"

ASSETS = {
    "page.css": "text/css",
    "i18n.js": "text/javascript",
    "chart.js": "text/javascript",
    "contract.js": "text/javascript",
    "bills.js": "text/javascript",
    "intensity.js": "text/javascript",
    "reports.js": "text/javascript",
    "alarms.js": "text/javascript",
    "devices.js": "text/javascript",
    "page.js": "text/javascript",
    "portfolio.js": "text/javascript",
    f"{UPLOT}/uPlot.iife.min.js": "text/javascript",
    f"{UPLOT}/uPlot.min.css": "text/css",
    f"{SWAGGER_UI}/swagger-ui-bundle.js": "text/javascript",
    f"{SWAGGER_UI}/swagger-ui.css": "text/css",
    f"{SWAGGER_UI}/favicon-32x32.png": "image/png",
}
"""The files under /static/ and their media types: nothing else in the folder is served."""

IMMUTABLE = tuple(name for name in ASSETS if name.startswith("vendor/"))
"""Versioned by their folder name: a browser may keep them."""
