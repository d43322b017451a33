"""The id Ollama gives a tool call reaches the client on every surface, whole and
streamed, and comes back to the backend in the conversation history."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.fake_ollama import FakeOllama

MODEL = "qwen2.5:14b"
CALL_ID = "call_k3y0r1g1"
OPENAI_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def calling(fake_ollama: FakeOllama) -> FakeOllama:
    fake_ollama.tool_call = {"id": CALL_ID, "name": "get_weather", "arguments": {"city": "Oslo"}}
    return fake_ollama


@pytest.fixture
def client(http: httpx.Client, api_key: str) -> httpx.Client:
    http.headers["Authorization"] = f"Bearer {api_key}"
    return http


def sse_payloads(response: httpx.Response) -> list[dict]:
    return [
        json.loads(line[6:])
        for line in response.text.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


def sent_history(fake: FakeOllama) -> list[dict]:
    return fake.requests_to("/api/chat")[-1].json["messages"]


@pytest.mark.parametrize("stream", [False, True])
def test_openai_chat_keeps_the_backends_tool_call_id(
    client: httpx.Client, calling: FakeOllama, stream: bool
) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [OPENAI_TOOL],
        "stream": stream,
    }
    response = client.post("/openai/v1/chat/completions", json=body)

    if stream:
        calls = [
            call
            for event in sse_payloads(response)
            for choice in event["choices"]
            for call in choice["delta"].get("tool_calls") or ()
        ]
    else:
        calls = response.json()["choices"][0]["message"]["tool_calls"]
    assert [call["id"] for call in calls] == [CALL_ID]


def test_openai_chat_sends_the_id_back_to_the_backend(
    client: httpx.Client, fake_ollama: FakeOllama
) -> None:
    call = {"id": CALL_ID, "type": "function", "function": {"name": "f", "arguments": "{}"}}
    client.post(
        "/openai/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": CALL_ID, "content": "done"},
            ],
        },
    ).raise_for_status()

    assert sent_history(fake_ollama)[1]["tool_calls"][0]["id"] == CALL_ID


@pytest.mark.parametrize("stream", [False, True])
def test_the_ollama_surface_keeps_the_backends_tool_call_id(
    client: httpx.Client, calling: FakeOllama, stream: bool
) -> None:
    response = client.post(
        "/ollama/api/chat",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [OPENAI_TOOL],
            "stream": stream,
        },
    )

    lines = [json.loads(line) for line in response.text.splitlines()]
    calls = [call for line in lines for call in line["message"].get("tool_calls") or ()]
    assert [call["id"] for call in calls] == [CALL_ID]


def test_the_ollama_surface_sends_the_id_back_to_the_backend(
    client: httpx.Client, fake_ollama: FakeOllama
) -> None:
    call = {"id": CALL_ID, "function": {"name": "f", "arguments": {}}}
    client.post(
        "/ollama/api/chat",
        json={
            "model": MODEL,
            "stream": False,
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "tool_name": "f", "content": "done"},
            ],
        },
    ).raise_for_status()

    assert sent_history(fake_ollama)[1]["tool_calls"][0]["id"] == CALL_ID


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_tool_use_blocks_carry_the_backends_id(
    client: httpx.Client, calling: FakeOllama, stream: bool
) -> None:
    response = client.post(
        "/anthropic/v1/messages",
        json={
            "model": MODEL,
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
            "stream": stream,
        },
    )

    if stream:
        blocks = [
            event["content_block"]
            for event in sse_payloads(response)
            if event["type"] == "content_block_start"
        ]
    else:
        blocks = response.json()["content"]
    assert [block["id"] for block in blocks if block["type"] == "tool_use"] == [CALL_ID]


@pytest.mark.parametrize("stream", [False, True])
def test_responses_function_calls_carry_the_backends_id(
    client: httpx.Client, calling: FakeOllama, stream: bool
) -> None:
    response = client.post(
        "/openai/v1/responses",
        json={
            "model": MODEL,
            "input": "hi",
            "tools": [{"type": "function", "name": "get_weather", "parameters": {}}],
            "stream": stream,
        },
    )

    if stream:
        output = next(
            event["response"]["output"]
            for event in sse_payloads(response)
            if event["type"] == "response.completed"
        )
    else:
        output = response.json()["output"]
    assert [item["call_id"] for item in output if item["type"] == "function_call"] == [CALL_ID]
