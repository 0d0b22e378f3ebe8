"""The built-in web page: static HTML, CSS and a vendored SVG chart renderer (no build step).

The API serves these files at `/` and `/static/`; the page asks for a key and calls /api/v1.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
ASSETS = {"page.css": "text/css", "chart.js": "text/javascript", "page.js": "text/javascript"}
"""The files under /static/ and their media types: nothing else in the folder is served."""
