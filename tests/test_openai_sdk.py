"""The official `openai` SDK, unchanged, against `/openai/v1/` on a live gateway.

Sync and async clients; the gateway talks to the fake Ollama over a real
socket, and the fake's recordings show what the translation sent.
"""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import AsyncIterator, Iterator

import openai
import pytest
import pytest_asyncio

from tests.fake_ollama import FakeOllama


@pytest.fixture
def client(gateway: str, api_key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway}/openai/v1", api_key=api_key, max_retries=0) as sdk:
        yield sdk


@pytest_asyncio.fixture
async def aclient(gateway: str, api_key: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{gateway}/openai/v1", api_key=api_key, max_retries=0
    ) as sdk:
        yield sdk


def last_chat(fake: FakeOllama) -> dict:
    return fake.requests_to("/api/chat")[-1].json


USER = [{"role": "user", "content": "Say hello"}]


# --- models -----------------------------------------------------------------------


def test_it_lists_models_as_openai_model_objects(client: openai.OpenAI) -> None:
    models = client.models.list()

    by_id = {model.id: model for model in models.data}
    assert {"qwen2.5:14b", "llama3.2:latest", "hf.co/org/name:Q4_K_M"} <= set(by_id)
    qwen = by_id["qwen2.5:14b"]
    assert qwen.object == "model"
    assert qwen.owned_by == "library"
    assert qwen.created == 1746952212  # 2025-05-11T08:30:12Z, the model's modified_at
    assert by_id["hf.co/org/name:Q4_K_M"].owned_by == "org"


@pytest.mark.parametrize("model_id", ["qwen2.5:14b", "hf.co/org/name:Q4_K_M", "llama3.2"])
def test_it_retrieves_one_model_even_with_slashes_in_its_id(
    client: openai.OpenAI, model_id: str
) -> None:
    model = client.models.retrieve(model_id)

    assert model.id == model_id
    assert model.object == "model"


def test_an_unknown_model_is_the_sdks_not_found_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no-such-model:7b")

    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"
    assert "no-such-model:7b" in caught.value.message


@pytest.mark.asyncio
async def test_the_async_client_lists_and_retrieves_models(
    aclient: openai.AsyncOpenAI,
) -> None:
    models = await aclient.models.list()
    model = await aclient.models.retrieve("mxbai-embed-large")

    assert "mxbai-embed-large:latest" in {m.id for m in models.data}
    assert model.id == "mxbai-embed-large"


# --- chat ---------------------------------------------------------------------------


def test_it_completes_a_chat_with_the_backends_token_counts(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["Hello", " there", "!"]

    completion = client.chat.completions.create(model="qwen2.5:14b", messages=USER)

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "qwen2.5:14b"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello there!"
    assert choice.finish_reason == "stop"
    assert completion.usage.completion_tokens == 3
    assert completion.usage.prompt_tokens == 12  # "Say hello" + the fake's template overhead
    assert completion.usage.total_tokens == 15
    assert last_chat(fake_ollama)["stream"] is False


def test_it_translates_sampling_parameters_to_ollama_options(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    client.chat.completions.create(
        model="qwen2.5:14b",
        messages=[{"role": "developer", "content": "Be brief."}, *USER],
        max_tokens=7,
        stop=["\n\n", "END"],
        seed=42,
        temperature=0.2,
        top_p=0.9,
        presence_penalty=0.5,
        frequency_penalty=0.25,
    )

    sent = last_chat(fake_ollama)
    assert sent["options"] == {
        "num_predict": 7,
        "stop": ["\n\n", "END"],
        "seed": 42,
        "temperature": 0.2,
        "top_p": 0.9,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
    }
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert "format" not in sent
    assert not sent.get("tools")  # ollama-python always sends "tools": []


def test_max_completion_tokens_becomes_num_predict_and_length_is_reported(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["one", " two", " three", " four"]

    completion = client.chat.completions.create(
        model="qwen2.5:14b", messages=USER, max_completion_tokens=2, stop="three"
    )

    assert last_chat(fake_ollama)["options"] == {"num_predict": 2, "stop": ["three"]}
    assert completion.choices[0].message.content == "one two"
    assert completion.choices[0].finish_reason == "length"


def test_it_streams_chunks_with_one_id_and_a_usage_chunk(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["Once", " upon", " a", " time"]

    stream = client.chat.completions.create(
        model="qwen2.5:14b",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert {chunk.id for chunk in chunks} == {chunks[0].id}
    assert {chunk.created for chunk in chunks} == {chunks[0].created}
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [
        c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content
    ]
    assert content == ["Once", " upon", " a", " time"]
    finish = chunks[-2]
    assert finish.choices[0].finish_reason == "stop"
    assert finish.usage is None
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage.completion_tokens == 4
    assert usage_chunk.usage.total_tokens == usage_chunk.usage.prompt_tokens + 4
    assert last_chat(fake_ollama)["stream"] is True


def test_chunks_reach_the_sdk_as_the_backend_makes_them(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = [f"t{i} " for i in range(8)]
    fake_ollama.token_delay = 0.05
    start = time.monotonic()
    arrivals = []

    for chunk in client.chat.completions.create(model="qwen2.5:14b", messages=USER, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - start)

    # 8 tokens 50 ms apart: a buffered answer would arrive all at once, at the end.
    assert len(arrivals) == 8
    assert arrivals[7] - arrivals[0] >= 0.05 * 6
    assert arrivals[4] - arrivals[0] >= 0.05 * 3


def test_without_include_usage_no_chunk_carries_usage(
    client: openai.OpenAI, fake_ollama: FakeOllama, gateway: str, auth_headers: dict
) -> None:
    import httpx

    fake_ollama.reply = ["Hi"]
    with httpx.Client(base_url=gateway, timeout=10) as http:
        response = http.post(
            "/openai/v1/chat/completions",
            headers=auth_headers,
            json={"model": "qwen2.5:14b", "messages": USER, "stream": True},
        )

    assert response.headers["content-type"].startswith("text/event-stream")
    payloads = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all("usage" not in chunk for chunk in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "stop"]


@pytest.mark.asyncio
async def test_the_async_client_completes_and_streams(
    aclient: openai.AsyncOpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["Hi", " you"]

    whole = await aclient.chat.completions.create(model="qwen2.5:14b", messages=USER)
    stream = await aclient.chat.completions.create(
        model="qwen2.5:14b", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    pieces, usage = [], None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage

    assert whole.choices[0].message.content == "Hi you"
    assert pieces == ["Hi", " you"]
    assert usage.completion_tokens == 2


# --- tools, JSON mode, images -----------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
}


def test_tool_calls_round_trip_with_arguments_as_json_strings(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.tool_call = {"name": "get_weather", "arguments": {"city": "Paris"}}
    messages: list[dict] = [{"role": "user", "content": "What is the weather in Paris?"}]

    first = client.chat.completions.create(
        model="qwen2.5:14b", messages=messages, tools=[WEATHER_TOOL], tool_choice="auto"
    )

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert last_chat(fake_ollama)["tools"] == [WEATHER_TOOL]

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18 degrees, sunny"},
    ]
    second = client.chat.completions.create(
        model="qwen2.5:14b", messages=messages, tools=[WEATHER_TOOL]
    )

    sent = last_chat(fake_ollama)["messages"]
    assert sent[1]["tool_calls"] == [
        {"id": call.id, "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ]
    assert sent[2] == {"role": "tool", "content": "18 degrees, sunny", "tool_name": "get_weather"}
    assert second.choices[0].message.content == "The tool returned: 18 degrees, sunny"
    assert second.choices[0].finish_reason == "stop"


def test_streamed_tool_calls_arrive_as_deltas(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.tool_call = {"name": "get_weather", "arguments": {"city": "Oslo"}}

    chunks = list(
        client.chat.completions.create(
            model="qwen2.5:14b",
            messages=[{"role": "user", "content": "Weather in Oslo?"}],
            tools=[WEATHER_TOOL],
            stream=True,
        )
    )

    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1
    assert calls[0].index == 0
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Oslo"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_choice_none_sends_no_tools_and_a_named_function_only_that_one(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    other = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
    client.chat.completions.create(
        model="qwen2.5:14b", messages=USER, tools=[WEATHER_TOOL, other], tool_choice="none"
    )
    assert not last_chat(fake_ollama).get("tools")

    client.chat.completions.create(
        model="qwen2.5:14b",
        messages=USER,
        tools=[WEATHER_TOOL, other],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert [t["function"]["name"] for t in last_chat(fake_ollama)["tools"]] == ["get_time"]


def test_json_mode_sends_format_json_and_returns_json_text(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    completion = client.chat.completions.create(
        model="qwen2.5:14b", messages=USER, response_format={"type": "json_object"}
    )

    assert last_chat(fake_ollama)["format"] == "json"
    assert isinstance(json.loads(completion.choices[0].message.content), dict)


def test_json_schema_response_format_becomes_the_ollama_format_schema(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }

    completion = client.chat.completions.create(
        model="qwen2.5:14b",
        messages=USER,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema},
        },
    )

    assert last_chat(fake_ollama)["format"] == schema
    assert json.loads(completion.choices[0].message.content)["age"] == 42


def test_image_parts_with_data_urls_become_ollama_images(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake image bytes").decode()

    client.chat.completions.create(
        model="llama3.2",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                ],
            }
        ],
    )

    sent = last_chat(fake_ollama)["messages"][0]
    assert sent == {"role": "user", "content": "What is in this picture?", "images": [png]}


# --- embeddings ---------------------------------------------------------------------


def test_it_embeds_as_floats_in_input_order_in_one_backend_call(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    result = client.embeddings.create(
        model="mxbai-embed-large", input=["first text", "second one here"], encoding_format="float"
    )

    assert result.object == "list"
    assert result.model == "mxbai-embed-large"
    assert [item.index for item in result.data] == [0, 1]
    assert all(len(item.embedding) == 8 for item in result.data)
    assert result.data[0].embedding != result.data[1].embedding
    assert result.usage.prompt_tokens == 5
    calls = fake_ollama.requests_to("/api/embed")
    assert len(calls) == 1
    assert calls[0].json["input"] == ["first text", "second one here"]


def test_base64_embeddings_are_little_endian_float32_and_match_the_floats(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    floats = (
        client.embeddings.create(
            model="mxbai-embed-large", input="hello world", encoding_format="float"
        )
        .data[0]
        .embedding
    )
    explicit = (
        client.embeddings.create(
            model="mxbai-embed-large", input="hello world", encoding_format="base64"
        )
        .data[0]
        .embedding
    )
    # Without encoding_format the SDK asks for base64 itself and decodes it.
    default = client.embeddings.create(model="mxbai-embed-large", input="hello world")

    assert isinstance(explicit, str)
    assert struct.unpack("<8f", base64.b64decode(explicit)) == pytest.approx(floats, rel=1e-6)
    assert fake_ollama.requests_to("/api/embed")[-1].json["input"] == ["hello world"]
    assert default.data[0].embedding == pytest.approx(floats, rel=1e-6)


def test_dimensions_are_passed_to_the_backend(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    result = client.embeddings.create(model="mxbai-embed-large", input="abc", dimensions=4)

    assert fake_ollama.requests_to("/api/embed")[-1].json["dimensions"] == 4
    assert len(result.data[0].embedding) == 4


@pytest.mark.asyncio
async def test_the_async_client_embeds(aclient: openai.AsyncOpenAI) -> None:
    result = await aclient.embeddings.create(model="mxbai-embed-large", input=["a b", "c"])

    assert len(result.data) == 2
    assert len(result.data[1].embedding) == 8


# --- legacy completions ---------------------------------------------------------------


def test_legacy_completions_go_through_generate(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["four"]

    whole = client.completions.create(model="qwen2.5:14b", prompt="2+2=", max_tokens=3, stop=["\n"])
    streamed = list(client.completions.create(model="qwen2.5:14b", prompt="2+2=", stream=True))

    assert whole.object == "text_completion"
    assert whole.choices[0].text == "four"
    assert whole.usage.completion_tokens == 1
    sent = fake_ollama.requests_to("/api/generate")[0].json
    assert sent["prompt"] == "2+2="
    assert sent["options"] == {"num_predict": 3, "stop": ["\n"]}
    assert "".join(c.choices[0].text for c in streamed) == "four"
    assert streamed[-1].choices[0].finish_reason == "stop"


# --- thinking, usage records ---------------------------------------------------------


def test_thinking_is_returned_as_reasoning_and_reasoning_effort_sets_think(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.thinking_reply = ["Hmm."]
    fake_ollama.reply = ["Hi"]

    completion = client.chat.completions.create(
        model="qwen3:8b", messages=USER, reasoning_effort="high"
    )

    assert last_chat(fake_ollama)["think"] == "high"
    message = completion.choices[0].message
    assert message.content == "Hi"
    assert message.to_dict()["reasoning"] == "Hmm."


def test_a_streamed_chat_is_recorded_once_with_the_backends_counts(
    gateway: str, fake_ollama: FakeOllama, db
) -> None:
    from keys.models import UsageRecord
    from keys.policy import usage_flush
    from keys.services import api_key_create

    fake_ollama.reply = ["one", " two", " three"]
    key, raw = api_key_create(name="metered")
    with openai.OpenAI(base_url=f"{gateway}/openai/v1", api_key=raw, max_retries=0) as sdk:
        chunks = list(
            sdk.chat.completions.create(
                model="qwen2.5:14b",
                messages=USER,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        with pytest.raises(openai.NotFoundError):
            sdk.embeddings.create(model="missing-embedder", input="x")
    usage_flush()

    ok, missing = UsageRecord.objects.filter(api_key=key).order_by("created_at", "id")
    assert (ok.endpoint, ok.model, ok.status) == ("/openai/v1/chat/completions", "qwen2.5:14b", 200)
    assert ok.prompt_tokens == chunks[-1].usage.prompt_tokens
    assert ok.completion_tokens == 3
    assert (missing.model, missing.status, missing.error_code) == (
        "missing-embedder",
        404,
        "model_not_found",
    )
