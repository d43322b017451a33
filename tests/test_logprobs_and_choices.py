"""`logprobs` and `n` as clients use them: the official `openai` SDK (chat and
completions, on /openai/v1 and Ollama's /ollama/v1 mirror) and the official
`ollama` client (chat and generate), against a live gateway and the fake
Ollama (whose log probabilities are deterministic: `fake_logprobs`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator

import httpx
import ollama
import openai
import pytest

from keys.models import UsageRecord
from keys.policy import usage_flush
from keys.services import api_key_create
from tests.fake_ollama import FakeOllama, fake_logprobs

MODEL = "qwen2.5:14b"
USER = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def client(gateway: str, api_key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway}/openai/v1", api_key=api_key, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def ollama_client(gateway: str, api_key: str) -> ollama.Client:
    return ollama.Client(host=f"{gateway}/ollama", headers={"Authorization": f"Bearer {api_key}"})


# --- logprobs: OpenAI chat ------------------------------------------------------------


def test_chat_logprobs_give_each_tokens_logprob_and_its_top_alternatives(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=USER, logprobs=True, top_logprobs=3
    )

    choice = completion.choices[0]
    content = choice.logprobs.content
    assert "".join(item.token for item in content) == choice.message.content
    expected = fake_logprobs([item.token for item in content], 3)
    assert [item.logprob for item in content] == [entry["logprob"] for entry in expected]
    for item in content:
        assert item.logprob <= 0
        assert item.bytes == list(item.token.encode("utf-8"))
        assert len(item.top_logprobs) == 3
        assert item.top_logprobs[0].token == item.token
    sent = fake_ollama.requests_to("/api/chat")[-1].json
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 3)


def test_chat_without_logprobs_asks_for_none_and_answers_null(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=USER)

    assert completion.choices[0].logprobs is None
    assert "logprobs" not in fake_ollama.requests_to("/api/chat")[-1].json


def test_streamed_chat_chunks_carry_their_tokens_logprobs(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=USER, logprobs=True, top_logprobs=2, stream=True
    )

    text, tokens = "", []
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.logprobs is not None:
                tokens.extend(choice.logprobs.content)
    assert text == "You said: Say hello"
    assert "".join(item.token for item in tokens) == text
    assert all(len(item.top_logprobs) == 2 for item in tokens)


def test_top_logprobs_without_logprobs_is_a_400(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=USER, top_logprobs=2)

    assert caught.value.param == "top_logprobs"
    assert fake_ollama.requests_to("/api/chat") == []


def test_the_ollama_v1_mirror_answers_logprobs_too(
    gateway: str, api_key: str, fake_ollama: FakeOllama
) -> None:
    with openai.OpenAI(base_url=f"{gateway}/ollama/v1", api_key=api_key, max_retries=0) as sdk:
        completion = sdk.chat.completions.create(
            model=MODEL, messages=USER, logprobs=True, top_logprobs=1
        )

    content = completion.choices[0].logprobs.content
    assert "".join(item.token for item in content) == completion.choices[0].message.content


def test_the_ollama_v1_mirror_serves_n_choices_too(
    gateway: str, api_key: str, fake_ollama: FakeOllama
) -> None:
    with openai.OpenAI(base_url=f"{gateway}/ollama/v1", api_key=api_key, max_retries=0) as sdk:
        completion = sdk.completions.create(model=MODEL, prompt="Hi there", n=2)

    assert [choice.index for choice in completion.choices] == [0, 1]
    assert len(fake_ollama.requests_to("/api/generate")) == 2


# --- logprobs: OpenAI completions (legacy) ----------------------------------------


def test_completion_logprobs_are_the_legacy_shape(client: openai.OpenAI) -> None:
    completion = client.completions.create(model=MODEL, prompt="Hi there", logprobs=2)

    choice = completion.choices[0]
    logprobs = choice.logprobs
    assert "".join(logprobs.tokens) == choice.text
    assert len(logprobs.token_logprobs) == len(logprobs.tokens)
    assert all(value <= 0 for value in logprobs.token_logprobs)
    for token, value, top in zip(
        logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs, strict=True
    ):
        assert top[token] == value
        assert len(top) <= 3  # the 2 most likely and the chosen one
    offsets = [
        sum(len(token) for token in logprobs.tokens[:i]) for i in range(len(logprobs.tokens))
    ]
    assert logprobs.text_offset == offsets


def test_streamed_completion_offsets_continue_across_chunks(client: openai.OpenAI) -> None:
    stream = client.completions.create(model=MODEL, prompt="Hi there", logprobs=0, stream=True)

    text, offsets = "", []
    for chunk in stream:
        for choice in chunk.choices:
            if choice.logprobs is not None:
                assert choice.logprobs.text_offset[0] == len(text)
                offsets.extend(choice.logprobs.text_offset)
            text += choice.text
    assert text == "You said: Hi there"
    assert len(offsets) == 4


# --- logprobs: the ollama client ----------------------------------------------------


def test_ollama_chat_and_generate_answer_logprobs(
    ollama_client: ollama.Client, fake_ollama: FakeOllama
) -> None:
    chat = ollama_client.chat(model=MODEL, messages=USER, logprobs=True, top_logprobs=2)
    generate = ollama_client.generate(model=MODEL, prompt="Hi there", logprobs=True)

    assert "".join(item.token for item in chat.logprobs) == chat.message.content
    assert all(len(item.top_logprobs) == 2 for item in chat.logprobs)
    assert [item.model_dump(exclude_none=True) for item in chat.logprobs] == [
        {key: value for key, value in entry.items() if key != "bytes"}
        | (
            {"top_logprobs": [{"token": t["token"], "logprob": t["logprob"]} for t in top]}
            if (top := entry.get("top_logprobs"))
            else {}
        )
        for entry in fake_logprobs([item.token for item in chat.logprobs], 2)
    ]
    assert "".join(item.token for item in generate.logprobs) == generate.response
    assert fake_ollama.requests_to("/api/generate")[-1].json["logprobs"] is True


def test_ollama_streams_carry_logprobs_per_content_line(ollama_client: ollama.Client) -> None:
    parts = list(ollama_client.chat(model=MODEL, messages=USER, logprobs=True, stream=True))

    content = [part for part in parts if part.message.content]
    assert content
    for part in content:
        assert [item.token for item in part.logprobs] == [part.message.content]
    assert not parts[-1].logprobs


def test_ollama_top_logprobs_out_of_range_is_ollamas_400(
    ollama_client: ollama.Client, fake_ollama: FakeOllama
) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        ollama_client.chat(model=MODEL, messages=USER, logprobs=True, top_logprobs=21)

    assert caught.value.status_code == 400
    assert "top_logprobs must be between 0 and 20" in caught.value.error
    assert fake_ollama.requests_to("/api/chat") == []


def test_ollama_without_logprobs_answers_none(ollama_client: ollama.Client) -> None:
    assert ollama_client.chat(model=MODEL, messages=USER).logprobs is None


# --- n choices --------------------------------------------------------------------


def test_n_gives_n_choices_each_a_generation_of_its_own_seed(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    single = client.chat.completions.create(model=MODEL, messages=USER)
    completion = client.chat.completions.create(model=MODEL, messages=USER, n=3, seed=7)

    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    assert all(choice.message.content == "You said: Say hello" for choice in completion.choices)
    seeds = sorted(
        request.json["options"]["seed"] for request in fake_ollama.requests_to("/api/chat")[1:]
    )
    assert seeds == [7, 8, 9]
    assert completion.usage.prompt_tokens == 3 * single.usage.prompt_tokens
    assert completion.usage.completion_tokens == 3 * single.usage.completion_tokens


def test_n_completions_with_logprobs(client: openai.OpenAI, fake_ollama: FakeOllama) -> None:
    completion = client.completions.create(model=MODEL, prompt="Hi there", n=2, logprobs=1)

    assert [choice.index for choice in completion.choices] == [0, 1]
    assert all("".join(c.logprobs.tokens) == c.text for c in completion.choices)
    assert len(fake_ollama.requests_to("/api/generate")) == 2


def test_streamed_n_interleaves_choices_each_with_its_index_and_finish(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.token_delay = 0.005
    stream = client.chat.completions.create(
        model=MODEL,
        messages=USER,
        n=3,
        stream=True,
        logprobs=True,
        stream_options={"include_usage": True},
    )

    texts: dict[int, str] = defaultdict(str)
    finishes: dict[int, list[str]] = defaultdict(list)
    usages = []
    for chunk in stream:
        if chunk.usage is not None:
            usages.append(chunk.usage)
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index].append(choice.finish_reason)
    assert dict(texts) == {i: "You said: Say hello" for i in range(3)}
    assert dict(finishes) == {i: ["stop"] for i in range(3)}
    assert len(usages) == 1
    assert usages[0].completion_tokens == 3 * 4
    assert len(fake_ollama.requests_to("/api/chat")) == 3


def test_n_over_the_maximum_is_a_400_naming_n(
    client: openai.OpenAI, fake_ollama: FakeOllama, settings
) -> None:
    settings.GATEWAY_MAX_CHOICES = 2
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=USER, n=3)

    assert caught.value.param == "n"
    assert "GATEWAY_MAX_CHOICES" in caught.value.message
    assert fake_ollama.requests_to("/api/chat") == []


def test_n_counts_against_the_rate_limit_before_anything_is_generated(
    gateway: str, fake_ollama: FakeOllama
) -> None:
    _, raw_key = api_key_create(name="five a minute", rate_limit=5)
    with openai.OpenAI(base_url=f"{gateway}/openai/v1", api_key=raw_key, max_retries=0) as sdk:
        sdk.chat.completions.create(model=MODEL, messages=USER, n=4)
        with pytest.raises(openai.RateLimitError):
            sdk.chat.completions.create(model=MODEL, messages=USER, n=2)

    assert len(fake_ollama.requests_to("/api/chat")) == 4


def test_one_usage_record_holds_the_tokens_of_all_n_choices(
    gateway: str, fake_ollama: FakeOllama
) -> None:
    key, raw_key = api_key_create(name="usage", rate_limit=100)
    with openai.OpenAI(base_url=f"{gateway}/openai/v1", api_key=raw_key, max_retries=0) as sdk:
        completion = sdk.chat.completions.create(model=MODEL, messages=USER, n=3)
    usage_flush()

    records = list(UsageRecord.objects.filter(api_key=key))
    assert len(records) == 1
    assert records[0].prompt_tokens == completion.usage.prompt_tokens
    assert records[0].completion_tokens == completion.usage.completion_tokens == 3 * 4


def test_a_choice_failing_mid_stream_ends_the_stream_with_the_error_event(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    fake_ollama.error_after_tokens = 2
    body = {"model": MODEL, "messages": USER, "n": 2, "stream": True}

    response = http.post("/openai/v1/chat/completions", json=body, headers=auth_headers)

    events = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    assert events[-1] != "[DONE]"
    assert "error" in json.loads(events[-1])
    assert "[DONE]" not in events


def test_a_client_leaving_an_n_stream_closes_every_backend_stream(
    gateway: str, api_key: str, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["tick"] * 500
    fake_ollama.token_delay = 0.02
    body = {"model": MODEL, "messages": USER, "n": 3, "stream": True}
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=gateway, timeout=10) as http:
        with http.stream("POST", "/openai/v1/chat/completions", json=body, headers=headers) as r:
            lines = r.iter_lines()
            seen: set[int] = set()
            for line in lines:
                if line.startswith("data: {"):
                    for choice in json.loads(line[6:])["choices"]:
                        if choice["delta"].get("content"):
                            seen.add(choice["index"])
                if seen == {0, 1, 2}:
                    break

    ended = [fake_ollama.wait_for_stream_end(timeout=5) for _ in range(3)]
    assert [record.outcome for record in ended] == ["client_disconnected"] * 3
    assert all(record.tokens_sent < 500 for record in ended)


# --- Responses API: not served, said so ----------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [{"top_logprobs": 3}, {"include": ["message.output_text.logprobs"]}],
)
def test_the_responses_api_refuses_logprobs_clearly(
    client: openai.OpenAI, fake_ollama: FakeOllama, extra: dict
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="Say hello", **extra)

    assert "chat/completions" in caught.value.message
    assert fake_ollama.requests_to("/api/chat") == []
