"""The built runbook site in a real headless Chromium: search ranking and the first screen."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from pooldoctor.runbooks import RUNBOOK_SLUGS, load_runbooks

REPO = Path(__file__).resolve().parents[1]
RUNBOOKS = load_runbooks(REPO / "runbooks")
# The error people paste most, as SQLAlchemy prints it.
QUEUEPOOL_ERROR = (
    "QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30.00"
)
SCREENS = {"desktop": (1280, 800), "phone": (390, 844)}
WAIT_MS = 15_000


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""


@pytest.fixture(scope="module")
def site_url(site: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is required (make test installs it: scripts/ensure-chromium.sh)"
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def _first_results(browser: Any, site_url: str, queries: list[str]) -> dict[str, str]:
    """Type each query into the site's search box and return the first result's path."""
    page = browser.new_page()
    page.goto(site_url)
    page.wait_for_load_state("networkidle")
    box = page.locator("input.md-search__input")
    box.click()
    first: dict[str, str] = {}
    for query in queries:
        box.fill("")
        box.press("End")
        page.wait_for_function(
            "!document.querySelector('.md-search-result__item')", timeout=WAIT_MS
        )
        box.fill(query)
        box.press("End")
        link = page.locator(".md-search-result__item a").first
        link.wait_for(state="attached", timeout=WAIT_MS)
        href = str(link.get_attribute("href"))
        first[query] = href.removeprefix(site_url).split("?")[0].split("#")[0]
    page.close()
    return first


def test_pasted_errors_find_a_runbook_that_lists_them_first(browser: Any, site_url: str) -> None:
    first_symptoms = {runbook.symptoms[0]: slug for slug, runbook in RUNBOOKS.items()}
    queries = [*first_symptoms, "Known limits", "QueuePool limit", QUEUEPOOL_ERROR]
    first = _first_results(browser, site_url, queries)

    queuepool_runbooks = {
        f"runbooks/{slug}/"
        for slug, runbook in RUNBOOKS.items()
        if "QueuePool limit of size" in runbook.symptoms
    }
    assert first["QueuePool limit"] in queuepool_runbooks, first
    assert first[QUEUEPOOL_ERROR] in queuepool_runbooks, first
    for symptom in first_symptoms:
        listing = {f"runbooks/{s}/" for s, rb in RUNBOOKS.items() if symptom in rb.symptoms}
        assert first[symptom] in listing, (symptom, first[symptom])
    # Guide headings are still found by their own words.
    assert first["Known limits"] == "scan/", first


@pytest.mark.parametrize("screen", sorted(SCREENS))
def test_stop_the_bleeding_box_is_on_the_first_screen(
    browser: Any, site_url: str, screen: str
) -> None:
    width, height = SCREENS[screen]
    page = browser.new_page(viewport={"width": width, "height": height})
    offsets = {}
    for slug in RUNBOOK_SLUGS:
        page.goto(f"{site_url}runbooks/{slug}/")
        box = page.locator(".admonition.tip").first.bounding_box()
        symptoms = page.locator(".admonition.danger").first.bounding_box()
        assert box and symptoms and symptoms["y"] < box["y"], slug
        offsets[slug] = round(box["y"])
        assert page.evaluate("document.documentElement.scrollWidth") <= width, slug
    page.close()
    assert all(top < height for top in offsets.values()), offsets


def _rgb(css: str) -> tuple[float, ...]:
    return tuple(float(part) for part in css[css.index("(") + 1 : -1].split(",")[:3])


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_site_follows_the_readers_colour_scheme(browser: Any, site_url: str, scheme: str) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844}, color_scheme=scheme)
    page.goto(f"{site_url}runbooks/connection-leak/")
    background = _rgb(page.evaluate("getComputedStyle(document.body).backgroundColor"))
    text = _rgb(page.evaluate("getComputedStyle(document.querySelector('.md-typeset')).color"))
    page.close()
    # Dark mode: a dark page with light text; light mode the other way round.
    assert (sum(background) < sum(text)) == (scheme == "dark"), (background, text)
    assert abs(sum(background) - sum(text)) > 300, (background, text)
