"""Deeply nested JSON is refused in each surface's own error shape, never a 500.

Python's JSON decoder recurses once per nesting level: 100,000 levels raised
RecursionError inside the parser, a 500 and a logged traceback on every
surface. The gateway refuses bodies nested deeper than MAX_JSON_DEPTH.
"""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from django.contrib.auth import get_user_model

from tests.fake_ollama import FakeOllama
from tests.test_ws_e2e import receive, ws_connect, ws_url

DEEP = '{"model": "qwen2.5:14b", "messages": ' + "[" * 100_000 + "]" * 100_000 + "}"
# Each POST surface that reads a JSON body: (path, the error shape it answers in).
SURFACES = [
    ("/v1/chat/completions", "envelope"),
    ("/v1/embeddings", "envelope"),
    ("/openai/v1/chat/completions", "envelope"),
    ("/openai/v1/completions", "envelope"),
    ("/openai/v1/embeddings", "envelope"),
    ("/ollama/v1/chat/completions", "envelope"),
    ("/ollama/api/chat", "ollama"),
    ("/ollama/api/generate", "ollama"),
    ("/ollama/api/embed", "ollama"),
    ("/ollama/api/embeddings", "ollama"),
    ("/ollama/api/show", "ollama"),
]


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not logged, [r.getMessage() for r in logged]
    assert "RecursionError" not in caplog.text


def test_it_refuses_a_deeply_nested_body_on_every_http_surface_in_its_own_shape(
    gateway: str, fake_ollama: FakeOllama, auth_headers: dict, caplog
) -> None:
    caplog.set_level(logging.INFO)
    headers = {**auth_headers, "Content-Type": "application/json"}
    with httpx.Client(base_url=gateway, headers=headers, timeout=30) as client:
        answers = {path: client.post(path, content=DEEP) for path, _ in SURFACES}

    for path, shape in SURFACES:
        response = answers[path]
        assert response.status_code == 400, (path, response.status_code, response.text[:300])
        error = response.json()["error"]
        if shape == "ollama":
            assert isinstance(error, str) and "nested" in error, (path, error)
        else:
            assert error["type"] == "invalid_request_error", (path, error)
            assert "nested" in error["message"], (path, error)
    assert fake_ollama.requests == []
    _no_traceback(caplog)


def test_it_refuses_a_deeply_nested_body_on_the_key_management_api(
    gateway: str, caplog, transactional_db
) -> None:
    get_user_model().objects.create_user(username="ops", password="ops-pass-1", is_staff=True)
    with httpx.Client(base_url=gateway, auth=("ops", "ops-pass-1"), timeout=30) as client:
        response = client.post(
            "/admin/api-keys", content=DEEP, headers={"Content-Type": "application/json"}
        )

    assert response.status_code == 400, response.text[:300]
    assert "nested" in response.json()["error"]["message"]
    _no_traceback(caplog)


def test_a_moderately_nested_body_is_still_accepted(
    gateway: str, fake_ollama: FakeOllama, auth_headers: dict
) -> None:
    schema: dict = {"type": "string"}
    for _ in range(20):
        schema = {"type": "object", "properties": {"x": schema}}
    body = {
        "model": "qwen2.5:14b",
        "messages": [{"role": "user", "content": "Hi"}],
        "format": schema,
    }
    with httpx.Client(base_url=gateway, headers=auth_headers, timeout=30) as client:
        response = client.post("/ollama/api/chat", json={**body, "stream": False})

    assert response.status_code == 200, response.text


@pytest.mark.asyncio
async def test_the_websocket_answers_a_deeply_nested_frame_with_a_400_error_frame(
    gateway: str, fake_ollama: FakeOllama, api_key: str, settings, caplog
) -> None:
    settings.WS_MAX_MESSAGE_BYTES = 1 << 20
    frame = '{"type": "chat", "message": "Hi", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    async with ws_connect(
        ws_url(gateway),
        additional_headers={"Authorization": f"Bearer {api_key}"},
        max_size=1 << 22,
    ) as ws:
        await ws.send(frame)
        answer = await receive(ws)
        await ws.send(json.dumps({"type": "ping"}))
        still_open = await receive(ws)

    assert answer["type"] == "error"
    assert answer["code"] == "bad_request"
    assert answer["status"] == 400, answer
    assert "nested" in answer["message"]
    assert still_open["type"] == "pong"
    _no_traceback(caplog)


# --- NUL characters: one rule for every JSON body -------------------------------------

CHAT = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "a\u0000b"}]}
PARTS = [{"type": "text", "text": "a\u0000b"}]
EMBED = {"model": "mxbai-embed-large", "input": "a\u0000b"}
NUL_BODIES = [
    ("/v1/chat/completions", CHAT),
    ("/v1/embeddings", {**EMBED, "input": ["a\u0000b"]}),
    ("/openai/v1/chat/completions", CHAT),
    ("/openai/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": PARTS}]}),
    ("/openai/v1/embeddings", EMBED),
    ("/openai/v1/embeddings", {**EMBED, "input": ["ok", "a\u0000b"]}),
    ("/ollama/api/embed", EMBED),
    ("/ollama/api/embed", {**EMBED, "input": ["a\u0000b"]}),
    ("/ollama/api/chat", CHAT),
]


def test_a_nul_character_in_any_string_is_refused_on_every_surface_before_the_backend(
    gateway: str, fake_ollama: FakeOllama, auth_headers: dict
) -> None:
    with httpx.Client(base_url=gateway, headers=auth_headers, timeout=30) as client:
        answers = [(path, client.post(path, json=body)) for path, body in NUL_BODIES]

    for path, response in answers:
        assert response.status_code == 400, (path, response.status_code, response.text[:300])
        error = response.json()["error"]
        message = error if path.startswith("/ollama/api/") else error["message"]
        assert "NUL" in message, (path, error)
    assert fake_ollama.requests == []
