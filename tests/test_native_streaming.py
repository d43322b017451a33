"""Streaming chat over SSE: events arrive as tokens are made, disconnects
close the backend request, failures end the stream with an error event."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import httpx

from tests.fake_ollama import FakeOllama

CHAT = "/v1/chat/completions"
BODY = {"messages": [{"role": "user", "content": "Tell me a story"}], "stream": True}


def sse_data(lines) -> list[str]:
    """The `data:` payloads of an SSE body, as they arrive."""
    for line in lines:
        if line.startswith("data: "):
            yield line[len("data: ") :]


def test_it_streams_one_event_per_token_then_done_and_the_done_marker(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["Once", " upon", " a", " time"]
    with http.stream("POST", CHAT, headers=auth_headers, json=BODY) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        payloads = list(sse_data(response.iter_lines()))

    assert payloads[-1] == "[DONE]"
    events = [json.loads(p) for p in payloads[:-1]]
    pieces = [e["message"]["content"] for e in events if not e["done"]]
    assert pieces == ["Once", " upon", " a", " time"]
    assert len({e["id"] for e in events}) == 1
    assert all(e["message"]["role"] == "assistant" for e in events)
    final = events[-1]
    assert final["done"] is True
    assert final["finish_reason"] == "stop"
    assert final["usage"]["completion_tokens"] == 4
    assert final["usage"]["total_tokens"] == (
        final["usage"]["prompt_tokens"] + final["usage"]["completion_tokens"]
    )
    assert fake_ollama.requests[-1].json["stream"] is True


def test_events_are_relayed_while_the_backend_is_still_generating(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    # A buffered answer would arrive only after the backend's stream ended.
    # What the backend had done when each event arrived is read from the fake
    # (a condition), not from the clock: on a busy machine timings stretch.
    fake_ollama.reply = [f"t{i} " for i in range(4)]
    fake_ollama.token_delay = 0.5
    seen = []
    with http.stream("POST", CHAT, headers=auth_headers, json=BODY) as response:
        for _ in sse_data(response.iter_lines()):
            record = fake_ollama.streams[-1]
            seen.append((record.tokens_sent, record.outcome))

    first_three = seen[:3]
    assert all(outcome is None for _, outcome in first_three), seen
    assert all(sent < 4 for sent, _ in first_three), seen


def test_a_client_that_disconnects_closes_the_backend_request(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = [f"w{i} " for i in range(200)]
    fake_ollama.token_delay = 0.05
    with http.stream("POST", CHAT, headers=auth_headers, json=BODY) as response:
        events = sse_data(response.iter_lines())
        next(events)
        next(events)
        closed_at = time.monotonic()
    # Leaving the block closes the connection after two events.

    record = fake_ollama.wait_for_stream_end(timeout=5)
    assert record.outcome == "client_disconnected"
    assert record.ended_at - closed_at < 1.0
    assert record.tokens_sent < 200


def test_a_backend_error_mid_stream_ends_with_an_error_event_and_no_done_marker(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["a", "b", "c", "d"]
    fake_ollama.error_after_tokens = 2
    with http.stream("POST", CHAT, headers=auth_headers, json=BODY) as response:
        assert response.status_code == 200
        payloads = list(sse_data(response.iter_lines()))

    assert "[DONE]" not in payloads
    events = [json.loads(p) for p in payloads]
    assert [e["message"]["content"] for e in events[:-1]] == ["a", "b"]
    error = events[-1]["error"]
    assert error["code"] == "backend_error"
    assert "while running the model" in error["message"]


def test_a_backend_that_drops_the_connection_mid_stream_yields_an_error_event(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["a", "b", "c", "d"]
    fake_ollama.disconnect_after_tokens = 2
    with http.stream("POST", CHAT, headers=auth_headers, json=BODY) as response:
        payloads = list(sse_data(response.iter_lines()))

    assert "[DONE]" not in payloads
    assert json.loads(payloads[-1])["error"]["code"] == "backend_error"


def test_errors_before_the_first_token_keep_their_status_code(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    fake_ollama.busy = True
    response = http.post(CHAT, headers=auth_headers, json=BODY)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "backend_busy"
    assert int(response.headers["retry-after"]) >= 1


def test_a_stream_for_an_unknown_model_is_a_404_not_an_event(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    response = http.post(CHAT, headers=auth_headers, json={**BODY, "model": "ghost:1b"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_a_client_that_accepts_only_event_streams_gets_the_stream(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["Hi", "!"]
    headers = {**auth_headers, "Accept": "text/event-stream"}
    for path in (CHAT, "/openai/v1/chat/completions"):
        body = {**BODY, "model": "qwen2.5:14b"}
        with http.stream("POST", path, headers=headers, json=body) as response:
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith("text/event-stream")
            payloads = list(sse_data(response.iter_lines()))
        assert payloads[-1] == "[DONE]", path


def test_errors_for_a_client_that_accepts_only_event_streams_are_json_envelopes(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    accept = {"Accept": "text/event-stream"}
    unknown = http.post(
        CHAT, headers={**auth_headers, **accept}, json={**BODY, "model": "ghost:1b"}
    )
    no_key = http.post(CHAT, headers=accept, json=BODY)
    invalid = http.post(CHAT, headers={**auth_headers, **accept}, json={**BODY, "messages": []})

    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "model_not_found")
    assert (no_key.status_code, no_key.json()["error"]["code"]) == (401, "invalid_api_key")
    assert invalid.status_code in (400, 422)
    for response in (unknown, no_key, invalid):
        assert response.headers["content-type"].startswith("application/json")


TRICKY_TOKENS = ['Say "hi"', " back\\slash", " line\nbreak\ttab", " ünïcødé ✓", " 😀", " </script>"]


def test_every_streaming_surface_relays_any_text_intact(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    """Quotes, backslashes, control characters and non-ASCII survive each token's event."""
    fake_ollama.reply = TRICKY_TOKENS
    message = [{"role": "user", "content": "hi"}]

    with http.stream("POST", CHAT, headers=auth_headers, json=BODY) as response:
        events = [json.loads(p) for p in sse_data(response.iter_lines()) if p != "[DONE]"]
    assert [e["message"]["content"] for e in events if not e["done"]] == TRICKY_TOKENS

    body = {"model": "qwen2.5:14b", "messages": message, "stream": True}
    with http.stream(
        "POST", "/openai/v1/chat/completions", headers=auth_headers, json=body
    ) as response:
        chunks = [json.loads(p) for p in sse_data(response.iter_lines()) if p != "[DONE]"]
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks]
    assert [d for d in deltas if d] == TRICKY_TOKENS

    body = {"model": "qwen2.5:14b", "messages": message}
    with http.stream("POST", "/ollama/api/chat", headers=auth_headers, json=body) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert [line["message"]["content"] for line in lines if not line["done"]] == TRICKY_TOKENS
    assert all(line["created_at"].endswith("Z") for line in lines)

    body = {"model": "qwen2.5:14b", "prompt": "hi"}
    with http.stream("POST", "/ollama/api/generate", headers=auth_headers, json=body) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert [line["response"] for line in lines if not line["done"]] == TRICKY_TOKENS

    body = {"model": "qwen2.5:14b", "prompt": "hi", "stream": True}
    with http.stream("POST", "/openai/v1/completions", headers=auth_headers, json=body) as response:
        chunks = [json.loads(p) for p in sse_data(response.iter_lines()) if p != "[DONE]"]
    assert "".join(c["choices"][0]["text"] for c in chunks) == "".join(TRICKY_TOKENS)


def test_streamed_and_whole_answers_write_created_the_same_way(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    whole = http.post(CHAT, headers=auth_headers, json={**BODY, "stream": False}).json()
    with http.stream("POST", CHAT, headers=auth_headers, json=BODY) as response:
        events = [json.loads(p) for p in sse_data(response.iter_lines()) if p != "[DONE]"]

    for created in [whole["created"], *(event["created"] for event in events)]:
        assert created.endswith("Z"), created
        assert datetime.fromisoformat(created).utcoffset() == timedelta(0)
    assert len({event["created"] for event in events}) == 1
