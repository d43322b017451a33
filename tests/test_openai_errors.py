"""Errors on `/openai/v1/` as the official `openai` SDK sees them.

Every status maps to the SDK's exception class and carries the envelope's
`message`, `type`, `code` and `param`; streams fail the way the SDK
understands; a closed client stream closes the backend request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from keys.services import api_key_create, api_key_revoke
from tests.fake_ollama import FakeOllama

USER = [{"role": "user", "content": "Say hello"}]


def sdk(gateway: str, key: str, **kwargs) -> openai.OpenAI:
    kwargs.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=f"{gateway}/openai/v1", api_key=key, **kwargs)


@pytest.fixture
def client(gateway: str, api_key: str) -> Iterator[openai.OpenAI]:
    with sdk(gateway, api_key) as c:
        yield c


# --- 401 / 403 ---------------------------------------------------------------------


def test_a_request_without_a_valid_key_is_the_sdks_authentication_error(
    gateway: str, fake_ollama: FakeOllama
) -> None:
    with sdk(gateway, "not-a-key") as client, pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="qwen2.5:14b", messages=USER)

    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert caught.value.response.headers["www-authenticate"].startswith("Bearer")
    assert fake_ollama.requests_to("/api/chat") == []


@pytest.mark.parametrize("call", ["models", "chat", "embeddings", "completions"])
def test_every_openai_route_refuses_a_request_without_a_key(
    http: httpx.Client, fake_ollama: FakeOllama, call: str
) -> None:
    path, body = {
        "models": ("/openai/v1/models", None),
        "chat": ("/openai/v1/chat/completions", {"model": "qwen2.5:14b", "messages": USER}),
        "embeddings": ("/openai/v1/embeddings", {"model": "mxbai-embed-large", "input": "x"}),
        "completions": ("/openai/v1/completions", {"model": "qwen2.5:14b", "prompt": "x"}),
    }[call]

    response = http.post(path, json=body) if body else http.get(path)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert fake_ollama.requests == []


def test_a_revoked_key_is_refused_from_the_next_request_on(gateway: str, db) -> None:
    key, raw = api_key_create(name="soon revoked")
    with sdk(gateway, raw) as client:
        assert client.models.list().data
        api_key_revoke(api_key=key)
        with pytest.raises(openai.AuthenticationError):
            client.models.list()


def test_a_model_outside_the_keys_allow_list_is_the_sdks_permission_error(
    gateway: str, fake_ollama: FakeOllama, db
) -> None:
    _, raw = api_key_create(name="llama only", allowed_models=["llama3.2"])

    with sdk(gateway, raw) as client:
        assert client.chat.completions.create(model="llama3.2:latest", messages=USER).choices
        with pytest.raises(openai.PermissionDeniedError) as caught:
            client.chat.completions.create(model="qwen2.5:14b", messages=USER)
        with pytest.raises(openai.PermissionDeniedError):
            client.embeddings.create(model="mxbai-embed-large", input="x")

    assert caught.value.code == "model_not_allowed"
    assert caught.value.param == "model"
    assert [r.json["model"] for r in fake_ollama.requests_to("/api/chat")] == ["llama3.2:latest"]


def test_an_endpoint_outside_the_keys_allow_list_is_the_sdks_permission_error(
    gateway: str, db
) -> None:
    _, raw = api_key_create(name="embeddings only", allowed_endpoints=["embeddings"])

    with sdk(gateway, raw) as client, pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="qwen2.5:14b", messages=USER)

    assert caught.value.code == "endpoint_not_allowed"


# --- 404 / 422 / 400 ------------------------------------------------------------------


def test_an_unknown_model_in_a_chat_is_not_found_and_names_the_model(
    client: openai.OpenAI,
) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=USER)

    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"
    assert "no-such-model" in caught.value.message


def test_an_unknown_model_in_a_stream_is_a_404_before_any_event(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=USER, stream=True)


def test_invalid_fields_are_unprocessable_and_name_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.chat.completions.create(model="qwen2.5:14b", messages=[])
    assert caught.value.param == "messages"
    assert caught.value.code == "validation_error"

    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.chat.completions.create(model="qwen2.5:14b", messages=USER, temperature=3.5)
    assert caught.value.param == "temperature"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 5}, "n"),  # over GATEWAY_MAX_CHOICES (4)
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"top_logprobs": 2}, "top_logprobs"),  # without logprobs: true
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        (
            {
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "real", "parameters": {"type": "object"}},
                    }
                ],
            },
            "tool_choice",
        ),
    ],
)
def test_what_the_backend_cannot_honour_is_a_400_naming_the_parameter(
    client: openai.OpenAI, fake_ollama: FakeOllama, extra: dict, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="qwen2.5:14b", messages=USER, **extra)

    assert caught.value.param == param
    assert caught.value.type == "invalid_request_error"
    assert fake_ollama.requests_to("/api/chat") == []


def test_an_image_by_http_url_is_refused_with_a_hint(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="llama3.2",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}],
                }
            ],
        )

    assert caught.value.param == "messages.0.content.0.image_url.url"
    assert "base64" in caught.value.message


def test_invalid_tool_call_arguments_in_the_history_are_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="qwen2.5:14b",
            messages=[
                *USER,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{not json"},
                        }
                    ],
                },
            ],
        )

    assert caught.value.param == "messages.1.tool_calls.0.function.arguments"


def test_token_array_embedding_input_is_refused_naming_input(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="mxbai-embed-large", input=[101, 2023, 102])

    assert caught.value.param == "input"


def test_malformed_json_is_a_400_in_the_envelope(http: httpx.Client, auth_headers: dict) -> None:
    response = http.post(
        "/openai/v1/chat/completions",
        headers={**auth_headers, "Content-Type": "application/json"},
        content=b'{"model": ',
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert set(error) >= {"message", "type", "code", "param"}


# --- 429 / 503 ---------------------------------------------------------------------------


def test_over_the_rate_limit_is_the_sdks_rate_limit_error_with_retry_after(
    gateway: str, fake_ollama: FakeOllama, db
) -> None:
    _, raw = api_key_create(name="one a minute", rate_limit=1)

    with sdk(gateway, raw) as client:
        client.chat.completions.create(model="qwen2.5:14b", messages=USER)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="qwen2.5:14b", messages=USER)

    headers = caught.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-limit-requests"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert caught.value.code == "rate_limit_exceeded"
    assert len(fake_ollama.requests_to("/api/chat")) == 1


def test_a_busy_backend_is_a_503_with_retry_after(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.busy = True

    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="qwen2.5:14b", messages=USER)

    assert caught.value.status_code == 503
    assert caught.value.code == "backend_busy"
    assert int(caught.value.response.headers["retry-after"]) >= 1


def test_an_unreachable_backend_is_a_503_that_says_where_it_looked(
    gateway: str, api_key: str, dead_ollama: str
) -> None:
    with sdk(gateway, api_key) as client, pytest.raises(openai.InternalServerError) as caught:
        client.models.list()

    assert caught.value.status_code == 503
    assert caught.value.code == "backend_unavailable"
    assert dead_ollama in caught.value.message


def test_the_sdk_waits_retry_after_before_retrying_a_busy_backend(
    gateway: str, api_key: str, fake_ollama: FakeOllama, settings
) -> None:
    settings.OLLAMA_BUSY_RETRY_AFTER = 1
    # One slot, no queue: while another request holds the slot, Ollama says 503.
    fake_ollama.max_concurrent, fake_ollama.max_queue = 1, 0
    fake_ollama.reply = [f"w{i} " for i in range(400)]
    fake_ollama.token_delay = 0.02
    holder_body = {"model": "qwen2.5:14b", "messages": USER, "stream": True}
    with (
        httpx.Client(timeout=10) as raw,
        raw.stream("POST", f"{fake_ollama.url}/api/chat", json=holder_body) as held,
    ):
        lines = held.iter_lines()  # kept: a dropped iterator would close the stream
        next(lines)  # the slot is taken
        fake_ollama.reply = ["ok"]

        def release_after_the_first_refusal() -> None:
            fake_ollama.wait_for_requests(2, path="/api/chat", timeout=10)
            held.close()

        releaser = threading.Thread(target=release_after_the_first_refusal)
        releaser.start()
        with sdk(gateway, api_key, max_retries=1) as client:
            completion = client.chat.completions.create(model="qwen2.5:14b", messages=USER)
        releaser.join()

    attempts = fake_ollama.requests_to("/api/chat")[1:]
    assert len(attempts) == 2
    # The SDK's own backoff is at most 0.5 s; it waited the gateway's Retry-After.
    assert attempts[1].received_at - attempts[0].received_at >= 0.95
    assert completion.choices[0].message.content == "ok"


# --- streams ------------------------------------------------------------------------------


def test_a_backend_failure_mid_stream_raises_the_sdks_api_error(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["a", "b", "c", "d"]
    fake_ollama.error_after_tokens = 2
    received = []

    stream = client.chat.completions.create(model="qwen2.5:14b", messages=USER, stream=True)
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)

    assert received == ["a", "b"]
    assert "an error was encountered while running the model" in caught.value.message


def test_the_sse_body_of_a_failed_stream_has_an_error_event_and_no_done(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["a", "b", "c"]
    fake_ollama.error_after_tokens = 1

    response = http.post(
        "/openai/v1/chat/completions",
        headers=auth_headers,
        json={"model": "qwen2.5:14b", "messages": USER, "stream": True},
    )

    assert response.status_code == 200
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1].startswith('data: {"error": {') or events[-1].startswith('data: {"error":{')
    assert '"code":"backend_error"' in events[-1].replace(" ", "")
    assert "data: [DONE]" not in response.text


def test_closing_the_sdk_stream_closes_the_backend_request(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = [f"w{i} " for i in range(200)]
    fake_ollama.token_delay = 0.05

    stream = client.chat.completions.create(model="qwen2.5:14b", messages=USER, stream=True)
    chunks = iter(stream)
    next(chunks)
    next(chunks)
    stream.close()
    closed_at = time.monotonic()

    record = fake_ollama.wait_for_stream_end(timeout=5)
    assert record.outcome == "client_disconnected"
    assert record.ended_at - closed_at < 1.0
    assert record.tokens_sent < 200


@pytest.mark.asyncio
async def test_the_async_client_maps_errors_too(gateway: str, api_key: str) -> None:
    async with openai.AsyncOpenAI(
        base_url=f"{gateway}/openai/v1", api_key=api_key, max_retries=0
    ) as client:
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("missing:1b")
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="qwen2.5:14b", messages=USER, n=9)
    async with openai.AsyncOpenAI(
        base_url=f"{gateway}/openai/v1", api_key="wrong", max_retries=0
    ) as client:
        with pytest.raises(openai.AuthenticationError):
            await client.models.list()

    assert caught.value.param == "n"
