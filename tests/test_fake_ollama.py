"""Tests for tests/fake_ollama.py, driven through the real ``ollama`` client (and raw httpx
where the wire itself is the subject). They pin down wire.md section C.4 (exception table)
and the checklist in section E."""

from __future__ import annotations

import asyncio
import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import ollama
import pytest

from tests.fake_ollama import (
    BUSY_MESSAGE,
    MID_STREAM_ERROR_MESSAGE,
    OOM_MESSAGE,
    PROMPT_TOKEN_OVERHEAD,
    RUNNER_STOPPED_MESSAGE,
    FakeModel,
    FakeOllama,
    free_port,
    numbered_reply,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
METRICS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)
HI = [{"role": "user", "content": "hi there"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string", "description": "city"}},
            "required": ["location"],
        },
    },
}


@pytest.fixture(autouse=True)
def _fresh_rate_limits_and_usage() -> None:
    """Opt out of conftest's autouse keys/usage reset: these tests need no Django
    (and must run with ``-p no:django``, where importing keys.models fails)."""


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOllama]:
    with FakeOllama() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOllama) -> Iterator[FakeOllama]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def client(fake: FakeOllama) -> Iterator[ollama.Client]:
    with ollama.Client(host=fake.url) as c:
        yield c


@pytest.fixture
def http(fake: FakeOllama) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=5) as c:
        yield c


def ndjson_lines(response: httpx.Response) -> list[dict]:
    text = response.text
    assert text.endswith("\n") and "\n\n" not in text, "NDJSON must have no blank lines"
    return [json.loads(line) for line in text[:-1].split("\n")]


# ----------------------------------------------------------------------------- routing


def test_root_version_and_routing(http: httpx.Client) -> None:
    root = http.get("/")
    assert (root.status_code, root.text) == (200, "Ollama is running")
    assert http.head("/").status_code == 200
    assert http.get("/api/version").json() == {"version": "0.32.15"}
    assert "server" not in root.headers  # Go sends no Server header

    missing = http.get("/api/nope")
    assert (missing.status_code, missing.text, missing.headers["content-type"]) == (
        404,
        "404 page not found",
        "text/plain",
    )
    wrong = http.get("/api/chat")
    assert (wrong.status_code, wrong.text) == (405, "405 method not allowed")
    assert http.head("/api/ps").status_code == 405


# ----------------------------------------------------------------------------- list / show / ps


def test_list_show_ps_parse_in_client_models(fake: FakeOllama, client: ollama.Client) -> None:
    listed = client.list().models
    names = [m.model for m in listed]
    assert (
        names[0] == "qwen3:8b" and "hf.co/org/name:Q4_K_M" in names and "llama3.2:latest" in names
    )
    stamps = [m.modified_at for m in listed]
    assert stamps == sorted(stamps, reverse=True) and all(s.tzinfo for s in stamps)
    qwen = next(m for m in listed if m.model == "qwen2.5:14b")
    assert qwen.size == 9123456789 and len(qwen.digest) == 64
    assert (qwen.details.family, qwen.details.parameter_size, qwen.details.quantization_level) == (
        "qwen2",
        "14.8B",
        "Q4_K_M",
    )

    for name in names:
        shown = client.show(name)
        assert (
            shown.modelinfo is not None and shown.template and shown.modified_at and shown.details
        )
    embed = client.show("MXBAI-embed-large")  # case-insensitive, tag optional
    assert embed.capabilities == ["embedding"] and embed.modelinfo["bert.embedding_length"] == 1024
    assert set(client.show("qwen3:8b").capabilities) == {"completion", "tools", "thinking"}
    with pytest.raises(ollama.ResponseError) as err:
        client.show("missing")
    assert (err.value.status_code, err.value.error) == (404, "model 'missing:latest' not found")

    assert client.ps().models == []
    client.chat(model="llama3.2", messages=HI, keep_alive="10m", options={"num_ctx": 8192})
    (loaded,) = client.ps().models
    assert loaded.model == "llama3.2:latest" and loaded.context_length == 8192 and loaded.size_vram
    remaining = loaded.expires_at - datetime.now(UTC)
    assert timedelta(minutes=9) < remaining <= timedelta(minutes=10)
    client.chat(model="llama3.2", messages=[], keep_alive=0)  # unload
    assert client.ps().models == []


# ----------------------------------------------------------------------------- chat basics


def test_chat_non_stream_echo_and_metrics(fake: FakeOllama, client: ollama.Client) -> None:
    response = client.chat(model="LLAMA3.2", messages=HI)
    assert response.model == "LLAMA3.2"  # echoed exactly as sent
    assert response.message.role == "assistant" and response.message.content == "You said: hi there"
    assert response.done and response.done_reason == "stop"
    assert response.eval_count == 4 and response.prompt_eval_count == 2 + PROMPT_TOKEN_OVERHEAD
    assert all(isinstance(getattr(response, k), int) and getattr(response, k) > 0 for k in METRICS)
    assert RFC3339_NANO.match(response.created_at)

    fake.reply = ["Custom", " reply"]
    assert client.chat(model="llama3.2", messages=HI).message.content == "Custom reply"


def test_stream_wire_format_defaults_to_ndjson(http: httpx.Client) -> None:
    response = http.post(
        "/api/chat", json={"model": "llama3.2", "messages": HI}
    )  # stream omitted => true
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["transfer-encoding"] == "chunked"
    *tokens, final = ndjson_lines(response)
    assert "".join(t["message"]["content"] for t in tokens) == "You said: hi there"
    for token in tokens:
        assert token["done"] is False and token["message"]["role"] == "assistant"
        assert not set(METRICS) & set(token) and "done_reason" not in token
        assert RFC3339_NANO.match(token["created_at"])
    assert (
        final["done"] is True
        and final["done_reason"] == "stop"
        and final["message"]["content"] == ""
    )
    assert all(isinstance(final[k], int) for k in METRICS) and final["eval_count"] == len(tokens)

    single = http.post("/api/chat", json={"model": "llama3.2", "messages": HI, "stream": False})
    assert single.headers["content-type"] == "application/json; charset=utf-8"
    assert single.json()["message"]["content"] == "You said: hi there"


def test_stream_timing_first_chunk_arrives_early(fake: FakeOllama, client: ollama.Client) -> None:
    # Every token is flushed on its own: each chunk arrives while the fake is
    # still generating. Read from the fake's record (a condition), not from
    # gaps between arrivals, which a busy machine squeezes together.
    fake.token_delay = 0.3
    fake.reply = numbered_reply(6)
    start = time.monotonic()
    seen = []
    for _ in client.chat(model="llama3.2", messages=HI, stream=True):
        record = fake.streams[-1]
        seen.append((record.tokens_sent, record.outcome))
    assert len(seen) == 7  # 6 tokens + final line
    assert all(outcome is None for _, outcome in seen[:3]), seen
    assert all(sent < 6 for sent, _ in seen[:3]), seen
    assert time.monotonic() - start >= 6 * 0.3 * 0.9  # the delays were applied


def test_headers_are_held_until_the_first_line(fake: FakeOllama, http: httpx.Client) -> None:
    fake.first_token_delay = 0.3
    start = time.monotonic()
    with http.stream("POST", "/api/chat", json={"model": "llama3.2", "messages": HI}) as response:
        assert time.monotonic() - start >= 0.28
        assert response.status_code == 200
    fake.first_token_delay = 0.0
    fake.fail_before_first_token = True
    failed = http.post("/api/chat", json={"model": "llama3.2", "messages": HI})  # streaming request
    assert failed.status_code == 500 and failed.json() == {"error": RUNNER_STOPPED_MESSAGE}


# ----------------------------------------------------------------------------- C.4 exception table


@pytest.mark.parametrize(
    ("knob", "status", "message"),
    [
        ("busy", 503, BUSY_MESSAGE),
        ("fail_before_first_token", 500, RUNNER_STOPPED_MESSAGE),
        ("oom", 500, OOM_MESSAGE),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_status_errors_raise_response_error(
    fake: FakeOllama, client: ollama.Client, knob: str, status: int, message: str, stream: bool
) -> None:
    setattr(fake, knob, True)
    with pytest.raises(ollama.ResponseError) as err:
        result = client.chat(model="llama3.2", messages=HI, stream=stream)
        if stream:
            list(result)
    assert (err.value.status_code, err.value.error) == (status, message)
    assert "  maximum pending" in BUSY_MESSAGE  # two spaces, as Ollama writes it


def test_unknown_model_messages(client: ollama.Client) -> None:
    cases = [
        (lambda: client.chat(model="nope", messages=HI), "model 'nope' not found"),
        (lambda: client.generate(model="nope", prompt="x"), "model 'nope' not found"),
        (
            lambda: client.embed(model="nope", input="x"),
            'model "nope" not found, try pulling it first',
        ),
        (
            lambda: client.embeddings(model="nope", prompt="x"),
            'model "nope" not found, try pulling it first',
        ),
    ]
    for call, message in cases:
        with pytest.raises(ollama.ResponseError) as err:
            call()
        assert (err.value.status_code, err.value.error) == (404, message)
        assert str(err.value) == f"{message} (status code: 404)"


def test_capability_errors(fake: FakeOllama, client: ollama.Client) -> None:
    fake.add_model(
        FakeModel(
            name="gemma:2b",
            family="gemma",
            parameter_size="2.5B",
            quantization_level="Q4_0",
            size=1678456656,
            capabilities=("completion",),
            modified_at=datetime(2024, 2, 1, tzinfo=UTC),
            parameter_count=2506172416,
            context_length=8192,
            embedding_length=2048,
        )
    )
    cases = [
        (
            lambda: client.chat(model="mxbai-embed-large", messages=HI),
            '"mxbai-embed-large" does not support chat',
        ),
        (
            lambda: client.chat(model="gemma:2b", messages=HI, tools=[WEATHER_TOOL]),
            "registry.ollama.ai/library/gemma:2b does not support tools",
        ),
        (
            lambda: client.chat(model="hf.co/org/name:Q4_K_M", messages=HI, tools=[WEATHER_TOOL]),
            "hf.co/org/name:Q4_K_M does not support tools",
        ),
        (
            lambda: client.chat(model="llama3.2", messages=HI, think=True),
            '"llama3.2" does not support thinking',
        ),
    ]
    for call, message in cases:
        with pytest.raises(ollama.ResponseError) as err:
            call()
        assert (err.value.status_code, err.value.error) == (400, message)


def test_mid_stream_error_line_gives_status_minus_one(
    fake: FakeOllama, client: ollama.Client
) -> None:
    fake.error_after_tokens = 2
    parts = []
    with pytest.raises(ollama.ResponseError) as err:
        for part in client.chat(model="llama3.2", messages=HI, stream=True):
            parts.append(part)
    assert (err.value.status_code, err.value.error) == (-1, MID_STREAM_ERROR_MESSAGE)
    assert [p.message.content for p in parts] == ["You", " said:"]
    record = fake.wait_for_stream_end(timeout=1)
    assert (record.outcome, record.tokens_sent) == ("error_line", 2)

    with pytest.raises(ollama.ResponseError) as err:  # non-stream: the real server answers 500
        client.chat(model="llama3.2", messages=HI)
    assert err.value.status_code == 500


def test_mid_stream_disconnect_raises_remote_protocol_error(
    fake: FakeOllama, client: ollama.Client
) -> None:
    fake.disconnect_after_tokens = 2
    parts = []
    with pytest.raises(httpx.RemoteProtocolError):
        for part in client.chat(model="llama3.2", messages=HI, stream=True):
            parts.append(part)
    assert len(parts) == 2
    assert fake.wait_for_stream_end(timeout=1).outcome == "aborted"

    async def run_async() -> None:
        async with ollama.AsyncClient(host=fake.url) as aclient:
            stream = await aclient.generate(model="llama3.2", prompt="hello", stream=True)
            with pytest.raises(httpx.RemoteProtocolError):
                async for _ in stream:
                    pass

    asyncio.run(run_async())


def test_connection_refused(fake: FakeOllama) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    sync_client = ollama.Client(host=url)
    with pytest.raises(ConnectionError) as err:
        sync_client.chat(model="llama3.2", messages=HI)
    assert not isinstance(err.value, httpx.HTTPError) and "Failed to connect to Ollama" in str(
        err.value
    )
    with pytest.raises(ConnectionError):
        sync_client.list()
    with pytest.raises(httpx.ConnectError) as connect_err:
        list(sync_client.chat(model="llama3.2", messages=HI, stream=True))
    assert not isinstance(connect_err.value, ConnectionError)  # not wrapped for streams

    async def run_async() -> None:
        async with ollama.AsyncClient(host=url) as aclient:
            with pytest.raises(ConnectionError):
                await aclient.chat(model="llama3.2", messages=HI)
            stream = await aclient.chat(
                model="llama3.2", messages=HI, stream=True
            )  # no request yet
            with pytest.raises(httpx.ConnectError):
                async for _ in stream:
                    pass

    asyncio.run(run_async())


def test_read_timeout_with_stall(fake: FakeOllama) -> None:
    fake.stall = 2.0
    impatient = ollama.Client(host=fake.url, timeout=0.2)
    with pytest.raises(httpx.ReadTimeout):
        impatient.chat(model="llama3.2", messages=HI)
    gave_up = time.monotonic()
    record = fake.wait_for_stream_end(timeout=1)
    assert record.outcome == "client_disconnected" and record.ended_at - gave_up < 1
    with pytest.raises(httpx.ReadTimeout):
        list(impatient.chat(model="llama3.2", messages=HI, stream=True))
    with pytest.raises(httpx.ReadTimeout):
        impatient.list()


def test_garbage_body_breaks_json_parsing(fake: FakeOllama, client: ollama.Client) -> None:
    fake.garbage = True
    with pytest.raises(json.JSONDecodeError):
        client.chat(model="llama3.2", messages=HI)
    with pytest.raises(json.JSONDecodeError):
        list(client.chat(model="llama3.2", messages=HI, stream=True))


# ----------------------------------------------------------------------------- stream lifecycle


def test_client_closing_stream_is_seen_quickly_sync(
    fake: FakeOllama, client: ollama.Client
) -> None:
    fake.token_delay = 0.05
    fake.reply = numbered_reply(200)
    stream = client.chat(model="llama3.2", messages=HI, stream=True)
    assert next(stream).message.content == "Lorem"
    next(stream)
    stream.close()
    closed_at = time.monotonic()
    record = fake.wait_for_stream_end(timeout=1)
    assert record.outcome == "client_disconnected"
    assert record.ended_at - closed_at < 1 and record.tokens_sent < 10
    assert record.first_byte_at is not None and record.request is not None


def test_client_closing_stream_is_seen_quickly_async(fake: FakeOllama) -> None:
    fake.token_delay = 0.05
    fake.reply = numbered_reply(200)

    async def consume_two() -> float:
        async with ollama.AsyncClient(host=fake.url) as aclient:
            stream = await aclient.chat(model="llama3.2", messages=HI, stream=True)
            seen = 0
            async for _ in stream:
                seen += 1
                if seen == 2:
                    break
            await stream.aclose()
            return time.monotonic()

    closed_at = asyncio.run(consume_two())
    record = fake.wait_for_stream_end(timeout=1)
    assert record.outcome == "client_disconnected" and record.ended_at - closed_at < 1


def test_completed_streams_and_request_recording(fake: FakeOllama, client: ollama.Client) -> None:
    client.chat(
        model="llama3.2",
        messages=HI,
        options={"num_predict": 50, "stop": ["\n"], "seed": 1},
        keep_alive="5m",
        format="json",
    )
    (request,) = fake.wait_for_requests(1, timeout=1)
    assert (request.method, request.path) == ("POST", "/api/chat")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("ollama-python/")
    assert request.json["stream"] is False and request.json["options"]["num_predict"] == 50
    assert (
        request.json["keep_alive"] == "5m"
        and request.json["format"] == "json"
        and request.json["tools"] == []
    )
    assert fake.requests_to("/api/chat") == [request]
    record = fake.wait_for_stream_end(timeout=1)
    assert (record.outcome, record.stream, record.model) == ("completed", False, "llama3.2")
    assert fake.active_streams == [] and fake.streams == [record]


# ----------------------------------------------------------------------------- generation features


def test_tool_calls(fake: FakeOllama, client: ollama.Client, http: httpx.Client) -> None:
    ask = [{"role": "user", "content": "What's the weather in Paris?"}]
    response = client.chat(model="llama3.2", messages=ask, tools=[WEATHER_TOOL])
    (call,) = response.message.tool_calls
    assert (call.function.name, dict(call.function.arguments)) == (
        "get_weather",
        {"location": "Paris"},
    )
    assert response.message.content == "" and response.done_reason == "stop"

    raw = http.post(
        "/api/chat", json={"model": "qwen2.5:14b", "messages": ask, "tools": [WEATHER_TOOL]}
    )
    first, final = ndjson_lines(raw)
    (wire_call,) = first["message"]["tool_calls"]
    assert (
        re.fullmatch(r"call_[a-z0-9]{8}", wire_call["id"]) and wire_call["function"]["index"] == 0
    )
    assert first["message"]["content"] == "" and final["done_reason"] == "stop"

    fake.tool_call = {"name": "lookup", "arguments": {"q": 1}}
    forced = client.chat(model="llama3.2", messages=HI, tools=[WEATHER_TOOL])
    assert forced.message.tool_calls[0].function.name == "lookup"

    follow_up = [
        *ask,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"location": "Paris"}}}
            ],
        },
        {"role": "tool", "content": "18C", "tool_name": "get_weather"},
    ]
    answer = client.chat(model="llama3.2", messages=follow_up, tools=[WEATHER_TOOL])
    assert answer.message.tool_calls is None and answer.message.content == "The tool returned: 18C"


def test_format_json_and_schema(client: ollama.Client, http: httpx.Client) -> None:
    as_json = client.chat(model="llama3.2", messages=HI, format="json").message.content
    assert json.loads(as_json) == {"answer": "You said: hi there"}
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    }
    shaped = json.loads(client.chat(model="llama3.2", messages=HI, format=schema).message.content)
    assert set(shaped) == {"name", "age"} and isinstance(shaped["age"], int)
    # ollama-python refuses other strings client-side; the runner rejects them before any token.
    bad = http.post("/api/chat", json={"model": "llama3.2", "messages": HI, "format": "xml"})
    assert bad.status_code == 500 and bad.json() == {
        "error": 'invalid format: "\\"xml\\""; expected "json" or a valid JSON Schema object'
    }


def test_num_predict_stop_and_options(client: ollama.Client) -> None:
    short = client.chat(model="llama3.2", messages=HI, options={"num_predict": 2})
    assert (short.message.content, short.done_reason, short.eval_count) == (
        "You said:",
        "length",
        2,
    )
    stopped = client.chat(model="llama3.2", messages=HI, options={"stop": ["hi"]})
    assert (stopped.message.content, stopped.done_reason) == ("You said: ", "stop")
    seeded = [
        client.chat(
            model="llama3.2", messages=HI, options={"seed": 7, "temperature": 0.9, "bogus": 1}
        ).message.content
        for _ in range(2)
    ]
    assert seeded[0] == seeded[1] == "You said: hi there"
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="llama3.2", messages=HI, options={"num_predict": "x"})
    assert (err.value.status_code, err.value.error) == (
        500,
        'option "num_predict" must be of type integer',
    )


def test_thinking_model(client: ollama.Client) -> None:
    thought = client.chat(model="qwen3:8b", messages=HI, think=True)
    assert thought.message.thinking and thought.message.content == "You said: hi there"
    parts = list(client.chat(model="qwen3:8b", messages=HI, stream=True))  # think defaults to on
    assert parts[0].message.thinking and parts[0].message.content == ""
    assert client.chat(model="qwen3:8b", messages=HI, think=False).message.thinking is None


def test_generate(client: ollama.Client, http: httpx.Client) -> None:
    result = client.generate(model="llama3.2", prompt="tell me")
    assert (
        result.response == "You said: tell me" and result.done_reason == "stop" and result.context
    )
    streamed = list(client.generate(model="llama3.2", prompt="tell me", stream=True))
    assert "".join(p.response for p in streamed) == "You said: tell me" and streamed[-1].done
    assert client.generate(model="qwen3:8b", prompt="x", think=True).thinking
    load = http.post("/api/generate", json={"model": "llama3.2"}).json()
    assert (load["done"], load["done_reason"], load["response"]) == (True, "load", "")
    missing = http.post("/api/generate", json={"prompt": "x"})
    assert (missing.status_code, missing.json()) == (404, {"error": "model '' not found"})


def test_embed_and_legacy_embeddings(
    fake: FakeOllama, client: ollama.Client, http: httpx.Client
) -> None:
    single = client.embed(model="mxbai-embed-large", input="hello world")
    (vector,) = single.embeddings
    assert len(vector) == 8 and math.isclose(math.fsum(v * v for v in vector), 1, rel_tol=1e-5)
    assert (
        single.prompt_eval_count == 2
        and single.total_duration
        and single.model == "mxbai-embed-large"
    )

    pair = client.embed(model="mxbai-embed-large", input=["a", "hello world"]).embeddings
    assert len(pair) == 2 and pair[1] == vector and pair[0] != vector
    cut = client.embed(model="mxbai-embed-large", input="hello world", dimensions=4).embeddings[0]
    assert len(cut) == 4 and math.isclose(math.fsum(v * v for v in cut), 1, rel_tol=1e-5)
    empty = http.post("/api/embed", json={"model": "mxbai-embed-large", "input": []}).json()
    assert empty == {"model": "mxbai-embed-large", "embeddings": []}
    bad = http.post("/api/embed", json={"model": "mxbai-embed-large", "input": 3})
    assert (bad.status_code, bad.json()) == (400, {"error": "invalid input type"})

    legacy = client.embeddings(model="mxbai-embed-large", prompt="hello")
    assert len(legacy.embedding) == 8 and math.fsum(v * v for v in legacy.embedding) > 1.5
    assert http.post(
        "/api/embeddings", json={"model": "mxbai-embed-large", "prompt": ""}
    ).json() == {"embedding": []}
    fake.embedding_dim = 16
    assert len(client.embed(model="llama3.2", input="x").embeddings[0]) == 16


def test_request_validation(http: httpx.Client) -> None:
    def post(path: str, body: object) -> tuple[int, object]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = http.post(path, content=raw)
        return response.status_code, response.json()

    llama = {"model": "llama3.2", "stream": False}
    assert post("/api/chat", b"") == (400, {"error": "missing request body"})
    assert post("/api/chat", b'{"model": }') == (
        400,
        {"error": "invalid character '}' looking for beginning of value"},
    )
    assert post("/api/chat", b'{"model": "llama3.2"') == (400, {"error": "unexpected EOF"})
    assert post("/api/chat", {"messages": HI}) == (400, {"error": "model is required"})
    assert post("/api/chat", {**llama, "messages": "hi"}) == (
        400,
        {
            "error": "json: cannot unmarshal string into Go struct field ChatRequest.messages "
            "of type []api.Message"
        },
    )
    assert post("/api/chat", {**llama, "messages": HI, "keep_alive": "300"}) == (
        400,
        {"error": 'time: missing unit in duration "300"'},
    )
    assert (
        post("/api/chat", {**llama, "messages": [{"role": "user", "images": ["not base64!"]}]})[0]
        == 400
    )
    assert post("/api/chat", {**llama, "messages": HI, "think": "extreme"})[0] == 400
    assert post("/api/chat", {**llama, "messages": HI, "keep_alive": "1h30m"})[0] == 200
    ok, image_reply = post(
        "/api/chat", {**llama, "messages": [{"role": "user", "images": ["aGVsbG8="]}]}
    )
    assert (
        ok == 200 and image_reply["message"]["content"] == "Hello! How can I help you today?"
    )  # no content key

    load = http.post(
        "/api/chat", json={"model": "llama3.2", "messages": []}
    )  # stream omitted: still one object
    assert load.headers["content-type"] == "application/json; charset=utf-8"
    assert (load.json()["done_reason"], load.json()["message"]) == (
        "load",
        {"role": "assistant", "content": ""},
    )
    unload = post("/api/chat", {"model": "llama3.2", "keep_alive": 0})
    assert unload[1]["done_reason"] == "unload"  # type: ignore[index]


def test_queue_full_returns_busy(fake: FakeOllama) -> None:
    fake.max_concurrent, fake.max_queue = 1, 1
    fake.token_delay = 0.05
    fake.reply = numbered_reply(4)

    async def scenario() -> None:
        async with ollama.AsyncClient(host=fake.url) as aclient:

            async def consume() -> str:
                stream = await aclient.chat(model="llama3.2", messages=HI, stream=True)
                return "".join([part.message.content async for part in stream])

            running = [asyncio.create_task(consume()) for _ in range(2)]
            await asyncio.to_thread(
                fake.wait_until, lambda f: f.in_flight == 1 and f.queued == 1, 2
            )
            with pytest.raises(ollama.ResponseError) as err:
                await aclient.chat(model="llama3.2", messages=HI)
            assert (err.value.status_code, err.value.error) == (503, BUSY_MESSAGE)
            assert await asyncio.gather(*running) == ["Lorem ipsum dolor sit"] * 2

    asyncio.run(scenario())
    # The fake frees a slot after the client has read the answer's last byte.
    fake.wait_until(lambda f: f.in_flight == 0 and f.queued == 0)


# ----------------------------------------------------------------------------- lifecycle


def test_reset_restores_constructor_knobs() -> None:
    fake = FakeOllama(token_delay=0.01)
    fake.token_delay, fake.busy, fake.reply = 1.0, True, ["x"]
    fake.models = []
    fake.reset()
    assert (fake.token_delay, fake.busy, fake.reply) == (0.01, False, None) and len(
        fake.models
    ) == 5


def test_reset_aborts_leftover_requests(fake: FakeOllama, http: httpx.Client) -> None:
    fake.token_delay = 0.05
    fake.reply = numbered_reply(200)
    with http.stream("POST", "/api/chat", json={"model": "llama3.2", "messages": HI}) as response:
        lines = response.iter_lines()
        next(lines)
        fake.reset()
        assert (fake.in_flight, fake.requests, fake.streams) == (0, [], [])
        with pytest.raises(httpx.RemoteProtocolError):
            list(lines)


def test_stop_then_restart_on_same_port() -> None:
    with FakeOllama() as fake:
        port = fake.port
        fake.stop()
        with pytest.raises(ConnectionError):
            ollama.Client(host=fake.url).list()
        fake.start()
        assert fake.port == port and ollama.Client(host=fake.url).list().models


def test_cli_runs_standalone() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_ollama", "--port", "0", "--tokens", "3"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        reply = ollama.Client(host=url).chat(model="llama3.2", messages=HI)
        assert reply.message.content == "Lorem ipsum dolor"
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0


# --- logprobs (A.5: "only if requested") -------------------------------------------


def test_logprobs_come_only_when_asked_one_per_content_token(
    client: ollama.Client, http: httpx.Client
) -> None:
    assert client.chat(model="llama3.2", messages=HI).logprobs is None

    whole = client.chat(model="llama3.2", messages=HI, logprobs=True, top_logprobs=3)
    parts = list(client.generate(model="llama3.2", prompt="hi", logprobs=True, stream=True))
    raw = http.post(
        "/api/chat",
        json={"model": "llama3.2", "messages": HI, "stream": False, "logprobs": True},
    ).json()

    assert "".join(item.token for item in whole.logprobs) == whole.message.content
    for item in whole.logprobs:
        assert -1.0 <= item.logprob <= -0.2
        assert item.top_logprobs[0].token == item.token
        assert len(item.top_logprobs) == 3
        assert sum(math.exp(t.logprob) for t in item.top_logprobs) < 1
    for part in parts[:-1]:
        assert [item.token for item in part.logprobs] == [part.response]
    assert parts[-1].logprobs is None
    assert raw["logprobs"][0]["bytes"] == list(raw["logprobs"][0]["token"].encode())
    assert "top_logprobs" not in raw["logprobs"][0]


def test_top_logprobs_out_of_range_is_a_400(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="llama3.2", messages=HI, logprobs=True, top_logprobs=21)

    assert caught.value.status_code == 400
    assert caught.value.error == "top_logprobs must be between 0 and 20"
