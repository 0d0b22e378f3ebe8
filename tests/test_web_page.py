"""The built-in page in headless Chromium (Debian's): it asks for a key, draws every chart
from the API, has no console errors, switches to English; a screenshot is kept in
test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bench.browser import browser, serve
from tests.api_fixtures import ApiWorld, app_for, make_world
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHARTS = ["chart-overview", "chart-meter", "chart-savings"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiWorld]:
    w = make_world(tmp_path_factory.mktemp("web"))
    yield w
    w.store.close()
    w.keys.close()


def test_the_page_and_its_assets_need_no_key(world: ApiWorld) -> None:
    with TestClient(app_for(world)) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "static/chart.js" in page.text
        for name, kind in (
            ("chart.js", "javascript"),
            ("page.js", "javascript"),
            ("page.css", "css"),
        ):
            r = client.get(f"/static/{name}")
            assert r.status_code == 200
            assert kind in r.headers["content-type"]
        assert client.get("/static/__init__.py").status_code == 404
        assert client.get("/static/..%2Findex.html").status_code == 404
        assert client.get("/api/v1/site").status_code == 401  # the data still needs one


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require("chromium", "chromium")
    pytest.importorskip("playwright", reason="playwright (a dev dependency) is not installed")
    with browser(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


def test_page_asks_for_a_key_then_draws_every_chart(world: ApiWorld, chromium: Any) -> None:
    with serve(app_for(world)) as url:
        page = chromium.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_selector("#login:not([hidden])")
        assert page.is_hidden("#main")
        assert page.text_content("label[for=key]") == "API 密钥"  # Chinese first

        page.fill("#key", world.tokens["viewer"])
        page.click("#login button[type=submit]")
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        for chart in CHARTS:
            assert page.get_attribute(f"#{chart}", "data-drawn") == "1", chart
            assert page.locator(f"#{chart} svg").count() == 1, f"{chart}: no chart, only a message"
        assert page.locator("#chart-overview rect.bar").count() >= 10  # the days
        assert page.locator("#chart-meter path.series").count() == 1
        assert page.locator("#chart-savings rect.bar").count() >= 1
        assert page.locator("#ops tbody tr").count() >= 10
        assert page.text_content("#site-name") == world.site.site.name
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-page-zh.png"), full_page=True)

        page.click("#lang")
        page.wait_for_selector("body[data-ready='1']")
        page.wait_for_function("document.querySelector('h2').textContent === 'Overview'")
        assert page.text_content("#site-name") == world.site.site.name_en
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "web-page-en.png"), full_page=True)
        assert errors == [], errors
        page.close()


def test_a_wrong_key_brings_the_login_back(world: ApiWorld, chromium: Any) -> None:
    with serve(app_for(world)) as url:
        page = chromium.new_page()
        page.goto(url)
        page.fill("#key", "epc_00000000_forged")
        page.click("#login button[type=submit]")
        page.wait_for_function("document.getElementById('login-error').textContent.length > 0")
        assert page.is_hidden("#main")
        assert page.evaluate("sessionStorage.getItem('epcmon.key')") == "epc_00000000_forged"
        page.close()


def test_page_benchmark_quick_run() -> None:
    require("chromium", "chromium")
    pytest.importorskip("playwright", reason="playwright (a dev dependency) is not installed")
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "bench.page", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "page load to all charts drawn, warm" in done.stdout
