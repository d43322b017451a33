"""The scheduler in front of a live gateway: one backend slot shared fairly."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from gateway import service
from keys.models import UsageRecord
from keys.policy import usage_flush
from keys.services import api_key_create
from tests.fake_ollama import FakeOllama

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = "/v1/chat/completions"
HELLO = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "Hi"}]}


def bearer(raw_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw_key}"}


@pytest.fixture
def one_slot(settings, fake_ollama: FakeOllama) -> FakeOllama:
    settings.OLLAMA_NUM_PARALLEL = 1
    settings.SCHEDULER_NOTICE_INTERVAL = 0.2
    return fake_ollama


def _waiting() -> int:
    scheduler = service.scheduler_get()
    return sum(sum(stats.waiting.values()) for stats in scheduler.stats())


async def _until(condition) -> None:  # type: ignore[no-untyped-def]
    """Wait for a condition another task or thread brings about (30 s at most)."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_one_request_of_another_key_is_served_before_a_backlog(
    gateway: str, one_slot: FakeOllama
) -> None:
    one_slot.stall = 0.2  # every request holds the one slot for 200 ms
    _, flooder = api_key_create(name="flood", rate_limit=10_000)
    _, person = api_key_create(name="person", rate_limit=10_000)
    finished: list[str] = []
    at_arrival: list[int] = []

    async def run() -> None:
        async with httpx.AsyncClient(base_url=gateway, timeout=120) as client:

            async def call(raw_key: str, who: str) -> None:
                answer = await client.post(CHAT, headers=bearer(raw_key), json=HELLO)
                assert answer.status_code == 200, answer.text
                finished.append(who)

            flood = [asyncio.create_task(call(flooder, "a")) for _ in range(20)]
            await _until(lambda: _waiting() >= 5)
            at_arrival.append(len(finished))
            person_call = asyncio.create_task(call(person, "b"))
            await asyncio.gather(*flood, person_call)

    asyncio.run(run())

    # At least 5 of A's requests were waiting when B's arrived: first come,
    # first served would finish all of them first. Fair queueing serves B
    # next, or right after the one request already granted.
    served_before_b = finished.index("b") - at_arrival[0]
    assert served_before_b <= 2, finished
    assert one_slot.peak_in_flight == 1  # the backend never ran two at once


def test_a_waiting_stream_hears_that_it_waits_and_then_gets_its_answer(
    gateway: str, one_slot: FakeOllama
) -> None:
    import openai

    one_slot.reply = ["slow", " answer"]
    one_slot.token_delay = 0.5  # the first stream holds the slot for about a second
    _, first = api_key_create(name="first")
    api_key, second = api_key_create(name="second")

    async def run() -> list[str]:
        async with httpx.AsyncClient(base_url=gateway, timeout=60) as client:
            holder = asyncio.create_task(
                client.post(CHAT, headers=bearer(first), json={**HELLO, "stream": True})
            )
            await _until(lambda: len(one_slot.active_streams) == 1)
            lines: list[str] = []
            async with client.stream(
                "POST", CHAT, headers=bearer(second), json={**HELLO, "stream": True}
            ) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    lines.append(line)
            await holder
            return lines

    lines = asyncio.run(run())

    notices = [line for line in lines if line.startswith(": queued")]
    assert notices and notices[0] == ": queued, position 1"
    data = [line for line in lines if line.startswith("data: ")]
    assert data[-1] == "data: [DONE]"
    assert lines.index(notices[-1]) < lines.index(data[0])
    # The OpenAI SDK reads the same kind of stream, comments and all.
    with openai.OpenAI(base_url=f"{gateway}/openai/v1", api_key=second, max_retries=0) as sdk:
        text = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in sdk.chat.completions.create(
                model="qwen2.5:14b", messages=HELLO["messages"], stream=True
            )
            if chunk.choices
        )
    assert text == "slow answer"
    usage_flush()
    records = list(UsageRecord.objects.filter(api_key=api_key).order_by("id"))
    assert records[0].backend == "ollama"
    assert records[0].queued_ms > 100


def test_clients_that_leave_the_queue_cost_the_backend_nothing(
    gateway: str, one_slot: FakeOllama
) -> None:
    one_slot.stall = 2.0  # the one slot stays busy
    _, raw_key = api_key_create(name="leaver", rate_limit=10_000)

    async def run() -> None:
        async with httpx.AsyncClient(base_url=gateway, timeout=60) as client:
            holder = asyncio.create_task(client.post(CHAT, headers=bearer(raw_key), json=HELLO))
            await _until(lambda: len(one_slot.requests) == 1)
            leavers = [
                asyncio.create_task(client.post(CHAT, headers=bearer(raw_key), json=HELLO))
                for _ in range(50)
            ]
            await _until(lambda: _waiting() == 50)
            for task in leavers:
                task.cancel()
            await asyncio.gather(*leavers, return_exceptions=True)
            await _until(lambda: _waiting() == 0)
            await holder

    asyncio.run(run())

    assert len(one_slot.requests) == 1  # the backend never saw the 50
