"""The official `anthropic` SDK, unchanged, against `/anthropic/v1/messages` on a live gateway
(and `/ollama/v1/messages`, where Ollama serves the same API)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import httpx
import pytest

from tests.fake_ollama import FakeOllama

MODEL = "qwen2.5:14b"
HELLO = [{"role": "user", "content": "Say hello"}]
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def client(gateway: str, api_key: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=f"{gateway}/anthropic", api_key=api_key, max_retries=0
    ) as sdk:
        yield sdk


def last_chat(fake: FakeOllama) -> dict:
    return fake.requests_to("/api/chat")[-1].json


def test_it_answers_a_message_with_the_backends_token_counts(
    client: anthropic.Anthropic, fake_ollama: FakeOllama
) -> None:
    message = client.messages.create(
        model=MODEL,
        max_tokens=50,
        system="Be brief.",
        messages=HELLO,
        stop_sequences=["END"],
        # Older SDKs take these as arguments; current ones only as extra body.
        extra_body={"temperature": 0.3, "top_k": 20},
    )

    assert message.type == "message"
    assert message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    assert message.content[0].text
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens > 0
    sent = last_chat(fake_ollama)
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["options"]["num_predict"] == 50
    assert sent["options"]["temperature"] == 0.3
    assert sent["options"]["top_k"] == 20
    assert sent["options"]["stop"] == ["END"]


def test_it_reports_max_tokens_as_the_stop_reason_when_the_limit_cuts_the_answer(
    client: anthropic.Anthropic,
) -> None:
    message = client.messages.create(model=MODEL, max_tokens=1, messages=HELLO)

    assert message.stop_reason == "max_tokens"


def test_it_streams_the_event_types_in_anthropics_order(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=50, messages=HELLO) as stream:
        types = [event.type for event in stream]
        text = "".join(stream.text_stream)  # already consumed: empty
        final = stream.get_final_message()

    assert types[0] == "message_start"
    assert types[1] == "content_block_start"
    assert "content_block_delta" in types
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert text == ""
    assert final.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_it_streams_text_with_the_sdks_text_stream(client: anthropic.Anthropic) -> None:
    whole = client.messages.create(model=MODEL, max_tokens=50, messages=HELLO)
    with client.messages.stream(model=MODEL, max_tokens=50, messages=HELLO) as stream:
        text = "".join(stream.text_stream)

    assert text == whole.content[0].text


def test_a_tool_round_trip_keeps_the_backends_tool_use_id(
    client: anthropic.Anthropic, fake_ollama: FakeOllama
) -> None:
    fake_ollama.tool_call = {"name": "get_weather", "arguments": {"city": "Paris"}}
    messages: list = [{"role": "user", "content": "Weather in Paris?"}]

    first = client.messages.create(
        model=MODEL, max_tokens=100, messages=messages, tools=[WEATHER_TOOL]
    )

    assert first.stop_reason == "tool_use"
    tool_use = next(block for block in first.content if block.type == "tool_use")
    assert tool_use.name == "get_weather"
    assert tool_use.input == {"city": "Paris"}
    assert tool_use.id
    assert (
        last_chat(fake_ollama)["tools"][0]["function"]["parameters"]
        == (WEATHER_TOOL["input_schema"])
    )

    fake_ollama.tool_call = None
    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": tool_use.id, "content": "18 degrees"}
            ],
        },
    ]
    second = client.messages.create(
        model=MODEL, max_tokens=100, messages=messages, tools=[WEATHER_TOOL]
    )

    sent = last_chat(fake_ollama)["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": {"city": "Paris"},
    }
    assert sent[2]["role"] == "tool"
    assert sent[2]["content"] == "18 degrees"
    assert sent[2]["tool_name"] == "get_weather"
    assert second.content[0].text == "The tool returned: 18 degrees"


def test_a_streamed_tool_call_arrives_as_a_tool_use_block(
    client: anthropic.Anthropic, fake_ollama: FakeOllama
) -> None:
    fake_ollama.tool_call = {"name": "get_weather", "arguments": {"city": "Oslo"}}

    with client.messages.stream(
        model=MODEL, max_tokens=100, messages=HELLO, tools=[WEATHER_TOOL]
    ) as stream:
        final = stream.get_final_message()

    block = next(block for block in final.content if block.type == "tool_use")
    assert block.input == {"city": "Oslo"}
    assert final.stop_reason == "tool_use"


def test_tool_choice_none_sends_no_tools_and_tool_only_the_named_one(
    client: anthropic.Anthropic, fake_ollama: FakeOllama
) -> None:
    other = {**WEATHER_TOOL, "name": "get_time"}
    client.messages.create(
        model=MODEL,
        max_tokens=10,
        messages=HELLO,
        tools=[WEATHER_TOOL, other],
        tool_choice={"type": "none"},
    )
    assert not last_chat(fake_ollama).get("tools")

    client.messages.create(
        model=MODEL,
        max_tokens=10,
        messages=HELLO,
        tools=[WEATHER_TOOL, other],
        tool_choice={"type": "tool", "name": "get_time"},
    )
    assert [t["function"]["name"] for t in last_chat(fake_ollama)["tools"]] == ["get_time"]


def test_image_blocks_go_to_the_backend_as_base64(
    client: anthropic.Anthropic, fake_ollama: FakeOllama
) -> None:
    png = "iVBORw0KGgo="
    client.messages.create(
        model=MODEL,
        max_tokens=10,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": png},
                    },
                ],
            }
        ],
    )

    assert last_chat(fake_ollama)["messages"][0]["images"] == [png]


def test_output_config_format_asks_the_backend_for_json_following_the_schema(
    client: anthropic.Anthropic, fake_ollama: FakeOllama
) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}

    message = client.messages.create(
        model=MODEL,
        max_tokens=50,
        messages=HELLO,
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )

    assert last_chat(fake_ollama)["format"] == schema
    assert "answer" in json.loads(message.content[0].text)


def test_it_counts_input_tokens_with_the_backends_count(client: anthropic.Anthropic) -> None:
    whole = client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)

    count = client.messages.count_tokens(model=MODEL, messages=HELLO)

    assert count.input_tokens == whole.usage.input_tokens


def test_the_key_is_accepted_as_a_bearer_token(gateway: str, api_key: str) -> None:
    with anthropic.Anthropic(
        base_url=f"{gateway}/anthropic", auth_token=api_key, max_retries=0
    ) as sdk:
        message = sdk.messages.create(model=MODEL, max_tokens=10, messages=HELLO)

    assert message.content[0].text


def test_ollamas_path_serves_the_same_api(gateway: str, api_key: str) -> None:
    with anthropic.Anthropic(base_url=f"{gateway}/ollama", api_key=api_key, max_retries=0) as sdk:
        message = sdk.messages.create(model=MODEL, max_tokens=10, messages=HELLO)

    assert message.content[0].text


# --- errors, as the SDK's own exception classes --------------------------------------


def test_a_wrong_key_is_an_authentication_error(gateway: str) -> None:
    with anthropic.Anthropic(
        base_url=f"{gateway}/anthropic", api_key="sk-wrong", max_retries=0
    ) as sdk:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            sdk.messages.create(model=MODEL, max_tokens=10, messages=HELLO)

    assert caught.value.status_code == 401
    assert caught.value.body["error"]["type"] == "authentication_error"


def test_an_unknown_model_is_a_not_found_error(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="no-such-model", max_tokens=10, messages=HELLO)

    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "not_found_error"


def test_a_missing_max_tokens_is_a_bad_request_naming_the_field(http: httpx.Client, api_key: str):
    response = http.post(
        "/anthropic/v1/messages",
        headers={"x-api-key": api_key},
        json={"model": MODEL, "messages": HELLO},
    )

    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == "max_tokens"


def test_an_image_url_is_a_bad_request_error(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model=MODEL,
            max_tokens=10,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
                    ],
                }
            ],
        )

    assert "base64" in caught.value.message


def test_a_busy_backend_is_an_overloaded_server_error(
    client: anthropic.Anthropic, fake_ollama: FakeOllama
) -> None:
    fake_ollama.busy = True

    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)

    assert caught.value.status_code == 503
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert caught.value.response.headers["retry-after"]


def test_a_failure_mid_stream_ends_with_an_error_event_the_sdk_raises(
    client: anthropic.Anthropic, fake_ollama: FakeOllama
) -> None:
    fake_ollama.error_after_tokens = 2

    with pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(model=MODEL, max_tokens=50, messages=HELLO) as stream:
            for _ in stream:
                pass

    assert "backend" in str(caught.value.message).lower()


def test_a_rate_limited_key_is_a_rate_limit_error(gateway: str, db) -> None:
    from keys.services import api_key_create

    _, raw_key = api_key_create(name="tight", rate_limit=1)
    with anthropic.Anthropic(
        base_url=f"{gateway}/anthropic", api_key=raw_key, max_retries=0
    ) as sdk:
        sdk.messages.create(model=MODEL, max_tokens=5, messages=HELLO)
        with pytest.raises(anthropic.RateLimitError) as caught:
            sdk.messages.create(model=MODEL, max_tokens=5, messages=HELLO)

    assert caught.value.body["error"]["type"] == "rate_limit_error"


def test_thinking_is_relayed_from_a_thinking_model_and_dropped_for_others(
    client: anthropic.Anthropic, fake_ollama: FakeOllama
) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}

    thought = client.messages.create(
        model="qwen3:8b", max_tokens=200, messages=HELLO, thinking=thinking
    )
    assert last_chat(fake_ollama)["think"] is True
    plain = client.messages.create(model=MODEL, max_tokens=50, messages=HELLO, thinking=thinking)

    assert thought.content[0].type == "thinking"
    assert thought.content[0].thinking
    assert "think" not in last_chat(fake_ollama)
    assert [block.type for block in plain.content] == ["text"]
