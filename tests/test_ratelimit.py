"""Rate limits per key and endpoint group, end to end, and their headers.

The store here is the default one (process memory); tests/test_scaleout.py
runs the same limits through Redis across two server processes.
"""

from __future__ import annotations

import time

import httpx
import pytest

from gateway.errors import RateLimitedError
from keys.policy import Caller, request_count
from keys.ratelimit import RateLimitStatus
from keys.services import api_key_create
from tests.fake_ollama import FakeOllama

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"
HELLO = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "Hi"}]}
LIMIT_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
)


def bearer(raw_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw_key}"}


def burst(
    http: httpx.Client, fake: FakeOllama, n: int, **create: object
) -> tuple[list[httpx.Response], int]:
    """`n` chat requests in a row with a fresh key; the answers, and how many reached Ollama.

    The in-memory store's windows are aligned to the clock minute, and a
    sliding-window counter weighs the previous window in: a burst that
    crosses a minute boundary may legitimately get one request more. Such a
    burst (under 1 % of runs) is repeated once with a new key, in a window
    it starts fresh; only the repeat's backend requests are counted.
    """
    for _ in range(2):
        _, raw_key = api_key_create(name="burst", **create)  # type: ignore[arg-type]
        before = len(fake.requests_to("/api/chat"))
        started = time.time()
        answers = [http.post(CHAT, headers=bearer(raw_key), json=HELLO) for _ in range(n)]
        if int(started // 60) == int(time.time() // 60):
            break
    return answers, len(fake.requests_to("/api/chat")) - before


def test_70_chat_requests_in_a_row_give_exactly_60_successes_and_10_429s(
    http: httpx.Client, fake_ollama: FakeOllama
) -> None:
    answers, reached_ollama = burst(http, fake_ollama, 70)

    statuses = [answer.status_code for answer in answers]
    assert statuses == [200] * 60 + [429] * 10
    for limited in answers[60:]:
        assert int(limited.headers["Retry-After"]) >= 1
        error = limited.json()["error"]
        assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert [int(a.headers["x-ratelimit-remaining-requests"]) for a in answers[:60]] == list(
        range(59, -1, -1)
    )
    assert {a.headers["x-ratelimit-limit-requests"] for a in answers} == {"60"}
    assert reached_ollama == 60


def test_a_keys_own_limit_overrides_the_default(
    http: httpx.Client, fake_ollama: FakeOllama
) -> None:
    answers, reached_ollama = burst(http, fake_ollama, 6, rate_limit=4)

    assert [answer.status_code for answer in answers] == [200] * 4 + [429] * 2
    assert answers[0].headers["x-ratelimit-limit-requests"] == "4"
    assert reached_ollama == 4


def test_limits_are_counted_per_endpoint_group(http: httpx.Client, fake_ollama: FakeOllama) -> None:
    _, raw_key = api_key_create(name="groups", rate_limit=2)

    chats = [http.post(CHAT, headers=bearer(raw_key), json=HELLO) for _ in range(3)]
    embeds = [http.post(EMBED, headers=bearer(raw_key), json={"input": "x"}) for _ in range(2)]

    assert [c.status_code for c in chats] == [200, 200, 429]
    assert [e.status_code for e in embeds] == [200, 200]


@pytest.mark.django_db
@pytest.mark.parametrize(("group", "limit"), [("chat", 60), ("embeddings", 120), ("models", 100)])
def test_the_default_limits_per_group(group: str, limit: int) -> None:
    api_key, _ = api_key_create(name="defaults")

    statuses = [request_count(caller=Caller(api_key=api_key), group=group) for _ in range(limit)]
    with pytest.raises(RateLimitedError) as caught:
        request_count(caller=Caller(api_key=api_key), group=group)

    assert statuses[0] == RateLimitStatus(
        limit=limit, remaining=limit - 1, reset_seconds=statuses[0].reset_seconds
    )
    assert statuses[-1].remaining == 0
    assert caught.value.retry_after >= 1
    assert caught.value.headers["x-ratelimit-remaining-requests"] == "0"


def test_every_api_response_carries_the_remaining_budget(
    http: httpx.Client, fake_ollama: FakeOllama, auth_headers: dict
) -> None:
    _, chat_only = api_key_create(name="chat only", allowed_endpoints=["chat"])
    answers = {
        "ok": http.get("/v1/models", headers=auth_headers),
        "validation": http.post(CHAT, headers=auth_headers, json={"messages": []}),
        "not found": http.get("/v1/models/no-such:1b", headers=auth_headers),
        "forbidden": http.get("/v1/models", headers=bearer(chat_only)),
        "unauthenticated": http.get("/v1/models"),
        "malformed json": http.post(
            CHAT, headers={**auth_headers, "Content-Type": "application/json"}, content=b"{"
        ),
    }
    with http.stream("POST", CHAT, headers=auth_headers, json={**HELLO, "stream": True}) as stream:
        stream.read()
        answers["stream"] = stream
    fake_ollama.busy = True
    answers["backend busy"] = http.post(CHAT, headers=auth_headers, json=HELLO)

    for name, answer in answers.items():
        for header in LIMIT_HEADERS:
            assert header in answer.headers, (name, answer.status_code, dict(answer.headers))
        assert answer.headers["x-ratelimit-reset-requests"].endswith("s")
    assert answers["validation"].status_code == 422
    assert answers["forbidden"].status_code == 403
    assert answers["backend busy"].status_code == 503


def test_a_tokens_per_minute_budget_is_charged_with_the_backends_counts(
    http: httpx.Client, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["one", " two", " three"]
    _, raw_key = api_key_create(name="tokens", tokens_per_minute=25)

    first = http.post(CHAT, headers=bearer(raw_key), json=HELLO)
    used = first.json()["usage"]["total_tokens"]
    second = http.post(CHAT, headers=bearer(raw_key), json=HELLO)
    third = http.post(CHAT, headers=bearer(raw_key), json=HELLO)

    assert first.status_code == 200 and second.status_code == 200
    assert used < 25 <= 2 * used  # two answers spend the budget, whatever the template adds
    assert first.headers["x-ratelimit-limit-tokens"] == "25"
    assert int(second.headers["x-ratelimit-remaining-tokens"]) == 25 - used
    assert third.status_code == 429, third.text
    assert "Token rate limit" in third.json()["error"]["message"]
    assert int(third.headers["Retry-After"]) >= 1
    assert third.headers["x-ratelimit-remaining-tokens"] == "0"
    assert len(fake_ollama.requests_to("/api/chat")) == 2


@pytest.mark.django_db
def test_an_unreachable_redis_lets_requests_through_and_says_so(settings, caplog) -> None:
    from tests.fake_ollama import free_port

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    api_key, _ = api_key_create(name="no store")

    status = request_count(caller=Caller(api_key=api_key), group="chat")

    assert status.remaining == status.limit == 60
    assert "Rate-limit store unavailable" in caplog.text


@pytest.mark.scaleout
def test_a_fresh_window_in_redis_does_not_report_a_reset_of_0s(scaleout_stores, settings) -> None:
    import uuid

    from keys.ratelimit import requests_hit

    settings.REDIS_URL = scaleout_stores.redis_url
    resets = [
        requests_hit(identity=("test-fresh", uuid.uuid4().hex), limit=60)[1].headers()[
            "x-ratelimit-reset-requests"
        ]
        for _ in range(20)
    ]

    assert "0s" not in resets, resets
    assert all(1 <= int(reset.removesuffix("s")) <= 60 for reset in resets), resets
