"""The HTML report as a browser shows it: headless Chromium, offline.

These tests need Debian's `chromium` at /usr/bin/chromium, which `make test`
installs where it runs as root with apt-get; elsewhere they skip, saying so.
"""

import io

import pytest
from PIL import Image

from tests.browser import CHROMIUM, Chromium
from tests.conftest import HOSTILE_NAME
from tests.test_report import SECTIONS

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"needs Debian's chromium at {CHROMIUM}; `make test` installs it "
    "where apt-get is available to root",
)

SECTION_IDS = "[...document.querySelectorAll('main > section')].map(s => s.id)"
HEADINGS = (
    "[...document.querySelectorAll('main > section > h2')].map(h => h.textContent)"
)
IMAGES_DECODED = (
    "[...document.images].filter(i => i.complete && i.naturalWidth > 0).length"
)


def pixels(png: bytes) -> tuple[tuple[int, int], float, int]:
    """Size, share of the commonest colour, and number of colours of a PNG."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=image.width * image.height)
    commonest = max(colours)[0] / (image.width * image.height)
    return image.size, commonest, len(colours)


def test_report_renders_offline_without_console_errors(full_report_run):
    report = full_report_run / "report.html"
    with Chromium(width=1280, height=800) as browser:
        browser.open(report)
        errors = browser.console_errors()
        urls = browser.requested_urls()
        sections = browser.evaluate(SECTION_IDS)
        headings = browser.evaluate(HEADINGS)
        images = browser.evaluate("document.images.length")
        decoded = browser.evaluate(IMAGES_DECODED)
        first_screen = browser.screenshot()
        load_figure = browser.screenshot("#figure-load_over_time img")

    assert errors == []
    assert {url for url in urls if not url.startswith("data:image/png;base64,")} == {
        report.resolve().as_uri()
    }
    assert sections == SECTIONS
    assert headings[:3] == ["Recommendation", "Scenario", "Strategy comparison"]
    assert images == decoded == 8

    size, commonest, colours = pixels(first_screen)
    assert size == (1280, 800)
    assert commonest < 0.8 and colours > 50
    _, commonest, colours = pixels(load_figure)
    assert commonest < 0.95 and colours > 20


def test_a_script_as_scenario_name_shows_as_text(hostile_run):
    with Chromium() as browser:
        browser.open(hostile_run / "report.html")
        title = browser.evaluate("document.querySelector('h1').textContent")
        scripts = browser.evaluate("document.scripts.length")
        stray = browser.evaluate(
            "[...document.images].filter(i => !i.src.startsWith('data:')).length"
        )
        errors = browser.console_errors()

    assert title == HOSTILE_NAME
    assert scripts == 0
    assert stray == 0
    assert errors == []
