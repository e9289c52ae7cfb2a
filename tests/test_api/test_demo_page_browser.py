"""The demo page in a real headless Chromium: the basket moves from the phone to the tablet and back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from api_harness import Backbone
from playwright.sync_api import sync_playwright

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


def _line(device: str, product: str, quantity: int | None = None) -> str:
    selector = f"#{device}-cart tr.line[data-product='{product}']"
    return selector + (f"[data-quantity='{quantity}']" if quantity is not None else "")


def test_the_basket_moves_from_phone_to_tablet_in_a_real_browser(backbone: Backbone) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run scripts/ensure-chromium.sh (as root) or `make services`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{backbone.base_url}/demo/")
            page.wait_for_selector("#phone-add-SKU-LAMP")
            page.click("#phone-add-SKU-LAMP")
            page.click("#phone-add-SKU-CHAIR")
            page.wait_for_selector(_line("phone", "SKU-CHAIR", 1), timeout=60_000)
            page.wait_for_selector(_line("phone", "SKU-LAMP", 1), timeout=60_000)
            assert page.locator("#tablet-cart tr.line").count() == 0

            page.click("#phone-save")
            page.wait_for_timeout(300)
            page.click("#tablet-login")
            page.wait_for_selector(_line("tablet", "SKU-LAMP", 1), timeout=60_000)
            page.wait_for_selector(_line("tablet", "SKU-CHAIR", 1), timeout=60_000)

            page.click("#tablet-add-SKU-RUG")
            page.wait_for_selector(_line("phone", "SKU-RUG", 1), timeout=60_000)  # live on the phone too
            assert page.locator("#phone-profile").inner_text().startswith("customer:")
            assert page.locator("#phone-profile").inner_text() == page.locator("#tablet-profile").inner_text()
            # The tablet shows what is still open for the customer: the basket, last touched on the tablet.
            page.wait_for_selector("#tablet-open li[data-kind='cart']", timeout=60_000)
            assert "last on tablet" in page.locator("#tablet-open li[data-kind='cart']").inner_text()
        finally:
            browser.close()
