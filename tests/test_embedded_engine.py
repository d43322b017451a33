"""The embedded engine with its real models, end to end over a real socket.

No Ollama anywhere (OLLAMA_HOST points at a port where nothing listens):
SmolLM2 135M answers chats and completions, all-MiniLM embeds. Decoding is
greedy with short answers, so each answer is compared with the engine
called directly (llama-cpp-python in the test process, same file, same
sampling) and must be the same text with the same token counts.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import openai
import pytest
from websockets.asyncio.client import connect

from keys.models import UsageRecord
from keys.policy import usage_flush
from tests.conftest import ENGINE_TEST_THREADS, EngineModels, ServerThread

pytestmark = pytest.mark.engine

CHAT_MODEL = "smollm2:135m"
EMBEDDING_MODEL = "all-minilm"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
MAX_TOKENS = 12
TIMEOUT = 60


class Reference:
    """The engine called directly: what the gateway's answers must equal."""

    def __init__(self, models: EngineModels) -> None:
        import llama_cpp

        threads = ENGINE_TEST_THREADS  # as the gateway's engine in these tests
        self.chat = llama_cpp.Llama(
            models.chat_path, n_ctx=4096, n_threads=threads, n_threads_batch=threads, verbose=False
        )
        self.embedding = llama_cpp.Llama(
            models.embedding_path,
            embedding=True,
            n_ctx=0,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )

    def answer(self, messages: list[dict[str, str]], max_tokens: int = MAX_TOKENS) -> dict:
        # The gateway's defaults are Ollama's (repeat_penalty 1.1); greedy otherwise.
        return self.chat.create_chat_completion(
            messages=messages, temperature=0.0, repeat_penalty=1.1, max_tokens=max_tokens
        )

    def text(self, messages: list[dict[str, str]], max_tokens: int = MAX_TOKENS) -> str:
        return self.answer(messages, max_tokens)["choices"][0]["message"]["content"]

    def usage(self, messages: list[dict[str, str]], max_tokens: int = MAX_TOKENS) -> tuple:
        usage = self.answer(messages, max_tokens)["usage"]
        return usage["prompt_tokens"], usage["completion_tokens"]

    def embedding_tokens(self, text: str) -> int:
        return len(self.embedding.tokenize(text.encode()))


@pytest.fixture(scope="module")
def reference(engine_models: EngineModels) -> Iterator[Reference]:
    reference = Reference(engine_models)
    yield reference
    reference.chat.close()
    reference.embedding.close()


@pytest.fixture
def engine_gateway(transactional_db, engine: EngineModels, dead_ollama: str) -> Iterator[str]:
    """A live gateway with the embedded backend and no Ollama at all."""
    server = ServerThread()
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def http(engine_gateway: str, auth_headers: dict) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=engine_gateway, headers=auth_headers, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
def sdk(engine_gateway: str, api_key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{engine_gateway}/openai/v1", api_key=api_key, max_retries=0, timeout=TIMEOUT
    ) as client:
        yield client


@pytest.fixture
def ollama_client(engine_gateway: str, auth_headers: dict) -> Iterator[ollama.Client]:
    with ollama.Client(
        host=f"{engine_gateway}/ollama", headers=auth_headers, timeout=TIMEOUT
    ) as client:
        yield client


def sse_events(response: httpx.Response) -> list[dict[str, Any]]:
    return [
        json.loads(line[6:])
        for line in response.iter_lines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def embedded_engine(model: str) -> Any:
    """The gateway's own engine object for `model` (the server runs in this process)."""
    from gateway.service import backend_get

    pool = backend_get()
    return pool.members["embedded"].engine(model)


# --- models ---------------------------------------------------------------------------


def test_it_lists_both_models_with_their_real_details(http: httpx.Client) -> None:
    response = http.get("/ollama/api/tags")

    assert response.status_code == 200
    models = {m["model"]: m for m in response.json()["models"]}
    assert set(models) == {CHAT_MODEL, "all-minilm:latest"}
    chat, embedding = models[CHAT_MODEL], models["all-minilm:latest"]
    assert chat["details"]["family"] == "llama"
    assert chat["details"]["quantization_level"] == "Q4_1"
    assert chat["details"]["parameter_size"].endswith("M")
    assert chat["size"] > 50_000_000
    assert len(chat["digest"]) == 64
    assert embedding["details"]["family"] == "bert"
    assert embedding["details"]["quantization_level"] == "F16"


def test_it_describes_a_model_with_its_context_length_and_capabilities(
    ollama_client: ollama.Client,
) -> None:
    chat = ollama_client.show(CHAT_MODEL)
    embedding = ollama_client.show(EMBEDDING_MODEL)

    assert chat.capabilities == ["completion"]
    assert chat.modelinfo["llama.context_length"] == 8192
    assert embedding.capabilities == ["embedding"]
    assert embedding.modelinfo["bert.context_length"] == 512


# --- chat: native, OpenAI, Ollama -----------------------------------------------------


def test_the_native_api_answers_as_the_engine_does_with_its_token_counts(
    http: httpx.Client, reference: Reference, api_key: str
) -> None:
    body = {"model": CHAT_MODEL, "messages": QUESTION, "temperature": 0, "max_tokens": MAX_TOKENS}

    response = http.post("/v1/chat/completions", json=body)
    usage_flush()

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["message"]["content"] == reference.text(QUESTION)
    prompt_tokens, completion_tokens = reference.usage(QUESTION)
    assert answer["usage"]["prompt_tokens"] == prompt_tokens
    assert answer["usage"]["completion_tokens"] == completion_tokens
    record = UsageRecord.objects.get(endpoint="/v1/chat/completions")
    assert (record.prompt_tokens, record.completion_tokens) == (prompt_tokens, completion_tokens)
    assert record.model == CHAT_MODEL


def test_the_native_api_streams_the_same_answer_with_counts_on_the_last_event(
    http: httpx.Client, reference: Reference
) -> None:
    body = {"model": CHAT_MODEL, "messages": QUESTION, "temperature": 0, "max_tokens": MAX_TOKENS}

    with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
        events = sse_events(response)
    usage_flush()

    assert response.status_code == 200
    pieces = [e["message"]["content"] for e in events if not e.get("done")]
    assert len(pieces) > 1
    assert "".join(pieces) == reference.text(QUESTION)
    last = events[-1]
    assert last["done"] is True
    prompt_tokens, completion_tokens = reference.usage(QUESTION)
    assert (last["usage"]["prompt_tokens"], last["usage"]["completion_tokens"]) == (
        prompt_tokens,
        completion_tokens,
    )
    record = UsageRecord.objects.get(endpoint="/v1/chat/completions")
    assert (record.prompt_tokens, record.completion_tokens) == (prompt_tokens, completion_tokens)


def test_the_openai_sdk_gets_the_engines_answer_whole_and_streamed(
    sdk: openai.OpenAI, reference: Reference
) -> None:
    whole = sdk.chat.completions.create(
        model=CHAT_MODEL, messages=QUESTION, temperature=0, seed=7, max_tokens=MAX_TOKENS
    )
    stream = sdk.chat.completions.create(
        model=CHAT_MODEL,
        messages=QUESTION,
        temperature=0,
        seed=7,
        max_tokens=MAX_TOKENS,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    expected = reference.text(QUESTION)
    prompt_tokens, completion_tokens = reference.usage(QUESTION)
    assert whole.choices[0].message.content == expected
    assert whole.usage.prompt_tokens == prompt_tokens
    assert whole.usage.completion_tokens == completion_tokens
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert chunks[-1].usage.completion_tokens == completion_tokens


def test_a_fixed_seed_repeats_a_sampled_answer(sdk: openai.OpenAI) -> None:
    def sampled() -> str:
        answer = sdk.chat.completions.create(
            model=CHAT_MODEL, messages=QUESTION, temperature=1.0, seed=1234, max_tokens=16
        )
        return answer.choices[0].message.content

    assert sampled() == sampled()


def test_stop_sequences_end_the_answer_before_them(
    sdk: openai.OpenAI, reference: Reference
) -> None:
    full = reference.text(QUESTION, max_tokens=24)
    stop = full.split()[2]  # a word from the middle of the greedy answer

    answer = sdk.chat.completions.create(
        model=CHAT_MODEL, messages=QUESTION, temperature=0, max_tokens=24, stop=[stop]
    )

    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content == full[: full.index(stop)]


def test_the_ollama_client_chats_and_generates_through_the_gateway(
    ollama_client: ollama.Client, reference: Reference
) -> None:
    options = {"temperature": 0, "num_predict": MAX_TOKENS, "seed": 3}

    chat = ollama_client.chat(model=CHAT_MODEL, messages=QUESTION, options=options)
    parts = list(
        ollama_client.generate(
            model=CHAT_MODEL, prompt=QUESTION[0]["content"], options=options, stream=True
        )
    )

    prompt_tokens, completion_tokens = reference.usage(QUESTION)
    assert chat.message.content == reference.text(QUESTION)
    assert (chat.prompt_eval_count, chat.eval_count) == (prompt_tokens, completion_tokens)
    assert "".join(p.response for p in parts) == reference.text(QUESTION)
    assert parts[-1].done and parts[-1].eval_count == completion_tokens
    assert parts[-1].prompt_eval_count == prompt_tokens
    assert parts[-1].context and len(parts[-1].context) == prompt_tokens + completion_tokens


# --- the WebSocket chat ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_websocket_conversation_sees_its_first_turn_in_the_second(
    engine_gateway: str, api_key: str, reference: Reference
) -> None:
    url = engine_gateway.replace("http://", "ws://") + "/ws/chat/engine"
    turns = ["My name is Ada. Say hello to me.", "What is my name?"]
    ends = []
    async with connect(
        url, proxy=None, additional_headers={"Authorization": f"Bearer {api_key}"}
    ) as ws:
        for message in turns:
            frame = {
                "type": "chat",
                "message": message,
                "model": CHAT_MODEL,
                "temperature": 0,
                "max_tokens": MAX_TOKENS,
            }
            await ws.send(json.dumps(frame))
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                assert event["type"] != "error", event
                if event["type"] == "assistant_end":
                    ends.append(event)
                    break

    first = [{"role": "user", "content": turns[0]}]
    assert ends[0]["full_response"] == reference.text(first)
    second = [
        *first,
        {"role": "assistant", "content": ends[0]["full_response"]},
        {"role": "user", "content": turns[1]},
    ]
    assert ends[1]["full_response"] == reference.text(second)
    assert ends[1]["usage"]["prompt_tokens"] == reference.usage(second)[0]
    assert ends[1]["usage"]["prompt_tokens"] > ends[0]["usage"]["total_tokens"]


# --- cancel -------------------------------------------------------------------------------


def test_a_client_leaving_mid_stream_stops_generation_between_tokens(
    http: httpx.Client,
) -> None:
    body = {
        "model": CHAT_MODEL,
        "temperature": 0.7,
        "max_tokens": 3000,
        "stream": True,
        "messages": [{"role": "user", "content": "Count from 1 to 1000, one per line."}],
    }
    engine = embedded_engine(CHAT_MODEL)

    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()
        received = [line for line, _ in zip(lines, range(6), strict=False)]
        # Leaving the block closes the connection mid-answer.

    assert len(received) == 6
    # 3000 tokens take ~40 s here: the engine is free again long before that.
    assert engine.idle.wait(timeout=20)
    job = engine.last_job
    assert job is not None and job.cancelled.is_set()
    assert job.tokens_after_cancel <= 1  # stopped at the next token, not later

    after = http.post(
        "/v1/chat/completions",
        json={"model": CHAT_MODEL, "messages": QUESTION, "temperature": 0, "max_tokens": 4},
    )
    assert after.status_code == 200
    assert after.json()["usage"]["completion_tokens"] == 4


# --- embeddings -----------------------------------------------------------------------


def test_embeddings_have_384_dimensions_repeat_and_place_kitten_nearer_cat(
    http: httpx.Client, reference: Reference
) -> None:
    texts = ["cat", "kitten", "stock market"]

    first = http.post("/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": texts})
    again = http.post("/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": texts})

    assert first.status_code == 200, first.text
    cat, kitten, market = first.json()["embeddings"]
    assert len(cat) == len(kitten) == len(market) == 384
    assert again.json()["embeddings"] == first.json()["embeddings"]
    assert cosine(cat, kitten) > cosine(cat, market) + 0.2
    assert first.json()["usage"]["prompt_tokens"] == sum(map(reference.embedding_tokens, texts))


def test_the_openai_sdk_embeds_with_the_engines_vectors(sdk: openai.OpenAI, reference: Reference):
    result = sdk.embeddings.create(model=EMBEDDING_MODEL, input="a small cat")

    direct = reference.embedding.embed("a small cat", normalize=True)
    assert cosine(result.data[0].embedding, direct) > 0.9999
    assert result.usage.prompt_tokens == reference.embedding_tokens("a small cat")


# --- refusals: clear 4xx, never a crash -----------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        # Perhaps on the Ollama that is down: not a 404 (which would say it is gone).
        ("/v1/chat/completions", {"model": "nope:1b", "messages": QUESTION}, 503, "OLLAMA_HOST"),
        (
            "/ollama/api/chat",
            {
                "model": CHAT_MODEL,
                "messages": QUESTION,
                "stream": False,
                "options": {"num_ctx": 100000},
            },
            400,
            "context length",
        ),
        (
            "/ollama/api/chat",
            {
                "model": CHAT_MODEL,
                "messages": QUESTION,
                "stream": False,
                "options": {"num_predict": -5},
            },
            400,
            "max_tokens",
        ),
        (
            "/ollama/api/chat",
            {"model": CHAT_MODEL, "messages": QUESTION, "stream": False, "options": {"num_gpu": 1}},
            400,
            "num_gpu",
        ),
        (
            "/ollama/api/chat",
            {"model": EMBEDDING_MODEL, "messages": QUESTION, "stream": False},
            400,
            "does not support chat",
        ),
        (
            "/openai/v1/chat/completions",
            {
                "model": CHAT_MODEL,
                "messages": QUESTION,
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "object"}},
                    }
                ],
            },
            400,
            "does not support tools",
        ),
        ("/v1/embeddings", {"model": CHAT_MODEL, "input": ["x"]}, 400, "embeddings"),
    ],
)
def test_requests_the_engine_cannot_serve_get_a_clear_4xx(
    http: httpx.Client, path: str, body: dict, status: int, words: str
) -> None:
    response = http.post(path, json=body)

    assert response.status_code == status, response.text
    assert words in response.text
    assert (
        http.post(
            "/v1/chat/completions",
            json={"model": CHAT_MODEL, "messages": QUESTION, "max_tokens": 1},
        ).status_code
        == 200
    )


def test_json_format_gives_json(http: httpx.Client) -> None:
    body = {
        "model": CHAT_MODEL,
        "stream": False,
        "format": "json",
        "options": {"temperature": 0, "num_predict": 40},
        "messages": [{"role": "user", "content": "Give a JSON object with a name."}],
    }

    response = http.post("/ollama/api/chat", json=body)

    assert response.status_code == 200, response.text
    content = response.json()["message"]["content"]
    if response.json()["done_reason"] == "stop":
        json.loads(content)
    else:  # cut by num_predict: still a JSON prefix
        assert content.lstrip().startswith(("{", "["))


# --- no Ollama: readiness, defaults, the chat page ----------------------------------------


def test_readyz_is_ready_while_the_engine_serves_and_names_each_backend(
    engine_gateway: str,
) -> None:
    response = httpx.get(f"{engine_gateway}/readyz", timeout=TIMEOUT)

    assert response.status_code == 200, response.text
    backends = response.json()["backends"]
    assert backends["embedded"]["state"] == "ok"
    assert backends["ollama"]["state"] == "failing"


def test_a_request_without_a_model_falls_back_to_the_embedded_chat_model(
    http: httpx.Client,
) -> None:
    response = http.post(
        "/v1/chat/completions", json={"messages": QUESTION, "temperature": 0, "max_tokens": 4}
    )

    assert response.status_code == 200, response.text
    assert response.json()["model"] == CHAT_MODEL


def test_the_chat_page_offers_only_chat_models(http: httpx.Client) -> None:
    response = http.get("/chat/models")

    assert response.status_code == 200
    assert response.json() == {"models": [CHAT_MODEL], "default": CHAT_MODEL}


def test_the_engine_serves_another_keys_request_ahead_of_a_backlog(
    engine_gateway: str,
) -> None:
    """The fair scheduler in front of the engine's one context, with real tokens:
    A queues ten chats, then B's one is served next (or right after the chat
    already running), not after A's backlog."""
    import time

    from gateway import service
    from keys.services import api_key_create

    _, flooder = api_key_create(name="flood", rate_limit=10_000)
    _, person = api_key_create(name="person", rate_limit=10_000)
    body = {"model": CHAT_MODEL, "messages": QUESTION, "max_tokens": 8, "temperature": 0}
    finished: list[str] = []
    at_arrival: list[int] = []

    def waiting() -> int:
        return sum(sum(s.waiting.values()) for s in service.scheduler_get().stats())

    async def run() -> None:
        async with httpx.AsyncClient(base_url=engine_gateway, timeout=TIMEOUT * 4) as client:

            async def call(raw_key: str, who: str) -> None:
                answer = await client.post(
                    "/v1/chat/completions",
                    headers={"Authorization": f"Bearer {raw_key}"},
                    json=body,
                )
                assert answer.status_code == 200, answer.text
                assert answer.json()["usage"]["completion_tokens"] > 0  # real tokens
                finished.append(who)

            flood = [asyncio.create_task(call(flooder, "a")) for _ in range(10)]
            deadline = time.monotonic() + TIMEOUT
            while waiting() < 5:  # A's backlog is in the gateway's queue
                assert time.monotonic() < deadline, "A's requests never queued"
                await asyncio.sleep(0.01)
            at_arrival.append(len(finished))
            await asyncio.gather(*flood, call(person, "b"))

    asyncio.run(run())

    served_before_b = finished.index("b") - at_arrival[0]
    assert served_before_b <= 2, finished
    assert finished.count("a") == 10


# --- log probabilities and n choices ---------------------------------------------------


def test_greedy_logprobs_rank_the_chosen_token_first(ollama_client: ollama.Client) -> None:
    # Greedy and no repeat penalty: each token is the raw distribution's most likely.
    options = {"temperature": 0, "repeat_penalty": 1.0, "num_predict": MAX_TOKENS}

    chat = ollama_client.chat(
        model=CHAT_MODEL, messages=QUESTION, options=options, logprobs=True, top_logprobs=5
    )

    assert len(chat.logprobs) == chat.eval_count
    assert "".join(item.token for item in chat.logprobs) == chat.message.content
    for item in chat.logprobs:
        top = item.top_logprobs
        assert len(top) == 5
        assert top[0].token == item.token
        assert top[0].logprob == pytest.approx(item.logprob)
        assert item.logprob <= 0
        assert [t.logprob for t in top] == sorted((t.logprob for t in top), reverse=True)
        assert sum(math.exp(t.logprob) for t in top) <= 1 + 1e-9


def test_streamed_openai_logprobs_come_with_their_tokens(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model=CHAT_MODEL,
        messages=QUESTION,
        temperature=0,
        max_tokens=MAX_TOKENS,
        logprobs=True,
        top_logprobs=3,
        stream=True,
    )

    text, tokens = "", []
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.logprobs is not None:
                tokens.extend(choice.logprobs.content)
    assert text
    assert "".join(item.token for item in tokens) == text
    for item in tokens:
        assert item.logprob <= 0
        assert len(item.top_logprobs) == 3
        assert bytes(item.bytes).decode("utf-8", errors="replace") == item.token
        assert sum(math.exp(t.logprob) for t in item.top_logprobs) <= 1 + 1e-9


def test_n_choices_are_n_generations_of_the_engine(sdk: openai.OpenAI) -> None:
    one = sdk.chat.completions.create(
        model=CHAT_MODEL, messages=QUESTION, temperature=0, max_tokens=MAX_TOKENS
    )
    answer = sdk.chat.completions.create(
        model=CHAT_MODEL, messages=QUESTION, temperature=0, max_tokens=MAX_TOKENS, n=2
    )

    assert [choice.index for choice in answer.choices] == [0, 1]
    # Greedy: every choice is the single answer.
    assert {choice.message.content for choice in answer.choices} == {one.choices[0].message.content}
    assert answer.usage.completion_tokens == 2 * one.usage.completion_tokens
    assert answer.usage.prompt_tokens == 2 * one.usage.prompt_tokens
