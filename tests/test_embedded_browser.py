"""The chat page out of the box: no Ollama anywhere, SmolLM2 answers in a real browser."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model

from tests.conftest import EngineModels, ServerThread
from tests.test_browser_chat import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, WATCH_REPLY

pytestmark = [pytest.mark.engine, pytest.mark.browser]

TIMEOUT_MS = 60_000


@pytest.fixture
def dana(transactional_db) -> None:  # type: ignore[no-untyped-def]
    get_user_model().objects.create_user(username="dana", password="a-long-passphrase-8")


@pytest.fixture
def page_without_ollama(dana, engine: EngineModels, dead_ollama: str) -> Iterator:  # type: ignore[no-untyped-def,type-arg]
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("/usr/bin/chromium is missing: `make test` installs Debian's chromium")
        pytest.skip("/usr/bin/chromium is missing (make test installs it)")
    from playwright.sync_api import sync_playwright

    server = ServerThread()
    server.start()
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            context = browser.new_context(
                base_url=server.url, viewport={"width": 1100, "height": 800}
            )
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page
            context.close()
            browser.close()
        assert errors == [], errors
    finally:
        server.stop()


def test_a_question_typed_into_the_page_gets_a_streamed_answer_from_smollm2(
    page_without_ollama,
) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page = page_without_ollama
    page.goto("/")
    page.click("#sign-in-link")
    page.fill("#id_username", "dana")
    page.fill("#id_password", "a-long-passphrase-8")
    page.click("#login-button")
    expect(page.locator("#connection-state")).to_have_text("Connected")
    # The only chat model there is, picked by default.
    expect(page.locator("#model-select option")).to_have_count(1)
    expect(page.locator("#model-select")).to_have_value("smollm2:135m")

    page.evaluate(WATCH_REPLY)
    page.fill("#message-input", "What is the capital of France?")
    page.press("#message-input", "Enter")

    reply = page.locator(".message-assistant").last
    # The page sends no temperature, so the answer is sampled and its length
    # varies; on one thread of a busy machine a long one takes minutes. What
    # matters is that real tokens stream in: once several pieces have
    # arrived, Cancel ends the answer if it has not ended by itself.
    page.wait_for_function("window.replySnapshots.filter(Boolean).length >= 3", timeout=90_000)
    page.click("#cancel-button", force=True)  # disabled (a no-op) if the answer has ended
    meta = reply.locator(".message-meta")
    expect(meta).to_contain_text(re.compile("completion tokens|cancelled"), timeout=30_000)
    expect(meta).to_contain_text("smollm2:135m")
    expect(reply).not_to_have_class("streaming")
    text = reply.locator(".message-content").text_content() or ""
    pieces = [piece for piece in page.evaluate("window.replySnapshots") if piece]
    page.screenshot(path=str(ARTIFACTS / "chat-embedded.png"))
    assert text.strip()
    assert len(pieces) > 1  # grew token by token, not in one piece
    assert pieces[-1] == text
