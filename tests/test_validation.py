"""Input validation the schema fuzzing (tests/test_schema_fuzz.py) made the API promise.

Each case was a bug schemathesis found: a server error (500/502) for bad
input, or input the documentation calls invalid being accepted (coerced or
ignored). Bad input now gets a clear error naming the field, and never
reaches the backend.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from django.contrib.auth import get_user_model

from tests.fake_ollama import FakeOllama

CHAT = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "hi"}]}


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    return response.json()["error"]


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"stream": 0}, "stream"),
        ({"stream": "true"}, "stream"),
        ({"max_tokens": "5"}, "max_tokens"),
        ({"temperature": True}, "temperature"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"messages": [{"role": 1, "content": "hi"}]}, "messages.0.role"),
        ({"model": " qwen2.5:14b"}, "model"),
        ({"model": "not a model!"}, "model"),
    ],
)
def test_native_chat_refuses_values_of_the_wrong_type_instead_of_coercing_them(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama, change: dict, param: str
) -> None:
    response = http.post("/v1/chat/completions", json={**CHAT, **change}, headers=auth_headers)

    error = _error(response, 422)
    assert error["code"] == "validation_error"
    assert error["param"] == param
    assert fake_ollama.requests_to("/api/chat") == []


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({**CHAT, "options": {"num_ctx": "big"}}, "num_ctx"),
        ({**CHAT, "options": {"stop": "END"}}, "stop"),
        ({**CHAT, "messages": [{"role": "assistant", "tool_calls": [None]}]}, "null"),
        ({**CHAT, "tools": [{"type": 5}]}, "Tool 0 is invalid"),
        ({**CHAT, "stream": 1}, "boolean"),
    ],
)
def test_ollama_chat_refuses_bad_input_with_400_before_the_backend(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama, body: dict, words: str
) -> None:
    # A wrong option type was a backend 500 (a 502 here); a null tool call or a
    # tool the ollama client refuses was a 502 too.
    response = http.post("/ollama/api/chat", json=body, headers=auth_headers)

    assert response.status_code == 400, response.text
    assert words in response.json()["error"]
    assert fake_ollama.requests_to("/api/chat") == []


@pytest.mark.parametrize(
    ("change", "param"),
    [
        # These two were 500s: `.get` on a string.
        ({"response_format": {"type": "json_schema", "json_schema": "x"}}, None),
        ({"tool_choice": {"type": "function", "function": "x"}}, "tool_choice"),
        # Checked whatever the other field says (they were ignored).
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {}}], "tool_choice": "none"}, "tools.0"),
        ({"tools": [{"function": {"name": "f", "description": 5}}]}, "description"),
        ({"tools": [{"function": {"name": "f", "parameters": {"required": "x"}}}]}, "tools.0"),
        (
            {"messages": [{"role": "user", "content": "hi", "tool_calls": [{"function": 1}]}]},
            "messages.0.tool_calls.0.function.name",
        ),
    ],
)
def test_openai_chat_refuses_malformed_tools_and_formats_with_400(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama, change: dict, param: str
) -> None:
    response = http.post(
        "/openai/v1/chat/completions", json={**CHAT, **change}, headers=auth_headers
    )

    error = _error(response, 400)
    assert error["type"] == "invalid_request_error"
    if param:
        assert param in (error["param"] or "")
    assert fake_ollama.requests_to("/api/chat") == []


@pytest.mark.parametrize("field", ["expires_days", "rate_limit", "tokens_per_minute"])
def test_key_creation_bounds_its_numbers(http: httpx.Client, field: str) -> None:
    # 10**12 days overflowed the datetime (500); rate limits past the column's range too.
    get_user_model().objects.create_user(username="ops", password="a-passphrase-9", is_staff=True)

    response = http.post(
        "/admin/api-keys", json={"name": "k", field: 10**12}, auth=("ops", "a-passphrase-9")
    )

    assert _error(response, 422)["param"] == field


def test_unknown_routes_of_the_openai_mirror_answer_in_the_envelope(
    http: httpx.Client, auth_headers: dict
) -> None:
    # They fell through to the Ollama surface's catch-all and its bare text error.
    for path in ("/ollama/v1/nothing", "/ollama/v1/models/bad%09id"):
        error = _error(http.get(path, headers=auth_headers), 404)
        assert error["code"] == "not_found"
    assert http.get("/ollama/nothing").json() == {"error": "404 page not found"}
