"""API-key authentication end to end: live gateway, real socket, fake Ollama.

Every REST endpoint needs a key; missing, unknown, revoked and expired keys get
the 401 envelope with `WWW-Authenticate`; allow-lists give 403; docs, probes
and the admin login stay open.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from keys.models import ApiKey
from keys.services import api_key_create, api_key_revoke
from tests.fake_ollama import FakeOllama

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"
HELLO = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "Hi"}]}


def bearer(raw_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw_key}"}


def assert_401(response: httpx.Response) -> dict:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")
    assert "timestamp" in error
    return error


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/models", None),
        ("GET", "/v1/models/qwen2.5:14b", None),
        ("POST", CHAT, HELLO),
        ("POST", EMBED, {"input": "x"}),
    ],
)
def test_every_endpoint_refuses_a_request_without_a_key(
    http: httpx.Client, fake_ollama: FakeOllama, method: str, path: str, body: dict | None
) -> None:
    response = http.request(method, path, json=body)

    error = assert_401(response)
    assert "Authorization: Bearer" in error["message"]
    assert fake_ollama.requests == []


@pytest.mark.parametrize(
    "header",
    [
        "Bearer lai_nope",
        "Bearer lai_AAAAAAAA_" + "B" * 44,  # well-formed, bad checksum
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "lai_AAAAAAAA_" + "B" * 44,
    ],
)
def test_it_refuses_unknown_and_malformed_keys(http: httpx.Client, header: str) -> None:
    assert_401(http.get("/v1/models", headers={"Authorization": header}))


def test_a_key_works_right_after_creation_and_stops_on_the_next_request_after_revocation(
    http: httpx.Client, fake_ollama: FakeOllama
) -> None:
    api_key, raw_key = api_key_create(name="fresh")

    first = http.post(CHAT, headers=bearer(raw_key), json=HELLO)
    api_key_revoke(api_key=api_key)
    second = http.post(CHAT, headers=bearer(raw_key), json=HELLO)

    assert first.status_code == 200, first.text
    assert "revoked" in assert_401(second)["message"]
    assert len(fake_ollama.requests_to("/api/chat")) == 1


def test_a_key_stops_on_the_next_request_after_it_expires(
    http: httpx.Client, fake_ollama: FakeOllama
) -> None:
    api_key, raw_key = api_key_create(name="short", expires_at=timezone.now() + timedelta(hours=1))

    first = http.get("/v1/models", headers=bearer(raw_key))
    # Expiry is a moment in time; move it into the past as the clock would.
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    second = http.get("/v1/models", headers=bearer(raw_key))

    assert first.status_code == 200
    assert "expired" in assert_401(second)["message"]


def test_a_key_limited_to_chat_gets_403_elsewhere(
    http: httpx.Client, fake_ollama: FakeOllama
) -> None:
    _, raw_key = api_key_create(name="chat only", allowed_endpoints=["chat"])

    chat = http.post(CHAT, headers=bearer(raw_key), json=HELLO)
    embed = http.post(EMBED, headers=bearer(raw_key), json={"input": "x"})
    models = http.get("/v1/models", headers=bearer(raw_key))

    assert chat.status_code == 200
    for refused in (embed, models):
        assert refused.status_code == 403, refused.text
        error = refused.json()["error"]
        assert (error["type"], error["code"]) == ("permission_error", "endpoint_not_allowed")
    assert fake_ollama.requests_to("/api/embed") == []


def test_a_key_limited_to_some_models_gets_403_for_others_and_sees_only_its_models(
    http: httpx.Client, fake_ollama: FakeOllama
) -> None:
    _, raw_key = api_key_create(name="qwen only", allowed_models=["qwen2.5:14b"])

    allowed = http.post(CHAT, headers=bearer(raw_key), json=HELLO)
    other = http.post(
        CHAT,
        headers=bearer(raw_key),
        json={"model": "llama3.2", "messages": [{"role": "user", "content": "Hi"}]},
    )
    detail = http.get("/v1/models/llama3.2", headers=bearer(raw_key))
    listing = http.get("/v1/models", headers=bearer(raw_key))

    assert allowed.status_code == 200
    for refused in (other, detail):
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "model_not_allowed"
        assert refused.json()["error"]["param"] == "model"
    assert [model["id"] for model in listing.json()] == ["qwen2.5:14b"]
    assert len(fake_ollama.requests_to("/api/chat")) == 1


def test_probes_docs_and_the_admin_login_stay_open(http: httpx.Client) -> None:
    for path in ("/healthz", "/admin/login/", "/openapi.json", "/docs", "/redoc"):
        assert http.get(path).status_code == 200, path


def test_failed_authentication_is_rate_limited_per_client_address(
    http: httpx.Client, settings
) -> None:
    settings.RATE_LIMIT_UNAUTHENTICATED = 5

    answers = [http.get("/v1/models", headers=bearer("lai_guess")) for _ in range(7)]

    assert [answer.status_code for answer in answers] == [401] * 5 + [429] * 2
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert answers[-1].json()["error"]["code"] == "rate_limit_exceeded"
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers[:5]] == [
        "4",
        "3",
        "2",
        "1",
        "0",
    ]


def test_past_the_address_limit_guesses_get_429_but_a_revoked_key_keeps_its_401(
    http: httpx.Client, settings
) -> None:
    # A revoked key's holder proved it has the real key: "revoked" tells it to
    # stop, where a 429 would have its SDK retry a key that never works again.
    settings.RATE_LIMIT_UNAUTHENTICATED = 3
    revoked, raw_revoked = api_key_create(name="revoked")
    api_key_revoke(api_key=revoked)
    guesses = [http.get("/v1/models", headers=bearer("lai_guess")) for _ in range(3)]

    unknown = http.get("/v1/models", headers=bearer("lai_guess"))
    answer = http.get("/v1/models", headers=bearer(raw_revoked))

    assert [guess.status_code for guess in guesses] == [401] * 3
    assert unknown.status_code == 429
    assert answer.status_code == 401
    assert "revoked" in answer.json()["error"]["message"]
    assert answer.headers["x-ratelimit-remaining-requests"] == "0"
