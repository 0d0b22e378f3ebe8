"""Serve an app on loopback and load the built-in page in Debian's headless Chromium
(Playwright drives it through `executable_path`; `playwright install` is never needed)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or next(
        (p for p in ("/usr/bin/chromium", "/usr/lib/chromium/chromium") if Path(p).exists()), None
    )


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run `app` with uvicorn on a free loopback port in a thread; yields its base URL."""
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class PageLoad:
    ready_ms: float
    """Navigation start to every chart drawn (`window.epcmonReadyMs`)."""
    console_errors: list[str] = field(default_factory=list)
    drawn: list[str] = field(default_factory=list)
    """Ids of the chart containers marked drawn."""


@contextmanager
def browser(user_data_dir: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError("chromium is not installed (Debian package chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=path,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield b
        finally:
            b.close()


def load_with_key(
    context: Any, url: str, key: str, *, lang: str = "zh", screenshot: Path | None = None
) -> PageLoad:
    """Open the page with `key` already in sessionStorage (as after logging in once), wait
    until every chart is drawn, and collect console errors."""
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(
        f"sessionStorage.setItem('epcmon.key', {key!r}); sessionStorage.setItem('epcmon.lang', {lang!r});"
    )
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    ready = float(page.evaluate("window.epcmonReadyMs"))
    drawn = page.eval_on_selector_all(".chart[data-drawn='1']", "els => els.map(e => e.id)")
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    page.close()
    return PageLoad(ready, errors, list(drawn))
