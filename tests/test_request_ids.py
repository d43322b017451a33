"""Request ids: in the response header, in the error envelope, in the request's
JSON log line (LOG_FORMAT=json); WebSocket generations log the same fields."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from django.conf import settings
from pythonjsonlogger.json import JsonFormatter

from tests.fake_ollama import FakeOllama
from tests.test_ws_consumer import open_chat, receive_until

CHAT = "/v1/chat/completions"
HELLO = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def json_log() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The request log lines, formatted as LOG_FORMAT=json formats them."""
    options = {k: v for k, v in settings.LOGGING["formatters"]["json"].items() if k != "()"}
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(**options))
    logger = logging.getLogger("localai.requests")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_it_returns_the_request_id_in_the_header_the_envelope_and_the_log_line(
    http: httpx.Client, json_log: Callable[[], list[dict[str, Any]]]
) -> None:
    response = http.post(
        CHAT,
        headers={"Authorization": "Bearer nope", "X-Request-ID": "trace-42"},
        json=HELLO,
    )

    assert response.status_code == 401
    assert response.headers["X-Request-ID"] == "trace-42"
    assert response.json()["error"]["request_id"] == "trace-42"
    [line] = [line for line in json_log() if line["request_id"] == "trace-42"]
    assert line["logger"] == "localai.requests" and line["level"] == "INFO"
    assert line["surface"] == "native" and line["endpoint"] == "/v1/chat/completions"
    assert line["status"] == 401 and line["error_code"] == "invalid_api_key"
    assert line["key_prefix"] is None and line["latency_ms"] >= 0


def test_it_logs_model_tokens_time_to_first_token_and_key_prefix_never_the_key(
    http: httpx.Client,
    api_key: str,
    fake_ollama: FakeOllama,
    json_log: Callable[[], list[dict[str, Any]]],
) -> None:
    fake_ollama.reply = ["a", " b", " c"]
    headers = {"Authorization": f"Bearer {api_key}"}
    with http.stream("POST", CHAT, headers=headers, json={**HELLO, "stream": True}) as stream:
        request_id = stream.headers["X-Request-ID"]
        body = stream.read().decode()
    usage = [json.loads(data[6:]) for data in body.splitlines() if data.startswith("data: {")][-1][
        "usage"
    ]

    assert len(request_id) == 32  # none was sent: a fresh one
    line = _wait_for_line(json_log, request_id)
    assert line["model"] == "qwen2.5:14b" and line["status"] == 200
    assert line["prompt_tokens"] == usage["prompt_tokens"]
    assert line["completion_tokens"] == usage["completion_tokens"]
    assert 0 <= line["ttft_ms"] <= line["latency_ms"]
    assert line["key_prefix"] == api_key.split("_")[1]
    assert api_key not in json.dumps(json_log())


def test_it_replaces_an_unusable_incoming_request_id(http: httpx.Client) -> None:
    response = http.get("/v1/models", headers={"X-Request-ID": "has spaces and ;"})
    assert response.headers["X-Request-ID"] != "has spaces and ;"
    assert response.json()["error"]["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_it_logs_a_websocket_generation_with_the_same_fields(
    fake_ollama: FakeOllama, api_key: str, json_log: Callable[[], list[dict[str, Any]]]
) -> None:
    fake_ollama.reply = ["x", " y"]
    communicator = await open_chat(api_key)
    await communicator.send_json_to({"type": "chat", "message": "Hi", "model": "qwen2.5:14b"})
    [*_, end] = await receive_until(communicator, "assistant_end")
    await communicator.disconnect()

    [line] = [line for line in json_log() if line["surface"] == "websocket"]
    assert line["endpoint"] == "/ws/chat" and line["status"] == 200
    assert len(line["request_id"]) == 32
    assert line["model"] == "qwen2.5:14b"
    assert line["completion_tokens"] == end["usage"]["completion_tokens"]
    assert line["ttft_ms"] is not None and line["key_prefix"] == api_key.split("_")[1]


def _wait_for_line(json_log: Callable[[], list[dict[str, Any]]], request_id: str) -> dict[str, Any]:
    """A stream's line is written when the server has seen its end, just after its last byte."""
    import time

    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in json_log() if line["request_id"] == request_id]
        if lines:
            return lines[0]
        assert time.monotonic() < deadline, "no log line for the stream"
        time.sleep(0.02)
