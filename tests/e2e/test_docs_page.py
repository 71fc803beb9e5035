"""GET /docs in a real browser: headless Chromium, with no network but loopback, renders every operation.

A live gunicorn on the suite's own database (SQLite, or PostgreSQL with
TEST_DATABASE_URL); Debian's `chromium`, started by the test, reaches nothing
but loopback (tests/e2e/browser.py). The page must render every operation of
the served /openapi.json, load nothing but the service's own files, and no
part of the browser may open a connection off loopback. Screenshots are left
in the test's tmp directory and copied to /tmp/docs-screenshot.png (the whole
page) and /tmp/docs-screenshot-confirm.png (one operation opened), for a
person to look at.

Without chromium the test is skipped, saying so; where REQUIRE_POSTGRES_TESTS
is set (CI, whose .ci/run installs it) it fails instead.
"""

import ipaddress
import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.browser import (CHROMIUM_MISSING, Chromium, chromium_binary, net_log_destinations, net_log_urls,
                               running_chromium)
from tests.e2e.ops_server import fresh_database, http, running_gunicorn
from tests.skips import skip_or_fail

pytestmark = pytest.mark.e2e

RENDER_TIMEOUT_SECONDS = 60
SCREENSHOTS = {"docs.png": Path("/tmp/docs-screenshot.png"),
               "docs-confirm.png": Path("/tmp/docs-screenshot-confirm.png")}
CONFIRM = "operations-payments-post_api_payments_transaction_id_confirm"
# Each rendered operation block: [method, path as the document names it].
RENDERED_OPERATIONS = """Array.from(document.querySelectorAll('.opblock')).map(block => [
    block.querySelector('.opblock-summary-method').textContent.trim().toLowerCase(),
    block.querySelector('.opblock-summary-path').getAttribute('data-path')])"""
# Swagger UI puts a zero-width space before each slash of a path, so that long paths wrap.
VISIBLE_TEXT = "document.body.innerText.replaceAll('\\u200b', '')"


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return ipaddress.ip_address(host).is_loopback


def keep(screenshot: Path) -> None:
    shutil.copyfile(screenshot, SCREENSHOTS[screenshot.name])


def open_confirm_and_shoot(browser: Chromium, path: Path) -> str:
    """Open POST …/confirm/ as a reader would (a click), photograph that block, and return its text."""
    browser.evaluate(f"document.querySelector('#{CONFIRM} .opblock-summary-control').click()")
    browser.wait_for(f"document.querySelector('#{CONFIRM} .responses-table') !== null", RENDER_TIMEOUT_SECONDS)
    box = browser.evaluate(f"(() => {{ const r = document.getElementById('{CONFIRM}').getBoundingClientRect(); "
                           "return {x: r.x, y: r.y + window.scrollY, width: r.width, height: r.height}; })()")
    browser.screenshot(path, clip=box)
    return browser.evaluate(f"document.getElementById('{CONFIRM}').innerText")


def test_the_reference_renders_every_operation_in_chromium_with_no_network_but_loopback(database_url, tmp_path):
    if chromium_binary() is None:
        skip_or_fail(CHROMIUM_MISSING)
    url = fresh_database(database_url, tmp_path)
    with running_gunicorn(url, tmp_path, workers=1) as server, running_chromium(tmp_path / "chromium") as browser:
        status, _, body = http(server.base, "GET", "/openapi.json")
        assert status == 200
        document = json.loads(body)
        operations = {(method, path) for path, methods in document["paths"].items() for method in methods}

        browser.open(f"{server.base}/docs")
        browser.wait_for(f"document.querySelectorAll('.opblock').length >= {len(operations)}",
                         RENDER_TIMEOUT_SECONDS)
        rendered = browser.evaluate(RENDERED_OPERATIONS)
        text = browser.evaluate(VISIBLE_TEXT)
        keep(browser.screenshot(tmp_path / "docs.png"))
        confirm_text = open_confirm_and_shoot(browser, tmp_path / "docs-confirm.png")
        keep(tmp_path / "docs-confirm.png")
        refused = browser.evaluate("window.__refused")
        requested, failed, thrown = browser.requested_urls(), browser.failed_loads(), browser.exceptions()
        browser.stop()  # the network log is complete once the browser has closed

    assert sorted(map(tuple, rendered)) == sorted(operations)
    assert "/api/payments/{transaction_id}/confirm/" in text
    assert "cleanup_old_payments" in text
    assert "payment_not_pending" in confirm_text and "Example Value" in confirm_text
    # The page asked for the service's own files only, got them all, and ran without an error.
    assert requested[0] == f"{server.base}/docs"
    assert {u for u in requested if not u.startswith(f"{server.base}/") and not u.startswith("data:")} == set()
    assert (failed, thrown, refused) == ([], [], [])
    # No part of the browser sent anything anywhere but loopback (its own background requests, such as update
    # checks, went to the dead proxy on loopback and failed there).
    destinations = net_log_destinations(browser.net_log)
    assert f"127.0.0.1:{server.port}" in destinations
    assert [a for a in destinations if not is_loopback(a)] == [], net_log_urls(browser.net_log)
