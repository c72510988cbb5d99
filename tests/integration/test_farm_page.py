"""The live farm page of the admin listener, in headless Chromium (selenium + chromedriver).

A 3-node farm with admin listeners; the page of node a loads with no console
error, shows every member alive and the forwarding matrix filling with traffic,
and shows node c dead within the detection time once c is killed. Skipped,
saying why, when Chromium, chromedriver or selenium is absent.

LB_FARM_PAGE_SCREENSHOT=FILE saves a screenshot of the running farm's page
(docs/farm-page.png is made so).
"""

from __future__ import annotations

import http.client
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import _finish
from tests.support.admin import AdminFarm
from tests.support.farm import DEFAULT_LIMITS
from tests.support.wait import eventually_passes

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
DEAD_AFTER = float(DEFAULT_LIMITS["dead_after"])
PAGE_REFRESH = 1.0  # lb.node.farmfeed.REFRESH: the page gets a snapshot once a second


try:
    from selenium.common.exceptions import StaleElementReferenceException

    STALE: tuple[type[BaseException], ...] = (StaleElementReferenceException,)
except ModuleNotFoundError:  # the test skips, saying why
    STALE = ()


def _skip_reason() -> str | None:
    if CHROMIUM is None:
        return "Chromium is not installed (Debian package chromium)"
    if CHROMEDRIVER is None:
        return "chromedriver is not installed (Debian package chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ModuleNotFoundError:
        return "selenium is not installed (the test extra: pip install -e '.[test]')"
    return None


@pytest.fixture
def browser() -> Iterator[Any]:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1100,760",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[AdminFarm]:
    f = AdminFarm(tmp_path / "farm", token="farm-page-token-0123456789")
    try:
        f.start()
        yield f
    finally:
        _finish(f)


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def states(driver: Any) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "#members tbody tr")
    return {r.get_attribute("data-member"): r.get_attribute("data-state") for r in rows}


def traffic(farm: AdminFarm, stop: threading.Event) -> None:
    """New sessions at every entry (a few a second each), until `stop`."""
    while not stop.is_set():
        for entry in farm.nodes:
            if stop.is_set() or entry not in farm.running_nodes():
                continue
            try:
                conn = http.client.HTTPConnection(*farm.addr(entry), timeout=2)
                conn.request("GET", "/")
                conn.getresponse().read()
                conn.close()
            except (OSError, http.client.HTTPException):
                pass
        time.sleep(0.03)


def test_farm_page_shows_members_matrix_and_a_killed_node(farm: AdminFarm, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    host, port = farm.admin("a")
    browser.get(f"http://{host}:{port}/?token={farm.token}")
    assert browser.title == "lb farm"

    def all_alive() -> None:
        assert states(browser) == {"a": "alive", "b": "alive", "c": "alive"}

    eventually_passes(all_alive, timeout=10, what="every member alive on the page", retry_on=STALE)

    stop = threading.Event()
    sender = threading.Thread(target=traffic, args=(farm, stop), daemon=True)
    sender.start()
    try:

        def matrix_moves() -> None:
            # every entry's row is there and shows requests/s to some home
            for entry in farm.nodes:
                cells = browser.find_elements(
                    By.CSS_SELECTOR, f'#matrix tr[data-entry="{entry}"] td'
                )
                assert len(cells) == 3
                assert any("req/s" in c.text and not c.text.startswith("0 ") for c in cells), [
                    c.text for c in cells
                ]

        eventually_passes(matrix_moves, timeout=15, what="the matrix shows traffic", retry_on=STALE)
        shot = os.environ.get("LB_FARM_PAGE_SCREENSHOT")
        if shot:
            browser.save_screenshot(shot)
        assert console_errors(browser) == []

        farm.kill("c")
        killed = time.monotonic()

        def c_dead() -> None:
            assert states(browser).get("c") == "dead"

        eventually_passes(c_dead, timeout=DEAD_AFTER + 10, what="c shown dead", retry_on=STALE)
        took = time.monotonic() - killed
        # detection (dead_after) plus one snapshot of the page, plus scheduling slack
        assert took <= DEAD_AFTER + 2 * PAGE_REFRESH + 1.5, f"c shown dead after {took:.1f}s"
        now = eventually_passes(lambda: states(browser), timeout=5, what="states", retry_on=STALE)
        assert now["a"] == "alive" and now["b"] == "alive"

        def c_row_empty() -> None:
            # c's row of the matrix is gone: its admin listener no longer answers
            cells = browser.find_elements(By.CSS_SELECTOR, '#matrix tr[data-entry="c"] td')
            assert [c.text for c in cells] == ["", "", ""]

        eventually_passes(c_row_empty, timeout=5, what="c's row empties", retry_on=STALE)
    finally:
        stop.set()
        sender.join(timeout=10)
    assert console_errors(browser) == []
