"""OpenAI's Responses API with the official `openai` SDK (and LangChain's
`use_responses_api=True`) against `/openai/v1/responses` on a live gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fake_ollama import FakeOllama

MODEL = "qwen2.5:14b"
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def client(gateway: str, api_key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway}/openai/v1", api_key=api_key, max_retries=0) as sdk:
        yield sdk


def last_chat(fake: FakeOllama) -> dict:
    return fake.requests_to("/api/chat")[-1].json


def test_it_answers_a_string_input_with_usage_in_the_responses_shape(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    response = client.responses.create(
        model=MODEL,
        input="Say hello",
        instructions="Be brief.",
        max_output_tokens=40,
        temperature=0.2,
        top_p=0.9,
    )

    assert response.object == "response"
    assert response.status == "completed"
    assert response.id.startswith("resp_")
    assert response.output_text
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0
    assert response.usage.total_tokens == (
        response.usage.input_tokens + response.usage.output_tokens
    )
    sent = last_chat(fake_ollama)
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]
    assert sent["options"]["num_predict"] == 40
    assert sent["options"]["temperature"] == 0.2
    assert sent["options"]["top_p"] == 0.9


def test_max_output_tokens_cutting_the_answer_makes_it_incomplete(client: openai.OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="Say hello", max_output_tokens=1)

    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"


def test_items_input_with_roles_becomes_the_backends_messages(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    client.responses.create(
        model=MODEL,
        input=[
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": [{"type": "input_text", "text": "Hello"}]},
        ],
    )

    assert last_chat(fake_ollama)["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hello"},
    ]


def test_text_format_json_schema_is_passed_as_the_backends_format(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }

    response = client.responses.create(
        model=MODEL,
        input="Say hello",
        text={"format": {"type": "json_schema", "name": "reply", "schema": schema, "strict": True}},
    )

    assert last_chat(fake_ollama)["format"] == schema
    assert "answer" in json.loads(response.output_text)


def test_previous_response_id_continues_the_stored_conversation(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    first = client.responses.create(model=MODEL, input="My name is Ada.", instructions="Hi.")
    second = client.responses.create(
        model=MODEL, input="What is my name?", previous_response_id=first.id
    )

    sent = last_chat(fake_ollama)["messages"]
    # Instructions are not carried over to the next turn (as OpenAI does).
    assert sent == [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "What is my name?"},
    ]
    assert second.previous_response_id == first.id


def test_a_stored_response_is_retrieved_and_deleted_and_then_gone(client: openai.OpenAI) -> None:
    created = client.responses.create(model=MODEL, input="Say hello")

    retrieved = client.responses.retrieve(created.id)
    assert retrieved.id == created.id
    assert retrieved.output_text == created.output_text

    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model=MODEL, input="again", previous_response_id=created.id)
    assert caught.value.param == "previous_response_id"


def test_store_false_keeps_nothing(client: openai.OpenAI) -> None:
    created = client.responses.create(model=MODEL, input="Say hello", store=False)

    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_another_key_cannot_see_or_continue_a_stored_response(
    client: openai.OpenAI, gateway: str, db
) -> None:
    from keys.services import api_key_create

    created = client.responses.create(model=MODEL, input="Say hello")
    _, other_key = api_key_create(name="other", rate_limit=1000)

    with openai.OpenAI(base_url=f"{gateway}/openai/v1", api_key=other_key, max_retries=0) as other:
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(created.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.delete(created.id)


def test_a_function_call_round_trip_keeps_the_call_id(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.tool_call = {"name": "get_weather", "arguments": {"city": "Paris"}}

    first = client.responses.create(
        model=MODEL, input="Weather in Paris?", tools=[WEATHER_TOOL], tool_choice="auto"
    )

    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id.startswith("call_")
    assert last_chat(fake_ollama)["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": WEATHER_TOOL["parameters"],
            },
        }
    ]

    fake_ollama.tool_call = None
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18 degrees"}],
        tools=[WEATHER_TOOL],
    )

    sent = last_chat(fake_ollama)["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {"role": "tool", "content": "18 degrees", "tool_name": "get_weather"}
    assert second.output_text == "The tool returned: 18 degrees"


def test_a_stateless_function_call_round_trip_with_items(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.tool_call = {"name": "get_weather", "arguments": {"city": "Oslo"}}
    items: list = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.responses.create(model=MODEL, input=items, tools=[WEATHER_TOOL], store=False)
    call = next(item for item in first.output if item.type == "function_call")

    fake_ollama.tool_call = None
    items += [
        call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "-3 degrees"},
    ]
    second = client.responses.create(model=MODEL, input=items, tools=[WEATHER_TOOL], store=False)

    assert last_chat(fake_ollama)["messages"][2]["tool_name"] == "get_weather"
    assert second.output_text == "The tool returned: -3 degrees"


def test_tool_choice_none_sends_no_tools_and_a_named_function_only_that_one(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    other = {**WEATHER_TOOL, "name": "get_time"}
    client.responses.create(
        model=MODEL, input="hi", tools=[WEATHER_TOOL, other], tool_choice="none"
    )
    assert not last_chat(fake_ollama).get("tools")

    client.responses.create(
        model=MODEL,
        input="hi",
        tools=[WEATHER_TOOL, other],
        tool_choice={"type": "function", "name": "get_time"},
    )
    assert [t["function"]["name"] for t in last_chat(fake_ollama)["tools"]] == ["get_time"]


# --- streaming ------------------------------------------------------------------------


def test_it_streams_the_responses_event_types_in_order(client: openai.OpenAI) -> None:
    whole = client.responses.create(model=MODEL, input="Say hello", store=False)

    events = list(client.responses.create(model=MODEL, input="Say hello", stream=True))

    types = [event.type for event in events]
    assert types[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == whole.output_text
    assert events[-1].response.usage.output_tokens > 0


def test_the_sdks_stream_helper_gives_the_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL, input="Say hello") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()

    assert final.output_text == "".join(deltas)
    assert final.status == "completed"
    # Stored before its last event: it can be continued at once.
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_a_streamed_function_call_arrives_as_an_item_with_its_arguments(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.tool_call = {"name": "get_weather", "arguments": {"city": "Rome"}}

    with client.responses.stream(model=MODEL, input="hi", tools=[WEATHER_TOOL]) as stream:
        final = stream.get_final_response()

    call = next(item for item in final.output if item.type == "function_call")
    assert json.loads(call.arguments) == {"city": "Rome"}
    assert call.call_id.startswith("call_")


def test_a_failure_mid_stream_is_raised_by_the_sdk(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.error_after_tokens = 2

    with pytest.raises(openai.APIError):
        for _ in client.responses.create(model=MODEL, input="Say hello", stream=True):
            pass


# --- errors -------------------------------------------------------------------------


def test_errors_are_the_sdks_exception_classes(
    client: openai.OpenAI, gateway: str, fake_ollama: FakeOllama
) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="hi")
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="hi", tools=[{"type": "web_search"}])
    assert caught.value.param == "tools.0.type"
    with openai.OpenAI(base_url=f"{gateway}/openai/v1", api_key="sk-no", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            bad.responses.create(model=MODEL, input="hi")


def test_ollamas_path_serves_the_same_api(gateway: str, api_key: str) -> None:
    with openai.OpenAI(base_url=f"{gateway}/ollama/v1", api_key=api_key, max_retries=0) as sdk:
        assert sdk.responses.create(model=MODEL, input="Say hello").output_text


def test_usage_is_recorded_for_a_response(http: httpx.Client, api_key: str) -> None:
    from keys.models import UsageRecord
    from keys.usage import usage_flush
    from tests.test_usage import wait_until

    http.post(
        "/openai/v1/responses",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": MODEL, "input": "Say hello"},
    ).raise_for_status()

    # The record is taken when the response is complete, just after the client has it.
    records = UsageRecord.objects.filter(endpoint="/openai/v1/responses")
    wait_until(lambda: usage_flush() > 0 or records.exists())
    record = records.get()
    assert record.prompt_tokens > 0
    assert record.completion_tokens > 0


# --- LangChain ---------------------------------------------------------------------


def test_langchain_with_use_responses_api(gateway: str, api_key: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        model=MODEL,
        base_url=f"{gateway}/openai/v1",
        api_key=api_key,
        use_responses_api=True,
        max_retries=0,
    )

    answer = llm.invoke("Say hello")
    streamed = "".join(chunk.text for chunk in llm.stream("Say hello"))

    assert answer.text
    assert streamed == answer.text
    assert answer.usage_metadata["input_tokens"] > 0


def test_langchain_tool_calls_with_use_responses_api(
    gateway: str, api_key: str, fake_ollama: FakeOllama
) -> None:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "18 degrees"

    fake_ollama.tool_call = {"name": "get_weather", "arguments": {"city": "Paris"}}
    llm = ChatOpenAI(
        model=MODEL,
        base_url=f"{gateway}/openai/v1",
        api_key=api_key,
        use_responses_api=True,
        max_retries=0,
    ).bind_tools([get_weather])

    message = llm.invoke("Weather in Paris?")

    assert message.tool_calls[0]["name"] == "get_weather"
    assert message.tool_calls[0]["args"] == {"city": "Paris"}
    assert message.tool_calls[0]["id"].startswith("call_")
