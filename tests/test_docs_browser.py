"""The docs pages in a real headless browser (Debian's Chromium, driven by Playwright).

/docs lists every operation, "Authorize" with a pasted key makes "Try it
out" succeed against the live gateway (and without it the same call gets
401), /redoc renders; neither page asks anything of another host.
Screenshots land in artifacts/ for a person to look at.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlparse

import httpx
import pytest

from tests.test_browser_chat import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS

pytestmark = pytest.mark.browser

METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture
def docs_page(gateway: str) -> Iterator:  # type: ignore[type-arg]
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("/usr/bin/chromium is missing: `make test` installs Debian's chromium")
        pytest.skip("/usr/bin/chromium is missing (make test installs it)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=gateway, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page_errors: list[str] = []
        hosts: set[str] = set()
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        # Every response the page got (a load the CSP blocks gets none: Redoc's
        # "Redocly" logo from cdn.redoc.ly is asked for and refused in the browser).
        page.on("response", lambda response: hosts.add(urlparse(response.url).netloc))
        yield page
        context.close()
        browser.close()
    assert page_errors == []
    assert hosts - {""} == {urlparse(gateway).netloc}, hosts


def _operation_count(gateway: str) -> int:
    document = httpx.get(f"{gateway}/openapi.json").json()
    return sum(1 for item in document["paths"].values() for method in item if method in METHODS)


def _try_models_list(page) -> str:  # type: ignore[no-untyped-def]
    """Run GET /v1/models through "Try it out"; the status Swagger UI shows."""
    operation = page.locator("#operations-models-v1_models_list")
    # Deep linking may have opened it already (a reload keeps the #fragment).
    if "is-open" not in (operation.get_attribute("class") or ""):
        operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status")
    status.first.wait_for()
    return status.first.inner_text().strip()


def test_swagger_ui_lists_every_operation(docs_page, gateway: str) -> None:  # type: ignore[no-untyped-def]
    expected = _operation_count(gateway)

    docs_page.goto("/docs")
    docs_page.locator(".opblock").first.wait_for()

    assert docs_page.locator(".opblock").count() == expected
    assert docs_page.locator(".info .title").inner_text().startswith("Local AI API")
    for summary in ("Create a chat completion", "List models", "Create embeddings"):
        assert docs_page.get_by_text(summary, exact=True).first.is_visible()
    tags = docs_page.locator(".opblock-tag-section h3 .opblock-tag, .opblock-tag span")
    assert tags.count() >= 7
    docs_page.screenshot(path=str(ARTIFACTS / "docs-swagger.png"), full_page=False)


def test_authorize_with_a_pasted_key_makes_try_it_out_succeed(  # type: ignore[no-untyped-def]
    api_key: str, docs_page
) -> None:
    # (The key is made before the browser starts: Playwright's sync API runs an
    # event loop in this thread, where Django refuses database calls.)
    docs_page.goto("/docs")
    docs_page.locator("#operations-models-v1_models_list").wait_for()
    # Without a key the live gateway refuses the call, so Authorize is what makes it work.
    assert _try_models_list(docs_page) == "401"
    docs_page.reload()

    docs_page.locator("button.authorize").first.click()
    bearer = docs_page.locator(".auth-container").filter(has_text="BearerAuth")
    bearer.locator("input").fill(api_key)
    bearer.locator("button.authorize").click()
    docs_page.locator("button.btn-done").first.click()
    status = _try_models_list(docs_page)

    assert status == "200"
    body = docs_page.locator("#operations-models-v1_models_list .live-responses-table")
    assert "qwen2.5:14b" in body.inner_text()
    docs_page.screenshot(path=str(ARTIFACTS / "docs-try-it-out.png"), full_page=False)


def test_redoc_renders_the_operations(docs_page) -> None:  # type: ignore[no-untyped-def]
    docs_page.goto("/redoc")

    docs_page.locator("h2", has_text="Create a chat completion").first.wait_for()

    assert docs_page.locator("h1", has_text="Local AI API").first.is_visible()
    for summary in ("Liveness probe", "List models", "Create embeddings", "Chat (Ollama)"):
        assert docs_page.locator("h2", has_text=summary).count() >= 1, summary
    docs_page.screenshot(path=str(ARTIFACTS / "docs-redoc.png"), full_page=False)


def test_staff_routes_offer_basic_auth_in_the_docs_and_no_browser_password_prompt(  # type: ignore[no-untyped-def]
    docs_page,
) -> None:
    docs_page.goto("/docs")
    docs_page.locator(".opblock").first.wait_for()

    docs_page.locator("button.authorize").first.click()
    dialog = docs_page.locator(".auth-container")
    dialog.first.wait_for()
    names = [text.split()[0] for text in dialog.locator("h4").all_inner_texts()]
    # The session cookie scheme Swagger cannot set is not offered (issue 15).
    assert sorted(names) == ["BasicAuth", "BearerAuth"], names
    docs_page.locator("button.btn-done").first.click()

    # What "Try it out" does without credentials: the page's own fetch(). Its
    # 401 must not name Basic, or the browser pops its password prompt.
    status, challenge, icon = docs_page.evaluate(
        """async () => {
            const keys = await fetch("/admin/api-keys");
            const icon = await fetch("/favicon.ico");
            return [keys.status, keys.headers.get("www-authenticate"),
                    [icon.status, icon.headers.get("content-type")]];
        }"""
    )
    assert status == 401
    assert challenge == 'StaffBasic realm="admin"'
    assert icon[0] == 200 and icon[1] in {"image/x-icon", "image/vnd.microsoft.icon"}, icon
