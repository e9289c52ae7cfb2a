"""``/docs`` in a real headless Chromium with no network: Swagger UI comes from the app itself, lists every
operation with its summary, and its Authorize button sends the key on "Try it out" (the API-key scheme)."""

from __future__ import annotations

import base64
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from playwright.sync_api import Page, Route, sync_playwright

from api.server import create_server
from connectors.config import CollectorConfig
from connectors.publisher import publisher_for
from omnichannel.settings import Settings
from omnichannel.stack.processes import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SUMMARIES = ("The unified customer record", "The current cart", "Publish one event or a batch", "Stock in a store")


@pytest.fixture(scope="module")
def base_url(registered: Settings) -> Iterator[str]:
    config = CollectorConfig.from_env({"OMNICHANNEL_DEV": "1"})
    port = free_port()
    with publisher_for(registered, 5) as publisher:
        server = uvicorn.Server(
            uvicorn.Config(
                create_server(registered, config, publisher), host="127.0.0.1", port=port, log_level="warning"
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "the API did not start within 30 s"
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def _ink(page: Page, png: bytes) -> dict[str, float]:
    """Share of non-white pixels and number of distinct colours of a screenshot, measured in the browser."""
    page.set_content("<canvas id=c></canvas>")
    measured: dict[str, float] = page.evaluate(
        """async (src) => {
            const image = new Image(); image.src = src; await image.decode();
            const canvas = document.getElementById("c");
            canvas.width = image.width; canvas.height = image.height;
            const context = canvas.getContext("2d"); context.drawImage(image, 0, 0);
            const data = context.getImageData(0, 0, image.width, image.height).data;
            let inked = 0; const colours = new Set();
            for (let i = 0; i < data.length; i += 4) {
                if (data[i] < 240 || data[i + 1] < 240 || data[i + 2] < 240) inked++;
                colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
            }
            return {inked: inked / (data.length / 4), colours: colours.size};
        }""",
        "data:image/png;base64," + base64.b64encode(png).decode(),
    )
    return measured


def test_the_docs_page_renders_every_operation_without_network(base_url: str, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run scripts/ensure-chromium.sh (as root) or `make services`")
    outside: list[str] = []

    def offline(route: Route) -> None:  # as on a machine without internet: only the app itself answers
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.route("**/*", offline)
            page.goto(f"{base_url}/docs")
            page.wait_for_selector(".opblock-summary", timeout=30_000)
            shown = page.locator(".opblock-summary-description").all_inner_texts()
            for summary in SUMMARIES:
                assert summary in shown, f"{summary!r} is not listed; listed: {shown}"
            assert page.locator(".opblock").count() >= 16
            assert page.locator("button.authorize").is_visible(), "no Authorize button: the security scheme is missing"
            screenshot = page.screenshot(path=str(tmp_path / "docs.png"), full_page=False)
            ink = _ink(browser.new_page(), screenshot)
            status = _try_typology_with_a_key(page, "dev-read")
        finally:
            browser.close()
    assert not outside, f"/docs reached outside the app: {outside}"
    assert ink["inked"] > 0.03 and ink["colours"] > 50, f"the screenshot looks blank: {ink}"
    assert status == "200", "Authorize did not send the key: the read was refused"


def _try_typology_with_a_key(page: Page, key: str) -> str:
    """Authorize with ``key`` as X-Api-Key, then "Try it out" on GET /v1/typology: the status it got."""
    page.click("button.authorize")
    scheme = page.locator(".modal-ux .auth-container").filter(has_text="X-Api-Key")
    scheme.locator("input").fill(key)
    scheme.locator("button.authorize").click()
    page.locator(".modal-ux button.btn-done").first.click()
    operation = page.locator(".opblock").filter(has_text="/v1/typology")
    operation.locator(".opblock-summary-control").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    cell = operation.locator(".live-responses-table tr.response .response-col_status").first
    cell.wait_for(timeout=15_000)
    return cell.inner_text().strip()
