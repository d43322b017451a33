"""The chat page in a real headless browser (Debian's Chromium, driven by Playwright).

The page is served by the live gateway; its answers come from the fake Ollama
with a delay between tokens, so the test can watch the reply grow token by
token. Screenshots land in artifacts/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from tests.fake_ollama import FakeOllama

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000
REPLY = ["Python", " list", " comprehensions", " build", " lists", " in", " one", " line", "."]

# Records every text the reply bubble shows, so the test can check it grew
# piece by piece (a MutationObserver sees each DOM change; no polling).
WATCH_REPLY = """
() => {
  window.replySnapshots = [];
  const transcript = document.getElementById("transcript");
  new MutationObserver(() => {
    const replies = transcript.querySelectorAll(".message-assistant .message-content");
    const last = replies[replies.length - 1];
    if (!last) return;
    const text = last.textContent;
    const seen = window.replySnapshots;
    if (seen[seen.length - 1] !== text) seen.push(text);
  }).observe(transcript, { childList: true, subtree: true, characterData: true });
}
"""


@pytest.fixture
def browser_page(gateway: str) -> Iterator:  # type: ignore[type-arg]
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("/usr/bin/chromium is missing: `make test` installs Debian's chromium")
        pytest.skip("/usr/bin/chromium is missing (make test installs it)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=gateway, viewport={"width": 1100, "height": 800})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        console_errors: list[str] = []
        page.on("pageerror", lambda exc: console_errors.append(str(exc)))
        yield page
        context.close()
        browser.close()
    assert console_errors == [], console_errors


@pytest.fixture
def carol(transactional_db) -> None:  # type: ignore[no-untyped-def]
    get_user_model().objects.create_user(username="carol", password="a-long-passphrase-7")


# Database fixtures come before `browser_page`: Playwright's sync API runs an
# event loop in this thread, where Django refuses synchronous ORM calls.


def test_a_signed_in_user_sees_the_reply_stream_in_token_by_token(
    carol, fake_ollama: FakeOllama, browser_page
):  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page = browser_page
    fake_ollama.reply = REPLY
    fake_ollama.token_delay = 0.25

    page.goto("/")
    expect(page.locator("#connection-state")).to_contain_text("Not connected")
    page.click("#sign-in-link")
    page.fill("#id_username", "carol")
    page.screenshot(path=str(ARTIFACTS / "login-page.png"))
    page.fill("#id_password", "a-long-passphrase-7")
    page.click("#login-button")

    expect(page.locator("#signed-in-as")).to_contain_text("carol")
    expect(page.locator("#connection-state")).to_have_text("Connected")
    # The model picker lists the backend's chat models (from /chat/models):
    # not the embedding-only one.
    chat_models = [m for m in fake_ollama.models if "completion" in m.capabilities]
    expect(page.locator("#model-select option")).to_have_count(len(chat_models))
    page.select_option("#model-select", "llama3.2:latest")

    page.evaluate(WATCH_REPLY)
    page.fill("#message-input", "Tell me about list comprehensions")
    page.press("#message-input", "Enter")

    expect(page.locator(".message-user .message-content")).to_have_text(
        "Tell me about list comprehensions"
    )
    reply = page.locator(".message-assistant").last
    # Mid-answer: part of the reply is on screen, Cancel is live, Send is not.
    expect(reply).to_have_class("message message-assistant streaming")
    expect(reply.locator(".message-content")).to_contain_text("Python list")
    expect(page.locator("#cancel-button")).to_be_enabled()
    expect(page.locator("#send-button")).to_be_disabled()
    page.screenshot(path=str(ARTIFACTS / "chat-streaming.png"))

    expect(reply.locator(".message-content")).to_have_text("".join(REPLY))
    expect(reply).not_to_have_class("streaming")
    # 5 prompt words + 10 template tokens; one completion token per content line.
    expect(reply.locator(".message-meta")).to_have_text(
        "llama3.2:latest · 15 prompt + 9 completion tokens"
    )
    expect(page.locator("#send-button")).to_be_enabled()
    page.screenshot(path=str(ARTIFACTS / "chat-page.png"))

    snapshots = page.evaluate("window.replySnapshots")
    pieces = [piece for piece in snapshots if piece]
    # One screen state per token, each a longer prefix of the answer.
    assert pieces == ["".join(REPLY[: i + 1]) for i in range(len(REPLY))]
    sent = fake_ollama.requests_to("/api/chat")[-1].json
    assert sent["model"] == "llama3.2:latest"


def test_a_pasted_key_chats_and_cancel_stops_the_answer(
    api_key: str, fake_ollama: FakeOllama, browser_page
):  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page = browser_page
    fake_ollama.reply = [f" word{i}" for i in range(200)]
    fake_ollama.token_delay = 0.05

    page.goto("/")
    page.fill("#key-input", api_key)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#connection-state")).to_have_text("Connected")
    expect(page.locator("#key-status")).to_contain_text(api_key[:12])
    assert api_key not in page.content()

    page.fill("#message-input", "Count for me")
    page.click("#send-button")
    reply = page.locator(".message-assistant").last
    expect(reply.locator(".message-content")).to_contain_text("word3")
    page.click("#cancel-button")

    expect(reply).to_have_class("message message-assistant cancelled")
    expect(reply.locator(".message-meta")).to_contain_text("cancelled")
    record = fake_ollama.wait_for_stream_end(timeout=10)
    assert record.outcome == "client_disconnected"
    assert record.tokens_sent < 200
    page.screenshot(path=str(ARTIFACTS / "chat-cancelled.png"))

    # An error is shown plainly, and the page stays usable.
    fake_ollama.busy = True
    page.fill("#message-input", "the backend is busy")
    page.click("#send-button")
    expect(page.locator("#error-banner")).to_be_visible()
    expect(page.locator("#error-text")).to_contain_text("backend_busy")
    fake_ollama.busy = False

    page.click("#clear-button")
    expect(page.locator(".message")).to_have_count(0)
    expect(page.locator("#empty-state")).to_be_visible()


def test_the_answer_settings_reach_the_backend_and_a_value_out_of_range_is_said(
    api_key: str, fake_ollama: FakeOllama, browser_page
):  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page = browser_page
    fake_ollama.reply = [f" word{i}" for i in range(50)]

    page.goto("/")
    page.fill("#key-input", api_key)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#connection-state")).to_have_text("Connected")

    # Left empty: nothing is sent, and the backend uses its own defaults.
    page.fill("#message-input", "first")
    page.click("#send-button")
    reply = page.locator(".message-assistant").last
    expect(reply.locator(".message-meta")).to_contain_text("+ 50 completion tokens")
    first = fake_ollama.requests_to("/api/chat")[-1].json
    assert "num_predict" not in (first.get("options") or {})
    assert "temperature" not in (first.get("options") or {})

    # Set: the answer stops at 3 tokens, and both reach the backend.
    page.fill("#max-tokens-input", "3")
    page.fill("#temperature-input", "0")
    page.fill("#message-input", "second")
    page.click("#send-button")
    reply = page.locator(".message-assistant").last
    expect(reply.locator(".message-content")).to_have_text(" word0 word1 word2")
    expect(reply.locator(".message-meta")).to_contain_text("+ 3 completion tokens")
    options = fake_ollama.requests_to("/api/chat")[-1].json["options"]
    assert options["num_predict"] == 3
    assert options["temperature"] == 0

    # Out of the field's range: said on the page, nothing sent, the text kept.
    sent = len(fake_ollama.requests_to("/api/chat"))
    page.fill("#temperature-input", "5")
    page.fill("#message-input", "third")
    page.click("#send-button")
    expect(page.locator("#error-banner")).to_be_visible()
    expect(page.locator("#error-text")).to_contain_text("Temperature")
    expect(page.locator("#message-input")).to_have_value("third")
    expect(page.locator(".message-user")).to_have_count(2)
    assert len(fake_ollama.requests_to("/api/chat")) == sent

    # The settings survive a reload.
    page.fill("#temperature-input", "0.7")
    page.locator("#temperature-input").dispatch_event("change")
    page.reload()
    expect(page.locator("#max-tokens-input")).to_have_value("3")
    expect(page.locator("#temperature-input")).to_have_value("0.7")


def test_after_an_idle_close_the_next_message_reconnects_and_is_answered(
    api_key: str, fake_ollama: FakeOllama, settings, browser_page
):  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page = browser_page
    settings.WS_IDLE_TIMEOUT = 1.0
    fake_ollama.reply = ["Back", " again"]

    page.goto("/")
    page.fill("#key-input", api_key)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#connection-state")).to_have_text("Connected")
    # The server closes the idle connection (4408); the page says so and does not spin.
    expect(page.locator("#connection-state")).to_have_text("Idle — reconnects when you send")

    page.fill("#message-input", "are you there")
    page.click("#send-button")
    expect(page.locator("#connection-state")).to_have_text("Connected")
    expect(page.locator(".message-assistant .message-content")).to_have_text("Back again")
    expect(page.locator(".message-user .message-content")).to_have_text("are you there")


# The page's WebSocket client module itself, loaded into the real browser.
RUN_CLIENT = """
async ({ url, baseDelayMs, maxDelayMs, until }) => {
  const { ChatSocket } = await import("/static/realtime/chat_client.js");
  return await new Promise((resolve) => {
    const events = [];
    const socket = new ChatSocket({ url, baseDelayMs, maxDelayMs });
    socket.on("state", (event) => {
      events.push(event);
      if (until.includes(event.state)) resolve(events);
    });
    socket.connect();
  });
}
"""


def test_the_client_backs_off_exponentially_with_a_cap_and_gives_up_after_5_tries(
    fake_ollama: FakeOllama, browser_page
):  # type: ignore[no-untyped-def]
    from tests.fake_ollama import free_port

    page = browser_page
    page.goto("/")
    nothing_listens = f"ws://127.0.0.1:{free_port()}/ws/chat/x"
    events = page.evaluate(
        RUN_CLIENT,
        {"url": nothing_listens, "baseDelayMs": 10, "maxDelayMs": 50, "until": ["failed"]},
    )
    retries = [(e["attempt"], e["delayMs"]) for e in events if e["state"] == "reconnecting"]
    # min(base * 2^attempt, cap): 20, 40, then capped at 50.
    assert retries == [(1, 20), (2, 40), (3, 50), (4, 50), (5, 50)]
    assert events[-1]["state"] == "failed"
    assert [e["state"] for e in events].count("connecting") == 6


def test_the_client_does_not_retry_a_4401(fake_ollama: FakeOllama, browser_page):  # type: ignore[no-untyped-def]
    page = browser_page
    page.goto("/")
    url = page.url.replace("http://", "ws://").rstrip("/") + "/ws/chat/x"
    events = page.evaluate(
        RUN_CLIENT,
        {"url": url, "baseDelayMs": 10, "maxDelayMs": 50, "until": ["closed", "reconnecting"]},
    )
    assert [e["state"] for e in events] == ["connecting", "open", "closed"]
    assert events[-1]["code"] == 4401
