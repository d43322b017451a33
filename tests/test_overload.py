"""Overload: past GATEWAY_MAX_PENDING_REQUESTS a worker refuses at once instead of slowing all."""

from __future__ import annotations

import asyncio
import threading
import time

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
    # What a client backs off by: nothing left here until Retry-After.
    assert refused.headers["x-ratelimit-limit-requests"] == "2"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "1s"
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


def test_while_the_event_loop_runs_late_new_requests_are_refused_then_served_again(
    gateway: str, fake_ollama: FakeOllama, auth_headers: dict, settings
) -> None:
    from localai_site.asgi import django_asgi_app as handler

    settings.GATEWAY_SHED_LAG_MS = 100

    def stall_the_loop(seconds: float) -> threading.Event:
        """Block the gateway's event loop, as a worker with more work than CPU does."""
        stalled = threading.Event()

        def block() -> None:
            stalled.set()
            time.sleep(seconds)

        loop = next(loop for loop in handler._watchers if loop.is_running())
        loop.call_soon_threadsafe(block)
        assert stalled.wait(5)
        return stalled

    def wait_until(condition) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + 5
        while not condition():
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.005)

    with httpx.Client(base_url=gateway, headers=auth_headers, timeout=10) as client:
        before = client.post(CHAT, json=HELLO)  # also starts the lag watcher
        stall_the_loop(0.3)
        wait_until(lambda: handler.lag > 0.1)  # the watcher saw it run late
        stall_the_loop(0.3)  # still late when the next request arrives
        refused = client.post(CHAT, json=HELLO)
        wait_until(lambda: handler.lag < 0.1)  # caught up
        after = client.post(CHAT, json=HELLO)

    assert before.status_code == 200
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "backend_busy"
    assert "GATEWAY_SHED_LAG_MS" in refused.json()["error"]["message"]
    assert refused.headers["retry-after"] == "1"
    assert after.status_code == 200
    assert len(fake_ollama.requests_to("/api/chat")) == 2
