"""The official `ollama` Python client, unchanged, against `/ollama/` on a live gateway.

`ollama.Client(host=".../ollama", headers={"Authorization": "Bearer <key>"})`:
sync and async, whole and streamed, with the fake Ollama behind the gateway
recording what the gateway passed on.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

import httpx
import ollama
import pytest
import pytest_asyncio

from tests.fake_ollama import FakeOllama

USER = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def client(gateway: str, auth_headers: dict) -> Iterator[ollama.Client]:
    with ollama.Client(host=f"{gateway}/ollama", headers=auth_headers, timeout=10) as c:
        yield c


@pytest_asyncio.fixture
async def aclient(gateway: str, auth_headers: dict) -> AsyncIterator[ollama.AsyncClient]:
    async with ollama.AsyncClient(host=f"{gateway}/ollama", headers=auth_headers) as c:
        yield c


def sent(fake: FakeOllama, path: str) -> dict:
    return fake.requests_to(path)[-1].json


# --- the root, models, version -------------------------------------------------------


def test_the_root_answers_like_ollama_without_a_key(http: httpx.Client) -> None:
    response = http.get("/ollama/")
    head = http.head("/ollama/")

    assert response.status_code == 200
    assert response.text == "Ollama is running"
    assert response.headers["content-type"].startswith("text/plain")
    assert head.status_code == 200


def test_it_lists_models_as_ollama_does(client: ollama.Client) -> None:
    models = client.list().models

    by_name = {m.model: m for m in models}
    qwen = by_name["qwen2.5:14b"]
    assert qwen.size == 9123456789
    assert qwen.details.family == "qwen2"
    assert qwen.details.parameter_size == "14.8B"
    assert qwen.details.quantization_level == "Q4_K_M"
    assert isinstance(qwen.modified_at, datetime)
    assert qwen.modified_at.isoformat().startswith("2025-05-11T08:30:12")
    assert len(qwen.digest) == 64
    assert "hf.co/org/name:Q4_K_M" in by_name


def test_it_shows_a_model_with_its_metadata(client: ollama.Client) -> None:
    shown = client.show("qwen2.5:14b")

    assert shown.modelinfo["qwen2.context_length"] == 32768
    assert shown.capabilities == ["completion", "tools"]
    assert shown.details.family == "qwen2"
    assert "<|im_start|>" in shown.template
    assert shown.license == "Apache License 2.0"
    assert "stop" in shown.parameters


def test_show_keeps_fields_ollama_python_does_not_model(
    http: httpx.Client, auth_headers: dict
) -> None:
    response = http.post("/ollama/api/show", headers=auth_headers, json={"name": "llama3.2"})

    body = response.json()
    assert response.status_code == 200
    assert body["model_info"]["general.architecture"] == "llama"
    assert body["modelfile"].startswith("# Modelfile generated")
    assert body["capabilities"] == ["completion", "tools", "vision"]


def test_ps_lists_the_models_a_request_loaded(client: ollama.Client) -> None:
    assert client.ps().models == []

    client.chat(model="qwen2.5:14b", messages=USER, keep_alive="10m")
    running = client.ps().models

    assert [m.model for m in running] == ["qwen2.5:14b"]
    assert running[0].size_vram > 0
    assert running[0].expires_at > datetime.now(running[0].expires_at.tzinfo)
    assert running[0].context_length == 4096


def test_version_is_the_backends(http: httpx.Client, auth_headers: dict) -> None:
    response = http.get("/ollama/api/version", headers=auth_headers)

    assert response.status_code == 200
    assert response.json() == {"version": "0.32.15"}


# --- chat ------------------------------------------------------------------------------


def test_it_chats_and_reports_ollamas_metrics(
    client: ollama.Client, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["Hello", " there"]

    response = client.chat(model="qwen2.5:14b", messages=USER)

    assert response.model == "qwen2.5:14b"
    assert response.message.role == "assistant"
    assert response.message.content == "Hello there"
    assert response.done is True
    assert response.done_reason == "stop"
    assert response.eval_count == 2
    assert response.prompt_eval_count == 12
    assert response.total_duration > 0
    assert response.eval_duration > 0
    assert response.created_at.endswith("Z")
    assert sent(fake_ollama, "/api/chat")["stream"] is False


def test_options_format_keep_alive_and_think_pass_through(
    client: ollama.Client, fake_ollama: FakeOllama
) -> None:
    client.chat(
        model="qwen3:8b",
        messages=USER,
        options={"num_predict": 5, "stop": ["END"], "seed": 7, "temperature": 0, "num_ctx": 8192},
        format="json",
        keep_alive="15m",
        think=False,
    )

    body = sent(fake_ollama, "/api/chat")
    assert body["options"] == {
        "num_predict": 5,
        "stop": ["END"],
        "seed": 7,
        "temperature": 0,
        "num_ctx": 8192,
    }
    assert body["format"] == "json"
    assert body["keep_alive"] == "15m"
    assert body["think"] is False


def test_it_streams_token_by_token(client: ollama.Client, fake_ollama: FakeOllama) -> None:
    fake_ollama.reply = [f"t{i} " for i in range(8)]
    fake_ollama.token_delay = 0.05
    start = time.monotonic()
    parts, arrivals = [], []

    for part in client.chat(model="qwen2.5:14b", messages=USER, stream=True):
        parts.append(part)
        arrivals.append(time.monotonic() - start)

    assert [p.message.content for p in parts[:-1]] == [f"t{i} " for i in range(8)]
    assert [p.done for p in parts] == [False] * 8 + [True]
    final = parts[-1]
    assert final.done_reason == "stop"
    assert final.eval_count == 8
    assert final.total_duration > 0
    # Lines arrive as the backend makes them, not in one burst at the end.
    assert arrivals[8] - arrivals[0] >= 0.05 * 7
    assert arrivals[4] - arrivals[0] >= 0.05 * 3
    assert sent(fake_ollama, "/api/chat")["stream"] is True


def test_the_ndjson_wire_format_is_ollamas(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["a", "b"]

    # No "stream" key: Ollama's default is to stream.
    response = http.post(
        "/ollama/api/chat", headers=auth_headers, json={"model": "qwen2.5:14b", "messages": USER}
    )

    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.text.endswith("}\n")
    lines = response.text.split("\n")[:-1]
    assert len(lines) == 3 and all(lines)
    assert '"total_duration"' not in lines[0]
    assert '"done":true' in lines[-1]


def test_thinking_comes_back_separate_from_content(
    client: ollama.Client, fake_ollama: FakeOllama
) -> None:
    fake_ollama.thinking_reply = ["Hmm,", " let me see."]
    fake_ollama.reply = ["Hi"]

    response = client.chat(model="qwen3:8b", messages=USER, think=True)

    assert response.message.thinking == "Hmm, let me see."
    assert response.message.content == "Hi"


def test_tool_calls_come_back_with_object_arguments(
    client: ollama.Client, fake_ollama: FakeOllama
) -> None:
    def get_weather(city: str) -> str:
        """Current weather for a city.

        Args:
          city: The city name
        """
        return "sunny"

    fake_ollama.tool_call = {"name": "get_weather", "arguments": {"city": "Paris"}}
    messages: list = [{"role": "user", "content": "Weather in Paris?"}]

    response = client.chat(model="qwen2.5:14b", messages=messages, tools=[get_weather])

    call = response.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert call.function.arguments == {"city": "Paris"}
    tools = sent(fake_ollama, "/api/chat")["tools"]
    assert tools[0]["function"]["name"] == "get_weather"
    assert tools[0]["function"]["parameters"]["required"] == ["city"]

    messages += [response.message, {"role": "tool", "content": "sunny", "tool_name": "get_weather"}]
    follow_up = client.chat(model="qwen2.5:14b", messages=messages, tools=[get_weather])

    history = sent(fake_ollama, "/api/chat")["messages"]
    assert history[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert history[2] == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}
    assert follow_up.message.content == "The tool returned: sunny"


def test_images_reach_the_backend_as_base64(client: ollama.Client, fake_ollama: FakeOllama) -> None:
    image = b"\x89PNG\r\n\x1a\n not really a picture"

    client.chat(
        model="llama3.2", messages=[{"role": "user", "content": "What is it?", "images": [image]}]
    )

    assert sent(fake_ollama, "/api/chat")["messages"][0]["images"] == [
        base64.b64encode(image).decode()
    ]


def test_an_image_string_naming_a_file_on_the_gateway_is_never_read(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    # Valid base64 alphabet and length, and an existing path: ollama-python
    # would upload the file's bytes if handed this string.
    path = "///proc/self/environ"

    response = http.post(
        "/ollama/api/chat",
        headers=auth_headers,
        json={"model": "llama3.2", "stream": False, "messages": [{**USER[0], "images": [path]}]},
    )

    assert response.status_code == 200
    images = sent(fake_ollama, "/api/chat")["messages"][0]["images"]
    assert base64.b64decode(images[0]) == base64.b64decode(path)


# --- generate ---------------------------------------------------------------------------


def test_it_generates_whole_and_streamed_with_context(
    client: ollama.Client, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["Paris", "."]

    whole = client.generate(model="qwen2.5:14b", prompt="Capital of France?", system="Be terse")
    parts = list(
        client.generate(
            model="qwen2.5:14b", prompt="Capital of France?", system="Be terse", stream=True
        )
    )

    assert whole.response == "Paris."
    assert whole.done_reason == "stop"
    assert whole.eval_count == 2
    assert len(whole.context) > 0
    assert "".join(p.response for p in parts) == "Paris."
    assert parts[-1].done is True
    assert parts[-1].context == whole.context
    body = fake_ollama.requests_to("/api/generate")[0].json
    assert body["system"] == "Be terse"
    assert body["stream"] is False


def test_generate_passes_raw_suffix_and_context_on(
    client: ollama.Client, fake_ollama: FakeOllama
) -> None:
    client.generate(model="qwen2.5:14b", prompt="Hi", context=[1, 2, 3], options={"seed": 3})

    body = sent(fake_ollama, "/api/generate")
    assert body["context"] == [1, 2, 3]
    assert body["options"] == {"seed": 3}


# --- embeddings -------------------------------------------------------------------------


def test_embed_returns_normalised_vectors_in_order_from_one_call(
    client: ollama.Client, fake_ollama: FakeOllama
) -> None:
    result = client.embed(model="mxbai-embed-large", input=["first text", "second"], dimensions=4)

    assert result.model == "mxbai-embed-large"
    assert len(result.embeddings) == 2
    assert all(len(v) == 4 for v in result.embeddings)
    assert math.isclose(math.sqrt(sum(x * x for x in result.embeddings[0])), 1.0, rel_tol=1e-5)
    assert result.prompt_eval_count == 3
    calls = fake_ollama.requests_to("/api/embed")
    assert len(calls) == 1
    assert calls[0].json["input"] == ["first text", "second"]
    assert calls[0].json["dimensions"] == 4


def test_an_empty_embed_input_answers_no_vectors(client: ollama.Client) -> None:
    assert client.embed(model="mxbai-embed-large", input="").embeddings == []


def test_legacy_embeddings_return_the_raw_vector(
    client: ollama.Client, fake_ollama: FakeOllama
) -> None:
    result = client.embeddings(model="mxbai-embed-large", prompt="hello world")

    assert len(result.embedding) == 8
    assert math.sqrt(sum(x * x for x in result.embedding)) > 1.5  # not normalised
    assert sent(fake_ollama, "/api/embeddings") == {
        "model": "mxbai-embed-large",
        "prompt": "hello world",
    }


# --- async client, tools configured with an Ollama URL -------------------------------------


@pytest.mark.asyncio
async def test_the_async_client_lists_chats_streams_and_embeds(
    aclient: ollama.AsyncClient, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["Hi", " you"]

    models = await aclient.list()
    whole = await aclient.chat(model="qwen2.5:14b", messages=USER)
    pieces = [
        p.message.content
        async for p in await aclient.chat(model="qwen2.5:14b", messages=USER, stream=True)
    ]
    vectors = await aclient.embed(model="mxbai-embed-large", input="x y")

    assert "qwen2.5:14b" in {m.model for m in models.models}
    assert whole.message.content == "Hi you"
    assert pieces == ["Hi", " you", ""]
    assert len(vectors.embeddings[0]) == 8


def test_a_curl_style_form_body_is_read_as_json(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    # `curl http://host/ollama/api/generate -d '{...}'` sends a form content type.
    response = http.post(
        "/ollama/api/generate",
        headers={**auth_headers, "Content-Type": "application/x-www-form-urlencoded"},
        content=b'{"model": "qwen2.5:14b", "prompt": "Hi", "stream": false}',
    )

    assert response.status_code == 200, response.text
    assert response.json()["response"] == "You said: Hi"


def test_ollamas_openai_mirror_is_served_under_ollama_v1(
    http: httpx.Client, auth_headers: dict
) -> None:
    response = http.post(
        "/ollama/v1/chat/completions",
        headers=auth_headers,
        json={"model": "qwen2.5:14b", "messages": USER},
    )

    assert response.status_code == 200
    assert response.json()["object"] == "chat.completion"


def test_ollama_calls_are_recorded_on_the_same_usage_path(
    gateway: str, fake_ollama: FakeOllama, db
) -> None:
    from keys.models import UsageRecord
    from keys.policy import usage_flush
    from keys.services import api_key_create

    fake_ollama.reply = ["a", " b"]
    key, raw = api_key_create(name="metered")
    with ollama.Client(host=f"{gateway}/ollama", headers={"Authorization": f"Bearer {raw}"}) as c:
        parts = list(c.chat(model="qwen2.5:14b", messages=USER, stream=True))
        with pytest.raises(ollama.ResponseError):
            c.chat(model="missing:1b", messages=USER)
    usage_flush()

    ok, missing = UsageRecord.objects.filter(api_key=key).order_by("created_at", "id")
    assert (ok.endpoint, ok.model, ok.status) == ("/ollama/api/chat", "qwen2.5:14b", 200)
    assert ok.prompt_tokens == parts[-1].prompt_eval_count
    assert ok.completion_tokens == 2
    assert (missing.model, missing.status, missing.error_code) == (
        "missing:1b",
        404,
        "model_not_found",
    )


def test_ollama_api_key_in_the_environment_is_enough(
    gateway: str, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the README says: OLLAMA_HOST + OLLAMA_API_KEY, no code changes.
    monkeypatch.setenv("OLLAMA_API_KEY", api_key)
    monkeypatch.setenv("OLLAMA_HOST", f"{gateway}/ollama")

    with ollama.Client() as client:
        assert "qwen2.5:14b" in {m.model for m in client.list().models}
