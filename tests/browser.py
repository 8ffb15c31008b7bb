"""A rendered report seen through headless Chromium, driven by Playwright.

The test suite opens reports with it to check that they render without
console errors or requests to other hosts, and `docs/screenshots.py` takes
the README's pictures with it. It launches Debian's Chromium rather than a
browser of Playwright's own, which this machine cannot download.
"""

from pathlib import Path
from types import TracebackType
from typing import Any

from playwright.sync_api import Browser, Page, Playwright, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")

# Flags for a root shell on a machine without a screen or outside network:
# no sandbox (it refuses to run as root), no GPU, and none of the background
# traffic (updates, sync, field trials) that would try to reach other hosts.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
]


class Chromium:
    """One headless Chromium with one page, closed on leaving a `with` block.

    Console errors, uncaught page errors and every requested URL are kept, so
    a caller can look for them after the page has loaded.
    """

    def __init__(self, width: int = 1280, height: int = 800) -> None:
        self.width = width
        self.height = height
        self._errors: list[str] = []
        self._urls: list[str] = []
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._page: Page | None = None

    def __enter__(self) -> "Chromium":
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=FLAGS, headless=True
        )
        page = self._browser.new_page(
            viewport={"width": self.width, "height": self.height}
        )
        page.on(
            "console",
            lambda message: (
                self._errors.append(message.text) if message.type == "error" else None
            ),
        )
        page.on("pageerror", lambda error: self._errors.append(str(error)))
        page.on("request", lambda request: self._urls.append(request.url))
        self._page = page
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._browser is not None:
            self._browser.close()
        if self._playwright is not None:
            self._playwright.stop()

    @property
    def page(self) -> Page:
        assert self._page is not None, "use Chromium inside a with block"
        return self._page

    def open(self, path: Path) -> None:
        """Load a local file and wait until it and its images have loaded."""
        self.page.goto(Path(path).resolve().as_uri(), wait_until="load")

    def evaluate(self, expression: str) -> Any:
        return self.page.evaluate(expression)

    def console_errors(self) -> list[str]:
        return list(self._errors)

    def requested_urls(self) -> list[str]:
        return list(self._urls)

    def screenshot(self, selector: str | None = None) -> bytes:
        """A PNG of the first screen, or of one element scrolled into view."""
        if selector is None:
            return self.page.screenshot()
        return self.page.locator(selector).first.screenshot()
