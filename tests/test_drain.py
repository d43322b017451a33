"""Drain on shutdown, with real processes and a real SIGTERM.

A uvicorn process started as `make run` starts it serves 20 live streams
(native SSE, OpenAI SSE, Ollama NDJSON, WebSocket) from a fake Ollama that
writes slowly. On SIGTERM it must say it is not ready, refuse new requests
with 503 and Retry-After, let the streams that can finish within the drain
window finish, end the others with their surface's `server_shutting_down`
error (never a success terminator), and write the usage of all 20 before it
exits. A whole (non-streamed) answer still awaited at the end of the window
gets a 503 in the envelope.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.fake_ollama import FakeOllama
from tests.processes import migrated_with_key, server_env, server_process

# The window the server gets, and the fake's pace: a short answer (40 tokens,
# ~8 s) ends inside the window, a long one (300 tokens, ~60 s) does not.
WINDOW = 15.0
TOKEN_DELAY = 0.2
SHORT = " ".join(["short"] * 38)
LONG = " ".join(["long"] * 298)
KINDS = ("native", "openai", "ollama", "websocket")
# Per kind: the first two streams are short, the other three long.
PLAN = [(kind, SHORT if n < 2 else LONG) for kind in KINDS for n in range(5)]
TIMEOUT = 30.0
USAGE_ENDPOINTS = {
    "native": "/v1/chat/completions",
    "openai": "/openai/v1/chat/completions",
    "ollama": "/ollama/api/chat",
    "websocket": "ws_chat",
}


@dataclass
class Stream:
    """What one client saw: its events in order, and when each arrived."""

    kind: str
    message: str
    events: list[Any] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None
    # A WebSocket that finished asks for another answer during the drain.
    refused_followup: dict[str, Any] | None = None

    def saw(self, event: Any) -> None:
        self.events.append(event)
        self.times.append(time.monotonic())
        self.started.set()

    @property
    def short(self) -> bool:
        return self.message == SHORT


def _chat_body(stream: Stream) -> dict[str, Any]:
    messages = [{"role": "user", "content": stream.message}]
    if stream.kind == "ollama":
        return {"model": "qwen2.5:14b", "messages": messages}
    return {"model": "qwen2.5:14b", "messages": messages, "stream": True}


async def _http_stream(base_url: str, auth: dict[str, str], stream: Stream) -> None:
    async with (
        httpx.AsyncClient(base_url=base_url, headers=auth, timeout=TIMEOUT) as client,
        client.stream("POST", USAGE_ENDPOINTS[stream.kind], json=_chat_body(stream)) as response,
    ):
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if stream.kind == "ollama" and line:
                stream.saw(json.loads(line))
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")
                stream.saw(data if data == "[DONE]" else json.loads(data))


async def _ws_stream(base_url: str, auth: dict[str, str], stream: Stream, n: int) -> None:
    url = base_url.replace("http://", "ws://", 1) + f"/ws/chat/drain-{n}"
    async with connect(url, additional_headers=auth, proxy=None, open_timeout=TIMEOUT) as ws:
        await ws.send(json.dumps({"type": "chat", "message": stream.message}))
        try:
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                if frame["type"] in ("user_message", "assistant_start"):
                    continue
                stream.saw(frame)
                if frame["type"] == "assistant_end":
                    # Done within the window: a new answer is refused now.
                    await ws.send(json.dumps({"type": "chat", "message": "one more"}))
                    stream.refused_followup = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                if frame["type"] in ("assistant_end", "error"):
                    break
            await asyncio.wait_for(ws.recv(), TIMEOUT)  # until the server closes
        except ConnectionClosed as closed:
            stream.close_code = closed.rcvd.code if closed.rcvd else None


async def _whole_answer(base_url: str, auth: dict[str, str]) -> httpx.Response:
    """A non-streamed answer too long for the window."""
    body = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": LONG}]}
    async with httpx.AsyncClient(base_url=base_url, headers=auth, timeout=WINDOW + TIMEOUT) as c:
        return await c.post("/v1/chat/completions", json=body)


async def _until_ready_says_503(base_url: str) -> httpx.Response:
    """Poll /readyz until it answers 503: at once, once the signal has arrived."""
    deadline = time.monotonic() + 5
    answer: httpx.Response | Exception | None = None
    while time.monotonic() < deadline:
        try:
            async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
                answer = await client.get("/readyz")
        except httpx.TransportError as exc:  # e.g. a listener no longer accepting
            answer = exc
        if isinstance(answer, httpx.Response) and answer.status_code == 503:
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError(f"/readyz never answered 503 after SIGTERM; last: {answer!r}")


async def _new_requests(base_url: str, auth: dict[str, str]) -> dict[str, Any]:
    """New requests during the drain, each on a connection of its own."""
    seen: dict[str, Any] = {"readyz": await _until_ready_says_503(base_url)}
    for name, path in [
        ("healthz", "/healthz"),
        ("native", "/v1/chat/completions"),
        ("openai", "/openai/v1/chat/completions"),
        ("ollama", "/ollama/api/chat"),
    ]:
        async with httpx.AsyncClient(base_url=base_url, headers=auth, timeout=TIMEOUT) as client:
            if path == "/healthz":
                seen[name] = await client.get(path)
            else:
                body = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "hi"}]}
                seen[name] = await client.post(path, json=body)
    url = base_url.replace("http://", "ws://", 1) + "/ws/chat/late"
    async with connect(url, additional_headers=auth, proxy=None, open_timeout=TIMEOUT) as ws:
        seen["websocket"] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        try:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        except ConnectionClosed as closed:
            seen["websocket_close"] = closed.rcvd.code if closed.rcvd else None
    return seen


@pytest.mark.timeout(WINDOW + 120)
def test_sigterm_drains_20_live_streams_then_exits_with_their_usage_written(
    tmp_path: Path, fake_ollama: FakeOllama
) -> None:
    database = tmp_path / "drain.sqlite3"
    env = server_env(
        DATABASE_URL=f"sqlite:///{database}",
        REDIS_URL="",
        OLLAMA_HOST=fake_ollama.url,
        GATEWAY_DRAIN_SECONDS=str(WINDOW),
        # Nothing is written on a timer: the records in the database after the
        # exit are those the drain and the shutdown wrote.
        USAGE_FLUSH_INTERVAL="3600",
        LOG_LEVEL="WARNING",
    )
    raw_key, _ = migrated_with_key(env, "drain", rate_limit=1000)
    auth = {"Authorization": f"Bearer {raw_key}"}
    fake_ollama.token_delay = TOKEN_DELAY
    streams = [Stream(kind, message) for kind, message in PLAN]

    async def scenario(base_url: str, process: Any) -> tuple[float, dict[str, Any]]:
        whole = asyncio.create_task(_whole_answer(base_url, auth))
        clients = [
            asyncio.create_task(
                _ws_stream(base_url, auth, s, n)
                if s.kind == "websocket"
                else _http_stream(base_url, auth, s)
            )
            for n, s in enumerate(streams)
        ]
        try:
            await asyncio.wait_for(asyncio.gather(*(s.started.wait() for s in streams)), TIMEOUT)
            # ...and the whole answer is being generated too.
            await asyncio.to_thread(fake_ollama.wait_for_requests, 21, TIMEOUT, "/api/chat")
            sigterm_at = time.monotonic()
            process.send_signal(signal.SIGTERM)
            during = await _new_requests(base_url, auth)
            await asyncio.wait_for(asyncio.gather(*clients), WINDOW + TIMEOUT)
            during["whole"] = await whole
        finally:
            whole.cancel()
            for client in clients:
                client.cancel()
            await asyncio.gather(*clients, return_exceptions=True)
        return sigterm_at, during

    # As `make run` starts it (Makefile): uvicorn's own graceful shutdown after the drain.
    with server_process(env=env, server="uvicorn", args=["--timeout-graceful-shutdown", "5"]) as (
        base_url,
        process,
    ):
        sigterm_at, during = asyncio.run(scenario(base_url, process))
        exit_code = process.wait(timeout=TIMEOUT)
    assert exit_code in (0, -signal.SIGTERM)

    # Readiness says 503 while the listener still answers; liveness stays 200.
    readyz = during["readyz"]
    assert readyz.status_code == 503, readyz.text
    assert readyz.json()["error"]["code"] == "server_shutting_down"
    assert during["healthz"].status_code == 200
    # New requests: 503 with Retry-After, in each surface's error shape.
    for name in ("native", "openai", "ollama"):
        response = during[name]
        assert response.status_code == 503, (name, response.text)
        assert int(response.headers["Retry-After"]) >= 1
    assert during["native"].json()["error"]["code"] == "server_shutting_down"
    assert during["openai"].json()["error"]["code"] == "server_shutting_down"
    assert "shutting down" in during["ollama"].json()["error"]
    assert during["websocket"]["type"] == "error"
    assert during["websocket"]["code"] == "server_shutting_down"
    assert during["websocket_close"] == 1012
    # A whole answer still awaited when the window ends: 503, not a cut connection.
    assert during["whole"].status_code == 503, during["whole"].text
    assert during["whole"].json()["error"]["code"] == "server_shutting_down"
    assert int(during["whole"].headers["Retry-After"]) >= 1

    for s in streams:
        last = s.events[-1]
        # Every stream was live when the signal came, and went on streaming.
        assert s.times[0] < sigterm_at < s.times[-1], (s.kind, s.short)
        if s.short:
            _assert_finished(s)
        else:
            _assert_cut_with_shutdown_error(s, last)
            # ...not before the window was over.
            assert s.times[-1] - sigterm_at >= WINDOW - 1, (s.kind, s.times[-1] - sigterm_at)

    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT endpoint, error_code, completion_tokens FROM keys_usagerecord"
        ).fetchall()
    expected = sorted(
        [(USAGE_ENDPOINTS[s.kind], "" if s.short else "server_shutting_down") for s in streams]
        + [("/v1/chat/completions", "server_shutting_down")]  # the whole answer
    )
    assert sorted((endpoint, code) for endpoint, code, _ in rows) == expected
    assert all(tokens > 0 for _, code, tokens in rows if code == "")


def _assert_finished(s: Stream) -> None:
    events = s.events
    if s.kind == "native":
        assert events[-1] == "[DONE]" and events[-2]["done"] is True
    elif s.kind == "openai":
        assert events[-1] == "[DONE]"
        assert events[-2]["choices"][0]["finish_reason"] == "stop"
    elif s.kind == "ollama":
        assert events[-1]["done"] is True and "error" not in events[-1]
    else:
        assert events[-1]["type"] == "assistant_end"
        assert s.refused_followup is not None
        assert s.refused_followup["type"] == "error"
        assert s.refused_followup["code"] == "server_shutting_down"
        assert s.close_code == 1012
    assert not any(isinstance(e, dict) and "error" in e for e in events)


def _assert_cut_with_shutdown_error(s: Stream, last: Any) -> None:
    assert "[DONE]" not in s.events
    if s.kind in ("native", "openai"):
        assert last["error"]["code"] == "server_shutting_down", last
    elif s.kind == "ollama":
        assert "shutting down" in last["error"], last
        assert not any(event.get("done") for event in s.events)
    else:
        assert last["type"] == "error" and last["code"] == "server_shutting_down", last
        assert not any(frame["type"] == "assistant_end" for frame in s.events)
        assert s.close_code == 1012


# --- the interruption itself, in process ------------------------------------------


@pytest.fixture
def fresh_drain() -> Any:
    from gateway import drain

    drain.drain_reset()
    yield drain
    drain.drain_reset()


class _Backend:
    """A backend stream that yields one chunk, then waits; says whether it was closed."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.closed = asyncio.Event()

    async def chunks(self) -> Any:
        try:
            yield "first"
            await self.answer()
        finally:
            self.closed.set()

    async def answer(self) -> None:
        self.waiting.set()
        await asyncio.Event().wait()  # a token that never comes


async def _second_chunk(stream: Any) -> Any:
    await anext(stream)
    return await anext(stream)


@pytest.mark.asyncio
async def test_the_end_of_the_window_turns_a_waiting_stream_into_server_shutting_down(
    fresh_drain: Any,
) -> None:
    from gateway.errors import ServerShuttingDownError

    backend = _Backend()
    reading = asyncio.create_task(_second_chunk(fresh_drain.stream_drainable(backend.chunks())))
    fresh_drain.task_track(reading)
    await asyncio.wait_for(backend.waiting.wait(), TIMEOUT)
    await fresh_drain.drain_run(window=0)
    with pytest.raises(ServerShuttingDownError):
        await reading
    assert backend.closed.is_set()
    assert fresh_drain._state.work == 0
    # The task is not left cancelled: it can still send its error event.
    assert reading.cancelling() == 0


@pytest.mark.asyncio
async def test_a_cancellation_that_is_not_the_drains_stays_a_cancellation(
    fresh_drain: Any,
) -> None:
    backend = _Backend()
    reading = asyncio.create_task(_second_chunk(fresh_drain.stream_drainable(backend.chunks())))
    await asyncio.wait_for(backend.waiting.wait(), TIMEOUT)
    # A client disconnect and the end of the window at the same moment: the
    # disconnect's cancellation must not be swallowed.
    fresh_drain.task_track(reading)
    reading.cancel()
    await fresh_drain.drain_run(window=0)
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert backend.closed.is_set()


@pytest.mark.asyncio
async def test_a_whole_answer_still_awaited_at_the_end_of_the_window_is_refused(
    fresh_drain: Any,
) -> None:
    from gateway.errors import ServerShuttingDownError

    backend = _Backend()
    answering = asyncio.create_task(fresh_drain.call_drainable(backend.answer()))
    fresh_drain.task_track(answering)
    await asyncio.wait_for(backend.waiting.wait(), TIMEOUT)
    await fresh_drain.drain_run(window=0)
    with pytest.raises(ServerShuttingDownError):
        await answering
    with pytest.raises(ServerShuttingDownError):
        fresh_drain.admit()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_request_still_queued_for_a_slot_at_the_end_of_the_window_is_refused(
    fresh_drain: Any, fake_ollama: Any, settings: Any
) -> None:
    """The backend's one slot is held by work this drain cannot interrupt (as
    another process's request holds a slot shared through Redis); a request
    waits for it in the gateway's queue. At the end of the window it gets
    `server_shutting_down` instead of waiting on until the server drops it."""
    from gateway import service
    from gateway.backends import ChatRequest
    from gateway.errors import ServerShuttingDownError

    settings.OLLAMA_NUM_PARALLEL = 1
    hello = ChatRequest(model="qwen2.5:14b", messages=[{"role": "user", "content": "Hi"}])
    name, _ = await service.backend_get().route(hello.model)
    scheduler = service.scheduler_get()
    holder = await scheduler.acquire(
        resource=f"{name}/qwen2.5:14b", slots=1, caller=service.INTERNAL_CALLER
    )

    def waiting() -> int:
        return sum(sum(s.waiting.values()) for s in scheduler.stats())

    queued = asyncio.create_task(service.chat_complete(request=hello))
    fresh_drain.task_track(queued)
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while waiting() != 1:
        assert asyncio.get_running_loop().time() < deadline, "the request never queued"
        await asyncio.sleep(0.01)

    await fresh_drain.drain_run(window=0)

    with pytest.raises(ServerShuttingDownError):
        await asyncio.wait_for(queued, TIMEOUT)
    assert waiting() == 0
    assert not [r for r in fake_ollama.requests if r.path == "/api/chat"]
    await holder.release()
