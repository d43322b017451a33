"""The backend's connection pool to Ollama lives and dies with its event loop."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from gateway.backends.ollama import OllamaBackend
from tests.fake_ollama import FakeOllama


def _backend(url: str) -> OllamaBackend:
    return OllamaBackend(host=url, connect_timeout=5, read_timeout=5, busy_retry_after=1)


def test_the_connections_to_ollama_close_when_their_event_loop_ends(
    fake_ollama: FakeOllama, caplog: pytest.LogCaptureFixture
) -> None:
    backend = _backend(fake_ollama.url)

    async def serve() -> object:
        assert await backend.list_models()
        async for _ in backend.chat_stream(_chat()):
            pass
        return backend._client()

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        client = asyncio.run(serve())
        gc.collect()

    assert client._client.is_closed
    assert "Unclosed" not in caplog.text


def test_each_event_loop_gets_a_working_client_of_its_own(fake_ollama: FakeOllama) -> None:
    backend = _backend(fake_ollama.url)

    async def models() -> int:
        return len(await backend.list_models())

    # The first loop's client is closed with its loop; the next loop still works.
    assert asyncio.run(models()) == asyncio.run(models()) > 0


def _chat():  # type: ignore[no-untyped-def]
    from gateway.backends import ChatRequest

    return ChatRequest(model="qwen2.5:14b", messages=[{"role": "user", "content": "hi"}])
