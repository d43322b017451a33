"""Shared fixtures: the fake Ollama on loopback and the gateway on a real socket.

End-to-end tests reach the gateway over TCP (uvicorn serving the project's
ASGI application in a thread of the test process, so pytest-django's test
database and settings overrides apply), and the gateway reaches the fake
Ollama through the real `ollama` client over TCP. Nothing above the socket is
mocked.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from tests.fake_ollama import FakeOllama, free_port


@pytest.fixture(scope="session")
def fake_ollama_server() -> Iterator[FakeOllama]:
    server = FakeOllama()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_ollama(fake_ollama_server: FakeOllama, settings) -> Iterator[FakeOllama]:
    """The fake Ollama, reset, with the gateway pointed at it."""
    fake_ollama_server.reset()
    settings.OLLAMA_HOST = fake_ollama_server.url
    # Short read timeout so stall tests finish quickly.
    settings.OLLAMA_READ_TIMEOUT = 2.0
    yield fake_ollama_server
    fake_ollama_server.reset()


@pytest.fixture
def dead_ollama(settings) -> str:
    """Point the gateway at a loopback port where nothing listens."""
    url = f"http://127.0.0.1:{free_port()}"
    settings.OLLAMA_HOST = url
    return url


class ServerThread:
    """uvicorn serving the gateway's ASGI app on a pre-bound loopback socket.

    The socket listens before the thread starts, so clients can connect at
    once (the kernel queues them) without any wait-until-ready loop.
    """

    def __init__(self) -> None:
        from localai_site.asgi import application

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            application, lifespan="off", log_level="warning", ws_max_size=1 << 20
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True, name="gateway")

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture
def gateway(transactional_db, fake_ollama: FakeOllama) -> Iterator[str]:
    """Base URL of a live gateway (real socket) talking to the fake Ollama."""
    server = ServerThread()
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def http(gateway: str) -> Iterator[httpx.Client]:
    """An HTTP client for the live gateway."""
    with httpx.Client(base_url=gateway, timeout=10) as client:
        yield client


# --- API keys, rate limits, usage (keys app) -----------------------------------


@pytest.fixture(autouse=True)
def _fresh_rate_limits_and_usage() -> Iterator[None]:
    """Every test starts with empty rate-limit counters and no buffered usage."""
    from keys.ratelimit import rate_limits_reset
    from keys.usage import usage_discard

    rate_limits_reset()
    usage_discard()
    yield
    usage_discard()


@pytest.fixture
def api_key(db) -> str:
    """The raw key of a fresh, unrestricted key with limits high enough for any test."""
    from keys.services import api_key_create

    _, raw_key = api_key_create(name="test key", rate_limit=1_000_000)
    return raw_key


@pytest.fixture
def auth_headers(api_key: str) -> dict[str, str]:
    """Headers that authenticate a request with `api_key`."""
    return {"Authorization": f"Bearer {api_key}"}


def pytest_report_header(config: pytest.Config) -> str:
    return f"CI={os.environ.get('CI', '')!r}"
