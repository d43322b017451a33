"""Overload: past GATEWAY_MAX_PENDING_REQUESTS a worker refuses at once instead of slowing all."""

from __future__ import annotations

import asyncio

import httpx

from tests.fake_ollama import FakeOllama

CHAT = "/v1/chat/completions"
HELLO = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "Hi"}]}


def test_past_the_cap_a_request_is_refused_at_once_while_the_others_are_answered(
    gateway: str, fake_ollama: FakeOllama, auth_headers: dict, settings
) -> None:
    settings.GATEWAY_MAX_PENDING_REQUESTS = 2
    fake_ollama.first_token_delay = 0.5  # the first two stay pending at the backend

    async def scenario() -> tuple[list[httpx.Response], httpx.Response, bool, httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway, headers=auth_headers, timeout=10) as client:
            waiting = [asyncio.create_task(client.post(CHAT, json=HELLO)) for _ in range(2)]
            await asyncio.to_thread(fake_ollama.wait_for_requests, 2, 5.0, "/api/chat")
            refused = await client.post(CHAT, json=HELLO)
            others_still_waiting = not any(task.done() for task in waiting)
            answered = list(await asyncio.gather(*waiting))
            after = await client.post(CHAT, json=HELLO)
            return answered, refused, others_still_waiting, after

    answered, refused, others_still_waiting, after = asyncio.run(scenario())

    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "backend_busy"
    assert "GATEWAY_MAX_PENDING_REQUESTS" in refused.json()["error"]["message"]
    assert refused.headers["retry-after"] == "1"
    assert others_still_waiting
    assert [response.status_code for response in answered] == [200, 200]
    assert after.status_code == 200
    assert len(fake_ollama.requests_to("/api/chat")) == 3  # the refused one never reached it


def test_a_stream_stops_counting_once_its_answer_has_started(
    gateway: str, fake_ollama: FakeOllama, auth_headers: dict, settings
) -> None:
    settings.GATEWAY_MAX_PENDING_REQUESTS = 1
    fake_ollama.reply = ["a", "b", "c"]
    fake_ollama.token_delay = 0.3

    with httpx.Client(base_url=gateway, headers=auth_headers, timeout=10) as client:
        with client.stream("POST", CHAT, json={**HELLO, "stream": True}) as stream:
            lines = stream.iter_lines()
            first = next(lines)
            during = client.get("/v1/models")
            rest = list(lines)

    assert first.startswith("data:")
    assert during.status_code == 200
    assert "data: [DONE]" in rest


def test_without_a_cap_nothing_is_refused(
    gateway: str, fake_ollama: FakeOllama, auth_headers: dict, settings
) -> None:
    settings.GATEWAY_MAX_PENDING_REQUESTS = 0
    fake_ollama.first_token_delay = 0.2

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway, headers=auth_headers, timeout=10) as client:
            return list(await asyncio.gather(*(client.post(CHAT, json=HELLO) for _ in range(20))))

    assert [response.status_code for response in asyncio.run(burst())] == [200] * 20
