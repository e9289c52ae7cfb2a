"""The lag page, served by a real ``omnichannel lag serve`` process, in headless Chromium.

Debian's Chromium is used (``/usr/bin/chromium``): Playwright's own browser download needs a CDN this project
cannot reach. ``scripts/ensure-chromium.sh`` installs it when missing (also run by ``make services``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lag_harness import FakeClock, KafkaKit, lag_serve
from playwright.sync_api import Browser, Page, sync_playwright

from omnichannel.stack.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
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


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        subprocess.run(["sh", str(ROOT / "scripts" / "ensure-chromium.sh")], check=False, timeout=1200)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: as root run `apt-get install -y chromium` (or `make services`)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser: Browser, url: str) -> tuple[Page, list[str]]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    return page, errors


def test_lag_page_plots_offset_and_time_lag_of_a_group_live(
    browser: Browser, kit: KafkaKit, clock: FakeClock, unique: Callable[[str], str]
) -> None:
    topic, group = kit.topic("page"), kit.group("page")
    kit.produce(topic, 10, timestamp=clock.now - 60)
    kit.commit(group, topic, {0: 3})
    with lag_serve(kit.bootstrap, "--interval", "0.5", "--window", "2", "--group", group) as base:
        page, errors = open_page(browser, f"{base}/ops/lag")
        offset_path = f'path[data-group="{group}"][data-series="offset-lag"]'
        # The page refreshes itself every interval: wait for a line of several points, not just the first one.
        page.wait_for_function(f"(document.querySelector('{offset_path}')?.dataset.points ?? 0) >= 3", timeout=20_000)
        d = page.get_attribute(offset_path, "d") or ""
        assert d.startswith("M") and d.count("L") >= 2, d
        time_path = f'path[data-group="{group}"][data-series="time-lag"]'
        assert int(page.get_attribute(time_path, "data-points") or 0) >= 3
        card = page.locator(f'section.group[data-group="{group}"]')
        assert card.get_attribute("data-status") in ("OK", "ERR")  # STOP once the 2 s window has passed
        assert "lag 7" in card.locator("div.facts").inner_text()  # 10 records, 3 committed
        assert page.locator("#banner").is_hidden()

        # A group that does not exist is said so on the page, not left blank.
        page.goto(f"{base}/ops/lag?group=no-such-group-{unique('x')}")
        page.wait_for_function("document.getElementById('banner').textContent.includes('does not exist')")
        assert page.locator('section.group[data-status="NOTFOUND"]').count() == 1
        assert errors == []
        page.close()


def test_lag_page_says_when_kafka_does_not_answer(browser: Browser) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with lag_serve(dead, "--interval", "1", "--window", "2") as base:
        page, errors = open_page(browser, f"{base}/ops/lag")
        page.wait_for_function("document.getElementById('banner').textContent.includes('Kafka does not answer')")
        banner = page.locator("#banner").inner_text()
        assert dead in banner and "keeps retrying" in banner
        assert errors == []
        page.close()
