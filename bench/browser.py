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


# -- the README's screenshots: python -m bench.browser [--out docs/screenshots] ---------------

SHOTS = (
    "engineer-overview.png",
    "meter-chart.png",
    "vendor-contract.png",
    "phone.png",
    "bills.png",
    "intensity.png",
    "alarms.png",
)


def reference_world(tmp: Path, now_ms: int) -> tuple[Any, Any, Any, Any, dict[str, str]]:
    """The reference site from its baseline year to `now_ms` at 15 minutes, with a 2.5-day
    outage of every meter ten days ago and one meter silent for the last two hours; the
    contract's baseline and statements written as `epcmon run` writes them. Returns
    (site, store, statements, keys, {role: key})."""
    from datetime import UTC, datetime

    from api.keys import KeyStore, Role
    from core.readings import ReadingBatch
    from epcmon.sites import load
    from processing.schedule import Recompute
    from processing.statements import StatementStore
    from simulators.history import iter_history
    from storage.duckdb_store import DuckDBStore

    site = load(Path(__file__).resolve().parents[1] / "sites/luan-admin-center.toml")
    day = 86_400_000
    outage = (now_ms - 10 * day - day // 2, now_ms - 8 * day)
    silent = (now_ms - 2 * 3_600_000, now_ms + 1)
    store = DuckDBStore(tmp / "shots.duckdb")
    start = datetime(2024, 6, 30, 16, tzinfo=UTC)
    end = datetime.fromtimestamp(now_ms // 900_000 * 900_000 / 1000, tz=UTC)
    for chunk in iter_history(site, start, end, interval="15m", seed=1):
        b = chunk.readings
        keep = ~((b.ts_ms >= outage[0]) & (b.ts_ms < outage[1]))
        keep &= ~((b.meter_id == "E-D07") & (b.ts_ms >= silent[0]))
        store.write(ReadingBatch(b.meter_id[keep], b.quantity[keep], b.ts_ms[keep], b.value[keep]))
    statements = StatementStore(tmp / "statements.sqlite")
    today = datetime.fromtimestamp(now_ms / 1000, tz=UTC).date()
    Recompute(site, store, statements).run_once(today)
    keys = KeyStore(tmp / "keys.sqlite3")
    tokens = {
        "engineer": keys.create(Role.ENGINEER, name="设施科")[1],
        "vendor": keys.create(Role.VENDOR, contracts=(site.contracts[0].id,), name="淠源节能")[1],
    }
    return site, store, statements, keys, tokens


def raise_alarms(site: Any, store: Any, statements: Any, tmp: Path, now_ms: int) -> Any:
    """The alarms `epcmon run` would hold over the reference world: the real engine stepped
    through the minutes after its newest readings (E-D07, silent for two hours, is offline)."""
    from alarms.engine import AlarmEngine
    from alarms.store import AlarmStore

    alarms = AlarmStore(tmp / "alarms.sqlite3")
    engine = AlarmEngine(site, store, alarms, statements=statements)
    last = now_ms // 900_000 * 900_000 - 900_000  # the world's newest quarter hour
    for minutes in (1, 6, 11):  # the other meters' 15-minute readings are not late yet
        engine.step(last + minutes * 60_000)
    return alarms


def take_screenshots(out: Path) -> list[Path]:
    """Serve the reference world and photograph the engineer's overview, a meter's chart with
    its tooltip, the vendor's contract page, a 390 px phone, the engineer's department bills
    of the last closed month (the first department expanded), energy intensity and the
    alarms the engine raised."""
    import tempfile

    from api.app import create_app

    now_ms = int(time.time() * 1000)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="epcmon-shots-") as tmp_s:
        tmp = Path(tmp_s)
        t0 = time.perf_counter()
        site, store, statements, keys, tokens = reference_world(tmp, now_ms)
        print(f"reference world built in {time.perf_counter() - t0:.0f} s")
        alarms = raise_alarms(site, store, statements, tmp, now_ms)
        app = create_app(site, store, keys=keys, statements=statements, data_dir=tmp, alarms=alarms)
        written = []
        with serve(app) as url, browser(tmp / "chromium") as context:

            def open_as(role: str, lang: str, width: int, height: int) -> Any:
                page = context.new_page()
                page.set_viewport_size({"width": width, "height": height})
                page.add_init_script(
                    f"sessionStorage.setItem('epcmon.key', {tokens[role]!r});"
                    f"sessionStorage.setItem('epcmon.lang', {lang!r});"
                )
                page.goto(url)
                page.wait_for_selector("body[data-ready='1']", timeout=60_000)
                return page

            page = open_as("engineer", "zh", 1280, 1000)
            page.screenshot(path=str(out / SHOTS[0]))
            page.close()

            page = open_as("engineer", "en", 1280, 1000)
            page.click("#ranges button[data-range='30']")  # the outage ten days ago: a gap
            page.wait_for_function(
                "EpcChart.data('chart-meter') && EpcChart.data('chart-meter').x.length === 720"
            )
            over = page.locator("#chart-meter .u-over")
            box = over.bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.4)
            page.wait_for_selector("#chart-meter .tip:not([hidden])")
            top = page.locator("#s-meter").bounding_box()
            chart = page.locator("#chart-meter").bounding_box()
            clip = {
                "x": top["x"],
                "y": top["y"],
                "width": top["width"],
                "height": chart["y"] + chart["height"] - top["y"] + 16,
            }
            page.screenshot(path=str(out / SHOTS[1]), clip=clip)
            page.close()

            page = open_as("vendor", "zh", 1280, 1000)
            page.screenshot(path=str(out / SHOTS[2]), full_page=True)
            page.close()

            page = open_as("vendor", "zh", 390, 844)
            page.screenshot(path=str(out / SHOTS[3]))
            page.close()

            page = open_as("engineer", "zh", 1280, 1000)
            page.locator("#bills tbody tr[data-tenant] button.expand").first.click()
            page.wait_for_selector("#bills tr.detail")
            page.locator("#s-bills").screenshot(path=str(out / SHOTS[4]))
            page.close()

            page = open_as("engineer", "en", 1280, 1000)
            page.locator("#s-intensity").screenshot(path=str(out / SHOTS[5]))
            page.close()

            page = open_as("engineer", "zh", 1280, 1000)
            page.locator("#s-alarms").screenshot(path=str(out / SHOTS[6]))
            page.close()
            written = [out / name for name in SHOTS]
        alarms.close()
        keys.close()
        store.close()
    return written


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Retake the README's screenshots of the page.")
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--out", type=Path, default=root / "docs/screenshots")
    args = parser.parse_args(argv)
    if chromium_path() is None:
        print("chromium is not installed (Debian package chromium)")
        return 2
    for path in take_screenshots(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
