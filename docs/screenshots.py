"""Take the README's pictures of a rendered report.

    python docs/screenshots.py RUN_DIR

opens RUN_DIR/report.html in headless Chromium and writes, beside this file,
`report-first-screen.png` (the first 1280 x 800 screen) and
`report-load-over-time.png` (the load-over-time figure with its caption).
"""

import argparse
from pathlib import Path

from tests.browser import Chromium

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder with report.html")
    run_dir = parser.parse_args().run_dir
    with Chromium(width=1280, height=800) as browser:
        browser.open(run_dir / "report.html")
        errors = browser.console_errors()
        if errors:
            raise SystemExit(f"the report logged errors: {errors}")
        (HERE / "report-first-screen.png").write_bytes(browser.screenshot())
        (HERE / "report-load-over-time.png").write_bytes(
            browser.screenshot("#figure-load_over_time")
        )


if __name__ == "__main__":
    main()
