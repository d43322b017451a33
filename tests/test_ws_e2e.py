"""The WebSocket chat end to end, over real sockets.

A real WebSocket client (the `websockets` library) talks to the live gateway
(`gateway`: uvicorn in a thread; and once, a real daphne subprocess), which
talks to the fake Ollama through the real `ollama` client. Nothing above the
sockets is mocked.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth import get_user_model
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.fake_ollama import FakeOllama
from tests.processes import server_env, start_server

ROOT = Path(__file__).resolve().parent.parent
# A bound for each answer, not a wait: a fresh server process imports Django
# before its first handshake (8 s seen on a loaded machine).
TIMEOUT = 60


def ws_url(base_url: str, session_id: str = "e2e") -> str:
    return base_url.replace("http://", "ws://", 1) + f"/ws/chat/{session_id}"


def ws_connect(url: str, **kwargs: Any) -> connect:
    # proxy=None: loopback only, whatever the environment says.
    return connect(url, proxy=None, open_timeout=TIMEOUT, **kwargs)


async def receive(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def receive_until(ws: ClientConnection, *types: str) -> list[dict[str, Any]]:
    frames = []
    while True:
        frames.append(await receive(ws))
        if frames[-1]["type"] in types:
            return frames


async def send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


async def close_code(ws: ClientConnection) -> int | None:
    """The server's close code, after reading whatever it sent before closing."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


def assert_streamed_in_order(frames: list[dict[str, Any]], *, message: str) -> dict[str, Any]:
    """user_message, assistant_start, chunks, assistant_end(full_response = chunks)."""
    types = [frame["type"] for frame in frames]
    assert types[:2] == ["user_message", "assistant_start"]
    assert types[-1] == "assistant_end"
    assert set(types[2:-1]) == {"assistant_chunk"}
    assert frames[0]["content"] == message
    chunks = [frame["content"] for frame in frames[2:-1]]
    assert frames[-1]["full_response"] == "".join(chunks)
    return frames[-1]


# --- authentication over a real socket ---------------------------------------------


@pytest.mark.asyncio
async def test_a_script_with_a_bearer_header_and_no_origin_gets_a_streamed_reply(
    gateway: str, fake_ollama: FakeOllama, api_key: str
):
    fake_ollama.reply = ["Stream", "ing", " works", "."]
    async with ws_connect(
        ws_url(gateway), additional_headers={"Authorization": f"Bearer {api_key}"}
    ) as ws:
        assert ws.subprotocol is None
        await send(ws, {"type": "chat", "message": "does streaming work", "model": "llama3.2"})
        frames = await receive_until(ws, "assistant_end", "error")

    end = assert_streamed_in_order(frames, message="does streaming work")
    assert [frame["content"] for frame in frames[2:-1]] == ["Stream", "ing", " works", "."]
    assert end["full_response"] == "Streaming works."
    # Counts are the fake's final chunk: 3 prompt words + 10, one per content line.
    assert end["usage"] == {"prompt_tokens": 13, "completion_tokens": 4, "total_tokens": 17}


@pytest.mark.asyncio
async def test_chunks_arrive_while_the_backend_is_still_generating(
    gateway: str, fake_ollama: FakeOllama, api_key: str
):
    fake_ollama.reply = ["a", "b", "c", "d", "e"]
    fake_ollama.token_delay = 0.2
    async with ws_connect(
        ws_url(gateway), additional_headers={"Authorization": f"Bearer {api_key}"}
    ) as ws:
        await send(ws, {"type": "chat", "message": "slowly"})
        await receive_until(ws, "assistant_start")
        first = await receive(ws)
        still_generating = len(fake_ollama.active_streams)
        rest = await receive_until(ws, "assistant_end")
    assert first == {"type": "assistant_chunk", "content": "a"}
    assert still_generating == 1
    assert rest[-1]["full_response"] == "abcde"


@pytest.mark.asyncio
async def test_a_browser_with_a_key_as_subprotocol_is_answered_with_the_plain_subprotocol(
    gateway: str, fake_ollama: FakeOllama, api_key: str
):
    async with ws_connect(
        ws_url(gateway),
        subprotocols=["localai.v1", f"bearer.{api_key}"],
        origin=gateway,
    ) as ws:
        assert ws.subprotocol == "localai.v1"
        assert api_key not in str(ws.response.headers)
        await send(ws, {"type": "chat", "message": "hello"})
        frames = await receive_until(ws, "assistant_end", "error")
    assert_streamed_in_order(frames, message="hello")


@pytest.mark.asyncio
async def test_a_browser_signed_in_through_the_login_form_chats_with_its_session(
    gateway: str, fake_ollama: FakeOllama
):
    await asyncio.to_thread(
        get_user_model().objects.create_user, username="bob", password="correct-horse-42"
    )

    def sign_in() -> str:
        with httpx.Client(base_url=gateway, timeout=TIMEOUT) as client:
            form = client.get("/accounts/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
            assert token, form.text
            response = client.post(
                "/accounts/login/",
                data={
                    "username": "bob",
                    "password": "correct-horse-42",
                    "csrfmiddlewaretoken": token.group(1),
                },
            )
            assert response.status_code == 302, response.text
            return client.cookies["sessionid"]

    session_id = await asyncio.to_thread(sign_in)
    async with ws_connect(
        ws_url(gateway),
        subprotocols=["localai.v1"],
        origin=gateway,
        additional_headers={"Cookie": f"sessionid={session_id}"},
    ) as ws:
        await send(ws, {"type": "chat", "message": "hello from bob"})
        frames = await receive_until(ws, "assistant_end", "error")
    assert_streamed_in_order(frames, message="hello from bob")


@pytest.mark.asyncio
async def test_no_credentials_is_closed_4401_before_any_backend_call(
    gateway: str, fake_ollama: FakeOllama
):
    async with ws_connect(ws_url(gateway)) as ws:
        frame = await receive(ws)
        code = await close_code(ws)
    assert frame["code"] == "invalid_api_key"
    assert code == 4401
    assert fake_ollama.requests == []


@pytest.mark.asyncio
async def test_a_foreign_browser_origin_is_refused_at_the_handshake(
    gateway: str, fake_ollama: FakeOllama, api_key: str
):
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(
            ws_url(gateway),
            origin="https://evil.example",
            additional_headers={"Authorization": f"Bearer {api_key}"},
        ):
            pass
    assert refused.value.response.status_code == 403
    assert fake_ollama.requests == []


# --- cancel and disconnect close the backend request ---------------------------------


@pytest.mark.asyncio
async def test_cancel_over_a_real_socket_closes_the_backend_request(
    gateway: str, fake_ollama: FakeOllama, api_key: str
):
    fake_ollama.reply = [f" w{i}" for i in range(100)]
    fake_ollama.token_delay = 0.05
    async with ws_connect(
        ws_url(gateway), additional_headers={"Authorization": f"Bearer {api_key}"}
    ) as ws:
        await send(ws, {"type": "chat", "message": "a long answer please"})
        await receive_until(ws, "assistant_chunk")
        await send(ws, {"type": "cancel"})
        end = (await receive_until(ws, "assistant_end"))[-1]
        record = await asyncio.to_thread(fake_ollama.wait_for_stream_end, TIMEOUT)
        await send(ws, {"type": "ping"})
        pong = await receive(ws)
    assert end["cancelled"] is True
    assert record.outcome == "client_disconnected"
    assert record.tokens_sent < 100
    assert pong == {"type": "pong"}


@pytest.mark.asyncio
async def test_a_client_vanishing_mid_answer_closes_the_backend_request(
    gateway: str, fake_ollama: FakeOllama, api_key: str
):
    fake_ollama.reply = [f" w{i}" for i in range(100)]
    fake_ollama.token_delay = 0.05
    async with ws_connect(
        ws_url(gateway), additional_headers={"Authorization": f"Bearer {api_key}"}
    ) as ws:
        await send(ws, {"type": "chat", "message": "a long answer please"})
        await receive_until(ws, "assistant_chunk")
    record = await asyncio.to_thread(fake_ollama.wait_for_stream_end, TIMEOUT)
    assert record.outcome == "client_disconnected"
    assert record.tokens_sent < 100


# --- a real daphne process --------------------------------------------------------------


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout


def _create_key(env: dict[str, str]) -> str:
    output = _manage(env, "create_api_key", "daphne e2e")
    match = re.search(r"lai_[0-9A-Za-z]+_[0-9A-Za-z]+", output)
    assert match, output
    return match.group(0)


@pytest.fixture
def daphne_server(tmp_path: Path, fake_ollama: FakeOllama) -> Iterator[tuple[str, str]]:
    """daphne (as `make run` starts it) on a fresh migrated SQLite file; (base URL, key)."""
    env = server_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'daphne.sqlite3'}",
        OLLAMA_HOST=fake_ollama.url,
        REDIS_URL="",
    )
    _manage(env, "migrate", "--noinput", "-v", "0")
    raw_key = _create_key(env)

    with start_server(env=env, server="daphne") as base_url:
        yield base_url, raw_key


@pytest.mark.asyncio
async def test_daphne_serves_the_websocket_chat_and_the_pages_static_files(
    daphne_server: tuple[str, str], fake_ollama: FakeOllama
):
    base_url, raw_key = daphne_server
    fake_ollama.reply = ["Served", " by", " daphne"]

    async with ws_connect(
        ws_url(base_url, "daphne-1"), additional_headers={"Authorization": f"Bearer {raw_key}"}
    ) as ws:
        await send(ws, {"type": "chat", "message": "who serves this"})
        frames = await receive_until(ws, "assistant_end", "error")
    end = assert_streamed_in_order(frames, message="who serves this")
    assert end["full_response"] == "Served by daphne"

    # The history survived the connection, in daphne's own database.
    async with ws_connect(
        ws_url(base_url, "daphne-1"), additional_headers={"Authorization": f"Bearer {raw_key}"}
    ) as ws:
        await send(ws, {"type": "history"})
        history = await receive(ws)
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]

    # Unauthenticated and foreign-origin clients are refused by daphne too.
    async with ws_connect(ws_url(base_url)) as ws:
        assert await close_code(ws) == 4401
    with pytest.raises(InvalidStatus):
        async with ws_connect(
            ws_url(base_url),
            origin="https://evil.example",
            additional_headers={"Authorization": f"Bearer {raw_key}"},
        ):
            pass

    def fetch(path: str) -> httpx.Response:
        return httpx.get(f"{base_url}{path}", timeout=TIMEOUT)

    page = await asyncio.to_thread(fetch, "/")
    script = await asyncio.to_thread(fetch, "/static/realtime/chat_client.js")
    assert page.status_code == 200 and "chat_page.js" in page.text
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "export class ChatSocket" in script.text


# --- the README's script ------------------------------------------------------------------


def test_the_readme_script_example_works_as_written(
    gateway: str, fake_ollama: FakeOllama, api_key: str
):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## WebSocket chat") :]
    script = re.search(r"```python\n(.*?)```", section, re.S)
    assert script, "the README's WebSocket section has no Python example"
    code = script.group(1).replace("ws://127.0.0.1:8000", gateway.replace("http://", "ws://"))
    fake_ollama.reply = ["Hi", " there", "!"]

    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "LOCALAI_API_KEY": api_key, "NO_PROXY": "*"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    # 1 prompt word + 10 template tokens, 3 completion tokens.
    assert result.stdout == "Hi there!\n[14 tokens]\n"


def test_the_readme_script_prints_the_error_of_a_bad_key_without_a_traceback(
    gateway: str, fake_ollama: FakeOllama, db
):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## WebSocket chat") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    code = code.replace("ws://127.0.0.1:8000", gateway.replace("http://", "ws://"))

    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "LOCALAI_API_KEY": "lai_wrong", "NO_PROXY": "*"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert result.stderr.startswith("invalid_api_key: "), result.stderr
    assert "Traceback" not in result.stderr
