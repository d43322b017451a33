"""Usage accounting: exact counts under concurrency, streamed answers included.

Records are buffered per process and written in batches; `usage_flush()` is
what a shutdown calls, and tests call it to write what is buffered before
they look. One test waits for the timer-driven flush instead.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from django.db.models import Sum

from keys.models import ApiKey, UsageRecord
from keys.policy import usage_flush
from keys.services import api_key_create
from keys.usage import usage_pending
from tests.fake_ollama import FakeOllama

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"
HELLO = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "Hi"}]}


def bearer(raw_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw_key}"}


def wait_until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Poll an observable condition, bounded (for work that ends after the response)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.01)


def test_200_concurrent_requests_give_usage_count_200_and_200_exact_records(
    gateway: str, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["a", " b", " c"]
    api_key, raw_key = api_key_create(name="load", rate_limit=1000)

    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=gateway, timeout=30, limits=limits) as client:
            return await asyncio.gather(
                *(client.post(CHAT, headers=bearer(raw_key), json=HELLO) for _ in range(200))
            )

    answers = asyncio.run(fire())
    usage_flush()

    assert [answer.status_code for answer in answers] == [200] * 200
    api_key.refresh_from_db()
    assert api_key.usage_count == 200
    assert api_key.last_used_at is not None
    records = UsageRecord.objects.filter(api_key=api_key)
    assert records.count() == 200
    totals = records.aggregate(prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"))
    assert totals["completion"] == 200 * 3
    assert totals["prompt"] == sum(a.json()["usage"]["prompt_tokens"] for a in answers)
    assert set(records.values_list("endpoint", "model", "status")) == {(CHAT, "qwen2.5:14b", 200)}
    assert len(fake_ollama.requests_to("/api/chat")) == 200


def test_a_streamed_answer_is_recorded_with_the_counts_of_its_final_chunk(
    http: httpx.Client, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["one", " two", " three", " four"]
    api_key, raw_key = api_key_create(name="stream")

    with http.stream("POST", CHAT, headers=bearer(raw_key), json={**HELLO, "stream": True}) as r:
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    usage_flush()

    final = json.loads(events[-2])
    assert events[-1] == "[DONE]" and final["done"] is True
    record = UsageRecord.objects.get(api_key=api_key)
    assert (record.status, record.model, record.error_code) == (200, "qwen2.5:14b", "")
    assert record.prompt_tokens == final["usage"]["prompt_tokens"] > 0
    assert record.completion_tokens == final["usage"]["completion_tokens"] == 4


def test_a_stream_cut_by_the_client_is_still_recorded(
    http: httpx.Client, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = [f" w{i}" for i in range(200)]
    fake_ollama.token_delay = 0.02
    api_key, raw_key = api_key_create(name="impatient")

    with http.stream("POST", CHAT, headers=bearer(raw_key), json={**HELLO, "stream": True}) as r:
        lines = r.iter_lines()
        next(lines)
    # The gateway learns of the disconnect asynchronously: wait for its record.
    wait_until(lambda: usage_pending() > 0 or UsageRecord.objects.filter(api_key=api_key).exists())
    usage_flush()

    record = UsageRecord.objects.get(api_key=api_key)
    assert record.status == 200
    assert record.error_code == "client_disconnected"
    # The final chunk, with the backend's counts, never came: what was relayed
    # before the client left is what it is charged.
    assert 1 <= record.completion_tokens < 200


def test_a_stream_that_fails_midway_is_recorded_with_its_error(
    http: httpx.Client, fake_ollama: FakeOllama
) -> None:
    fake_ollama.error_after_tokens = 2
    api_key, raw_key = api_key_create(name="failing")

    with http.stream("POST", CHAT, headers=bearer(raw_key), json={**HELLO, "stream": True}) as r:
        body = r.read().decode()
    usage_flush()

    assert '"error"' in body
    record = UsageRecord.objects.get(api_key=api_key)
    assert record.status == 200
    assert record.error_code  # the envelope's code of the mid-stream error


def test_errors_are_recorded_with_status_and_code(
    http: httpx.Client, fake_ollama: FakeOllama
) -> None:
    api_key, raw_key = api_key_create(name="errors", rate_limit=2)

    http.post(CHAT, headers=bearer(raw_key), json={"messages": []})
    http.get("/v1/models/no-such:1b", headers=bearer(raw_key))
    http.get("/v1/models/no-such:2b", headers=bearer(raw_key))
    http.get("/v1/models/no-such:3b", headers=bearer(raw_key))  # third in its group: over
    usage_flush()

    rows = list(
        UsageRecord.objects.filter(api_key=api_key)
        .order_by("created_at", "pk")
        .values_list("status", "error_code")
    )
    assert rows == [
        (422, "validation_error"),
        (404, "model_not_found"),
        (404, "model_not_found"),
        (429, "rate_limit_exceeded"),
    ]
    assert ApiKey.objects.get(pk=api_key.pk).usage_count == 4


def test_embeddings_are_recorded_with_their_prompt_tokens(
    http: httpx.Client, fake_ollama: FakeOllama
) -> None:
    api_key, raw_key = api_key_create(name="embed")

    answer = http.post(EMBED, headers=bearer(raw_key), json={"input": ["a b", "c d e"]})
    usage_flush()

    record = UsageRecord.objects.get(api_key=api_key)
    assert record.endpoint == EMBED and record.model == "mxbai-embed-large"
    assert record.prompt_tokens == answer.json()["usage"]["prompt_tokens"] > 0
    assert record.completion_tokens == 0


def test_requests_without_a_valid_key_leave_no_record(http: httpx.Client) -> None:
    http.get("/v1/models")
    http.get("/v1/models", headers=bearer("lai_guess"))
    usage_flush()

    assert UsageRecord.objects.count() == 0


def test_buffered_records_are_written_by_the_timer_without_an_explicit_flush(
    http: httpx.Client, fake_ollama: FakeOllama, settings
) -> None:
    settings.USAGE_FLUSH_INTERVAL = 0.05
    api_key, raw_key = api_key_create(name="timer")

    for _ in range(3):
        http.get("/v1/models", headers=bearer(raw_key))

    wait_until(lambda: ApiKey.objects.get(pk=api_key.pk).usage_count == 3)
    assert UsageRecord.objects.filter(api_key=api_key).count() == 3


@pytest.mark.django_db
def test_usage_count_moves_with_f_expressions_not_read_modify_write() -> None:
    from keys.usage import PendingUsage, usage_write

    api_key, _ = api_key_create(name="stale")
    stale = ApiKey.objects.get(pk=api_key.pk)  # a copy another worker might hold

    usage_write([PendingUsage(api_key_id=api_key.pk, endpoint="/v1/models", model="", status=200)])
    usage_write(
        [PendingUsage(api_key_id=stale.pk, endpoint="/v1/models", model="", status=200)] * 2
    )

    assert ApiKey.objects.get(pk=api_key.pk).usage_count == 3
