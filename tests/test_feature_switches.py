"""The feature switches the benchmark suite flips (GATEWAY_*_ENABLED), all on by default."""

from __future__ import annotations

import httpx
from django.core.checks import run_checks

from keys.models import UsageRecord
from keys.policy import usage_flush
from keys.services import api_key_create
from tests.fake_ollama import FakeOllama

CHAT = "/v1/chat/completions"
HELLO = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "Hi"}]}


def test_by_default_a_request_without_a_key_is_401(http: httpx.Client) -> None:
    response = http.post(CHAT, json=HELLO)

    assert response.status_code == 401


def test_with_auth_off_anyone_may_chat_and_list_every_model(
    http: httpx.Client, fake_ollama: FakeOllama, settings
) -> None:
    settings.GATEWAY_AUTH_ENABLED = False

    chat = http.post(CHAT, json=HELLO)
    models = http.get("/v1/models")

    assert chat.status_code == 200
    assert chat.json()["message"]["content"]
    assert models.status_code == 200
    assert len(models.json()) == len(fake_ollama.models)
    usage_flush()
    assert UsageRecord.objects.count() == 0


def test_with_rate_limits_off_a_spent_key_keeps_being_served_without_limit_headers(
    http: httpx.Client, fake_ollama: FakeOllama, settings
) -> None:
    _, raw_key = api_key_create(name="one a minute", rate_limit=1)
    headers = {"Authorization": f"Bearer {raw_key}"}
    assert http.post(CHAT, json=HELLO, headers=headers).status_code == 200
    assert http.post(CHAT, json=HELLO, headers=headers).status_code == 429

    settings.GATEWAY_RATE_LIMITS_ENABLED = False
    answers = [http.post(CHAT, json=HELLO, headers=headers) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert "x-ratelimit-limit-requests" not in answers[-1].headers


def test_with_usage_off_no_record_is_written_and_limits_still_count(
    http: httpx.Client, fake_ollama: FakeOllama, settings
) -> None:
    api_key, raw_key = api_key_create(name="unrecorded", rate_limit=2)
    headers = {"Authorization": f"Bearer {raw_key}"}
    settings.GATEWAY_USAGE_ENABLED = False

    answers = [http.post(CHAT, json=HELLO, headers=headers) for _ in range(3)]
    usage_flush()

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert answers[0].headers["x-ratelimit-remaining-requests"] == "1"
    assert UsageRecord.objects.filter(api_key=api_key).count() == 0
    api_key.refresh_from_db()
    assert api_key.usage_count == 0


def test_with_usage_on_the_same_requests_are_recorded(
    http: httpx.Client, fake_ollama: FakeOllama
) -> None:
    api_key, raw_key = api_key_create(name="recorded", rate_limit=100)
    headers = {"Authorization": f"Bearer {raw_key}"}

    for _ in range(3):
        assert http.post(CHAT, json=HELLO, headers=headers).status_code == 200
    usage_flush()

    assert UsageRecord.objects.filter(api_key=api_key).count() == 3


def test_the_system_check_warns_when_auth_is_off_without_debug(settings) -> None:
    settings.DEBUG = False
    assert "keys.W001" not in {message.id for message in run_checks()}

    settings.GATEWAY_AUTH_ENABLED = False
    warnings = [message for message in run_checks() if message.id == "keys.W001"]

    assert len(warnings) == 1
    assert "without a key" in warnings[0].msg
    settings.DEBUG = True
    assert "keys.W001" not in {message.id for message in run_checks()}
