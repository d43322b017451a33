"""A valid value the backend cannot honour is a 400 naming it, refused by the
serializer field that documents it (`gateway.validation.refuse`), and only
when nothing else in the body is invalid: a 422 comes first."""

from __future__ import annotations

import httpx

from tests.fake_ollama import FakeOllama

CHAT = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "hi"}]}


def test_it_refuses_what_the_backend_cannot_do_with_a_400_naming_the_nested_param(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "what?"}, image]}]

    response = http.post(
        "/openai/v1/chat/completions", json={**CHAT, "messages": messages}, headers=auth_headers
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "messages.0.content.1.image_url.url"
    assert fake_ollama.requests_to("/api/chat") == []


def test_an_invalid_field_is_answered_before_a_refused_one(
    http: httpx.Client, auth_headers: dict
) -> None:
    body = {**CHAT, "n": 99, "temperature": 7}

    response = http.post("/openai/v1/chat/completions", json=body, headers=auth_headers)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["param"] == "temperature"
    assert [row["loc"] for row in error["details"]] == ["temperature"]


def test_modalities_asking_for_audio_are_refused_naming_audio(
    http: httpx.Client, auth_headers: dict
) -> None:
    body = {**CHAT, "modalities": ["text", "audio"]}

    response = http.post("/openai/v1/chat/completions", json=body, headers=auth_headers)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "audio"
