"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by playwright).

A real ``learned-router serve`` process (admin and client keys set) in front of fake
upstreams gets a mix of chat requests through the openai SDK (``fakes.dashboard``). The
page must ask for the admin key, refuse a wrong one, then render the decisions those
requests made (every request id with the tier its response header named), SVG charts
with data, the backend whose circuit the test opened, the shadow's agreement and the
feedback counts; a request sent while the page is open must appear without a reload. No
console errors, page errors or failed requests apart from the two 401s the keys earn.

Skipped, with the reason, when chromium or playwright is missing (``.ci/run`` installs
both: ``apt-get install chromium`` and the dev requirements)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fakes.dashboard import DashboardRouter, chat, dashboard_router, send_traffic

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is a dev requirement (make setup-dev)"
)
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)",
)


@pytest.fixture
def router(tmp_path: Path) -> Iterator[DashboardRouter]:
    with dashboard_router(tmp_path) as r:
        send_traffic(r)
        yield r


@pytest.fixture
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield b
        finally:
            b.close()


def test_the_dashboard_renders_live_data_from_real_requests(
    router: DashboardRouter, browser: Any
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []  # console errors, page errors, failed or refused requests
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
    expect = playwright_api.expect

    page.goto(f"{router.url}/dashboard")
    expect(page.locator("#auth")).to_be_visible()  # keys are set: the data needs the key
    expect(page.locator("#auth-message")).to_contain_text("admin key")
    page.fill("#key", "not-the-key")
    page.press("#key", "Enter")
    expect(page.locator("#auth-message")).to_contain_text("That key was refused")
    data_url = f"{router.url}/dashboard/data?window=900"
    refused = [f"401 {data_url}", "console: Failed to load resource: the server responded with "
               "a status of 401 (Unauthorized)"]  # fmt: skip
    assert sorted(problems) == sorted(refused * 2), problems
    problems.clear()

    page.fill("#key", router.admin_key)
    page.press("#key", "Enter")
    rows = page.locator("#decisions tbody tr")
    expect(rows).to_have_count(len(router.sent), timeout=10_000)
    expect(page.locator("#auth")).to_be_hidden()
    for sent in router.sent:  # every request, with the tier its answer's header named
        row = page.locator(f'#decisions tbody tr[data-request-id="{sent.request_id}"]')
        expect(row).to_have_count(1)
        tier = row.get_attribute("data-served-tier") or row.get_attribute("data-tier")
        assert tier == sent.tier, (sent, row.inner_text())
        if sent.fallback:
            expect(row.locator("td.fallback")).to_contain_text(sent.fallback.split("/", 1)[1])

    card = page.locator('[data-card="decisions"] .card-value')
    expect(card).to_have_text(str(len(router.sent)))
    decided = {t: page.locator(f"#decisions tbody tr[data-tier={t}]").count() for t in
               ("local", "primary", "strong")}  # fmt: skip
    bars = page.locator("#chart-tiers svg rect.bar")
    assert bars.count() >= sum(1 for n in decided.values() if n), decided
    titles = page.eval_on_selector_all(
        "#chart-tiers svg rect.bar title", "els => els.map((e) => e.textContent)"
    )
    assert sum(int(t.rsplit(": ", 1)[1]) for t in titles) == len(router.sent), titles
    assert page.locator("#chart-cost svg circle.dot").count() >= 2  # routed + always-strong
    assert page.locator("#chart-latency svg circle.dot").count() >= 2  # p50 + p99
    expect(page.locator('[data-card="saved"] .card-value')).not_to_have_text("$0.00")

    primary = page.locator('#backends tr[data-backend="primary-openai"]')
    expect(primary.locator(".badge")).to_have_text("open")  # three 500s opened it
    expect(primary).to_contain_text("http_500 ×3")
    expect(page.locator('#backends tr[data-backend="strong-openai"] .badge')).to_have_text("closed")
    expect(page.locator("#model")).to_contain_text("candidate-v2")  # the shadow candidate
    expect(page.locator("#model")).to_contain_text("tier agreement")
    expect(page.locator("#feedback")).to_contain_text("3 (1 up, 1 down, 1 scored)")
    expect(page.locator("#feedback")).to_contain_text("2 (2 ok, 0 failed)")
    scorer = httpx.get(f"{router.url}/health", headers={"X-Admin-Key": router.admin_key}).json()
    expect(page.locator("#model-line")).to_contain_text(f"scorer {scorer['scorer']['name']}")
    expect(page.locator("#model-line")).to_contain_text(str(scorer["scorer"]["version"]))

    late = chat(router, "One more question, asked while the dashboard is open.")
    expect(page.locator(f'#decisions tr[data-request-id="{late.request_id}"]')).to_have_count(
        1, timeout=10_000
    )  # the page refreshed itself
    expect(card).to_have_text(str(len(router.sent)))
    assert problems == []
