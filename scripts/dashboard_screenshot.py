"""A real router + fake upstreams + a mix of traffic -> ``docs/dashboard.png``, the
dashboard as headless Chromium renders it (the README shows it).

    .venv/bin/python scripts/dashboard_screenshot.py [--out docs/dashboard.png] [--rounds 8]

The same set-up as ``tests/test_dashboard_browser.py`` (``tests/fakes/dashboard.py``): a
``learned-router serve`` process with the committed model and a shadow candidate, fake
OpenAI-compatible upstreams on loopback, requests sent with the openai SDK in ``--rounds``
rounds a few seconds apart (so the charts have several buckets), a primary backend that
fails three times (fallbacks, an open circuit), user and judge feedback. Needs Debian's
``chromium`` and the dev requirements (playwright)."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the fakes package of the test suite

from fakes.dashboard import dashboard_router, send_traffic  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "dashboard.png")
    parser.add_argument("--rounds", type=int, default=8, help="traffic rounds (default 8)")
    parser.add_argument("--pause", type=float, default=4.0, help="seconds between rounds")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory() as tmp, dashboard_router(Path(tmp)) as router:
        sent = send_traffic(router, rounds=args.rounds, pause_s=args.pause)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1240})
            page.goto(f"{router.url}/dashboard")
            page.fill("#key", router.admin_key)
            page.press("#key", "Enter")
            page.select_option("#window", "300")
            expect(page.locator("#decisions tbody tr")).to_have_count(min(len(sent), 50))
            expect(page.locator("#chart-tiers svg rect.bar").first).to_be_visible()
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))  # the viewport: the top of the table
            browser.close()
    print(f"{args.out}: {len(sent)} requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
