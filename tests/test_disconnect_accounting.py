"""A client that leaves early still pays for what it got, and every call is on record.

Streams cut before their final chunk (which carries the backend's counts)
are charged the tokens the relay delivered, against the usage record and the
key's token budget; a request abandoned before its answer began leaves its
one usage record too.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from keys.models import UsageRecord
from keys.policy import usage_flush
from keys.services import api_key_create
from keys.usage import usage_pending
from tests.fake_ollama import FakeOllama

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "Hi"}]}


def bearer(raw_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw_key}"}


def wait_for_records(api_key, count: int, timeout: float = 30.0) -> list[UsageRecord]:  # type: ignore[no-untyped-def]
    """The gateway learns of a disconnect asynchronously: wait until its records exist."""
    deadline = time.monotonic() + timeout
    while True:
        usage_flush()
        records = list(UsageRecord.objects.filter(api_key=api_key).order_by("id"))
        if len(records) >= count and not usage_pending():
            return records
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(records)} of {count} usage records after {timeout} s")
        time.sleep(0.02)


def _read_tokens_then_leave(http: httpx.Client, raw_key: str, wanted: int) -> httpx.Response | int:
    """Read `wanted` token events of a native stream, then close the connection.

    Returns how many were read, or the response when it was refused.
    """
    body = {**HELLO, "stream": True}
    received = 0
    with http.stream("POST", "/v1/chat/completions", headers=bearer(raw_key), json=body) as r:
        if r.status_code != 200:
            r.read()
            return r
        for line in r.iter_lines():
            if line.startswith("data: {") and '"done":false' in line:
                received += 1
                if received == wanted:
                    break
    return received


def test_it_charges_streams_cut_before_their_end_and_refuses_once_the_budget_is_spent(
    http: httpx.Client, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = [f" t{i}" for i in range(100)]
    fake_ollama.token_delay = 0.002
    api_key, raw_key = api_key_create(name="leaver", tokens_per_minute=300, rate_limit=1000)

    delivered: list[int] = []
    refused = None
    for _ in range(20):
        # The previous cut stream must be on record before the next is admitted.
        wait_for_records(api_key, len(delivered))
        outcome = _read_tokens_then_leave(http, raw_key, 95)
        if isinstance(outcome, httpx.Response):
            refused = outcome
            break
        delivered.append(outcome)
    records = wait_for_records(api_key, len(delivered) + 1)

    # Before the fix, 20 of 20 were served and nothing was charged. Now 3 x 95
    # tokens fit a 300-token minute and the 4th stream is still admitted
    # (285 < 300); after it, the budget is spent.
    assert delivered == [95] * 4
    assert refused is not None and refused.status_code == 429
    assert "Token rate limit exceeded" in refused.json()["error"]["message"]
    streams = [r for r in records if r.status == 200]
    assert [r.error_code for r in streams] == ["client_disconnected"] * 4
    for record in streams:
        assert abs(record.completion_tokens - 95) <= 95 * 0.05, record.completion_tokens
    assert records[-1].status == 429


def test_a_request_abandoned_before_its_answer_began_leaves_one_record(
    gateway: str, fake_ollama: FakeOllama
) -> None:
    fake_ollama.stall = 30  # the backend holds the answer back
    api_key, raw_key = api_key_create(name="impatient")

    for body in (HELLO, {**HELLO, "stream": True}):
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{gateway}/v1/chat/completions",
                headers=bearer(raw_key),
                json=body,
                timeout=httpx.Timeout(30, read=0.5),
            )
    records = wait_for_records(api_key, 2)

    assert [(r.status, r.model, r.error_code) for r in records] == [
        (499, "qwen2.5:14b", "client_disconnected")
    ] * 2


def test_a_websocket_answer_cancelled_midway_is_charged_what_it_sent(
    gateway: str, fake_ollama: FakeOllama
) -> None:
    import asyncio

    from websockets.asyncio.client import connect

    fake_ollama.reply = [f" w{i}" for i in range(200)]
    fake_ollama.token_delay = 0.01
    api_key, raw_key = api_key_create(name="canceller")
    url = gateway.replace("http://", "ws://") + "/ws/chat/cut"

    async def chat_then_cancel() -> int:
        async with connect(url, additional_headers=bearer(raw_key), open_timeout=30) as ws:
            await ws.send(json.dumps({"type": "chat", "message": "hi"}))
            chunks = 0
            while chunks < 10:
                frame = json.loads(await ws.recv())
                chunks += frame["type"] == "assistant_chunk"
            await ws.send(json.dumps({"type": "cancel"}))
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "assistant_chunk":
                    chunks += 1
                if frame["type"] == "assistant_end":
                    assert frame["cancelled"] is True
                    return chunks

    sent = asyncio.run(chat_then_cancel())
    (record,) = wait_for_records(api_key, 1)

    assert (record.status, record.error_code) == (499, "cancelled")
    assert record.completion_tokens == sent
