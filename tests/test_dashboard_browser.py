"""The admin dashboard in Chromium: it renders its charts (server-side SVG, nothing
from outside), its numbers match the usage records, and it updates itself.

The screenshot artifacts/admin-dashboard.png is the README's picture.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.db.models import Sum

from tests.fake_ollama import FakeOllama
from tests.test_browser_chat import ARTIFACTS, browser_page  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser

T = TypeVar("T")
CHAT = "/v1/chat/completions"


def orm(query: Callable[[], T]) -> T:
    """Run an ORM query off this thread (Playwright's sync API runs an event loop here)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(query).result()


def _until_recorded(count: int) -> None:
    """Wait (up to 60 s) until `count` usage records are in the database."""
    import time

    from keys.models import UsageRecord

    deadline = time.monotonic() + 60
    while orm(UsageRecord.objects.count) < count:
        assert time.monotonic() < deadline, "the usage records were never written"
        time.sleep(0.05)


def usage_totals() -> dict[str, Any]:
    from keys.models import UsageRecord

    records = UsageRecord.objects.all()
    sums = records.aggregate(p=Sum("prompt_tokens"), c=Sum("completion_tokens"))
    return {
        "requests": records.count(),
        "errors": records.filter(status__gte=400).count(),
        "tokens": (sums["p"] or 0) + (sums["c"] or 0),
        "by_model": {
            model: records.filter(model=model).count()
            for model in records.values_list("model", flat=True).distinct()
        },
    }


@pytest.fixture
def operator(transactional_db) -> None:  # type: ignore[no-untyped-def]
    get_user_model().objects.create_user(
        username="olive", password="a-long-passphrase-8", is_staff=True, is_superuser=True
    )


def test_the_dashboard_renders_charts_whose_numbers_match_the_usage_records(
    operator,  # type: ignore[no-untyped-def]
    api_key: str,
    gateway: str,
    fake_ollama: FakeOllama,
    browser_page,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    fake_ollama.reply = ["one", " two", " three"]
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=gateway, timeout=10) as client:

        def traffic(n: int) -> None:
            for i in range(n):
                model = "qwen2.5:14b" if i % 3 else "llama3.2"
                body = {"model": model, "messages": [{"role": "user", "content": "Hi"}]}
                assert client.post(CHAT, headers=headers, json=body).status_code == 200
            missing = {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}
            assert client.post(CHAT, headers=headers, json=missing).status_code == 404

        traffic(5)
        # The usage flusher writes in the background: wait until it has written
        # all six records, then the page's first render shows every one.
        _until_recorded(6)
        page.goto("/admin/login/?next=/admin/ops/dashboard/")
        page.fill("#id_username", "olive")
        page.fill("#id_password", "a-long-passphrase-8")
        page.click("input[type=submit]")

        expect(page.locator("#tile-requests strong")).to_have_text("6")
        totals = orm(usage_totals)
        assert totals["requests"] == 6
        expect(page.locator("svg.chart")).to_have_count(2)
        expect(page.locator("svg.chart polyline.series")).to_have_count(3)
        expect(page.locator("#tile-tokens strong")).to_have_text(str(totals["tokens"]))
        expect(page.locator("#tile-error-rate strong")).to_have_text(
            f"{round(100 * totals['errors'] / totals['requests'])}%"
        )
        for model, count in totals["by_model"].items():
            row = page.locator("#by-model tbody tr", has_text=model)
            expect(row.locator("td").nth(1)).to_have_text(str(count))
        expect(
            page.locator("#by-surface tbody tr", has_text="native").locator("td").nth(1)
        ).to_have_text("6")
        expect(page.locator("#top-keys-requests tbody tr").first).to_contain_text(
            api_key.split("_")[1]
        )
        expect(page.locator("#backends tbody tr", has_text="ollama")).to_contain_text("up")

        # Without a reload, the page catches up with new traffic.
        page.evaluate("document.getElementById('dashboard-live').dataset.marker = 'same page'")
        traffic(2)
        _until_recorded(9)
        expect(page.locator("#tile-requests strong")).to_have_text("9", timeout=20_000)
        assert page.evaluate("document.getElementById('dashboard-live').dataset.marker") == (
            "same page"
        )
        assert orm(usage_totals)["requests"] == 9
        page.screenshot(path=str(ARTIFACTS / "admin-dashboard.png"), full_page=True)

        # Nothing on the page came from another origin (the charts work offline).
        origins = page.evaluate(
            "[...performance.getEntriesByType('resource')].map(e => new URL(e.name).origin)"
        )
        assert set(origins) <= {gateway}


def test_a_notice_sent_from_the_admin_shows_as_a_banner_on_the_chat_page(
    operator,  # type: ignore[no-untyped-def]
    fake_ollama: FakeOllama,
    browser_page,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    chat = browser_page
    chat.goto("/admin/login/?next=/")
    chat.fill("#id_username", "olive")
    chat.fill("#id_password", "a-long-passphrase-8")
    chat.click("input[type=submit]")
    expect(chat.locator("#connection-state")).to_have_text("Connected")
    expect(chat.locator("#notice-banner")).to_be_hidden()

    admin = chat.context.new_page()
    admin.goto("/admin/ops/broadcast/")
    admin.fill("#id_message", "Restarting in 5 minutes")
    admin.select_option("#id_level", "warning")
    admin.click("input[type=submit]")
    expect(admin.locator(".messagelist")).to_contain_text("Notice sent to every session")

    banner = chat.locator("#notice-banner")
    expect(banner).to_be_visible()
    expect(banner).to_have_attribute("data-level", "warning")
    expect(chat.locator("#notice-text")).to_have_text("Restarting in 5 minutes")
    chat.screenshot(path=str(ARTIFACTS / "chat-notice.png"))
    chat.click("#notice-dismiss")
    expect(banner).to_be_hidden()
