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
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from tests.fake_ollama import FakeOllama, free_port
from tests.processes import listening_socket


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The SQLite test database is a file (WAL, like a real deployment), not shared memory.

    In SQLite's shared-cache memory mode, the default test database, a
    connection that reads a table another connection is writing fails at once
    with "database table is locked" (no busy timeout applies): the usage
    flusher's write and a concurrent key lookup could turn a request into a
    500. A file in WAL mode, as served, lets readers read while a writer writes.
    """
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(
            tmp_path_factory.mktemp("database") / "test.sqlite3"
        )


@pytest.fixture(autouse=True)
def _backend_slots_unlimited(request: pytest.FixtureRequest) -> None:
    """The fake Ollama serves any number of requests at once: so may the gateway.

    Ollama's own default is one request per model at a time, and so is the
    gateway's (OLLAMA_NUM_PARALLEL); tests of other features hold many
    requests open together, so they get as many slots as they like. The
    scheduler's tests set their own.
    """
    request.getfixturevalue("settings").OLLAMA_NUM_PARALLEL = 10_000


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


@pytest.fixture(autouse=True)
def _embedded_backend_off_unless_asked(request: pytest.FixtureRequest) -> Iterator[None]:
    """The gateway's backend is the fake Ollama alone, except in `engine` tests.

    With the engine installed the embedded backend is on by default; most
    tests pin exact model lists and backend calls of the fake Ollama, so it is
    off for them. Only the `engine` fixture turns it on.
    """
    if "engine" in request.fixturenames:
        yield
        return
    settings = request.getfixturevalue("settings")
    settings.EMBEDDED_BACKEND = False
    yield


ENGINE_TEST_THREADS = 1


@dataclass(frozen=True)
class EngineModels:
    chat_path: str
    embedding_path: str


@pytest.fixture(scope="session")
def engine_models() -> EngineModels:
    """The embedded engine and its two models, installed; else skip, or FAIL when CI=true."""
    import importlib.util
    from pathlib import Path

    from django.conf import settings

    problems = []
    if importlib.util.find_spec("llama_cpp") is None:
        problems.append("llama-cpp-python is not installed")
    for name in ("EMBEDDED_CHAT_MODEL_PATH", "EMBEDDED_EMBEDDING_MODEL_PATH"):
        path = getattr(settings, name)
        if not path or not Path(path).is_file():
            problems.append(f"{name} {path!r} is not a file")
    if problems:
        reason = "engine test needs the embedded engine (make engine): " + "; ".join(problems)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return EngineModels(settings.EMBEDDED_CHAT_MODEL_PATH, settings.EMBEDDED_EMBEDDING_MODEL_PATH)


@pytest.fixture
def engine(engine_models: EngineModels, settings) -> EngineModels:
    """The gateway serves the embedded models (beside whatever Ollama it is pointed at).

    One llama.cpp thread: the suite shares the CPU with the test client and the
    server, and two OpenMP threads that must meet at every step slow down
    several-fold when either waits for a core (measured: 21 vs 2-7 tokens/s).
    """
    settings.EMBEDDED_BACKEND = True
    settings.EMBEDDED_THREADS = ENGINE_TEST_THREADS
    return engine_models


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

        self.sock = listening_socket()
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
def _fresh_rate_limits_and_usage(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts with empty rate-limit counters and no buffered usage.

    Set up after the test's database, so that at teardown the usage buffer is
    emptied (and a flush in progress finished) before the database goes away.
    """
    from keys.ratelimit import rate_limits_reset
    from keys.usage import usage_discard

    for name in ("transactional_db", "db"):
        if name in request.fixturenames:
            request.getfixturevalue(name)
            break
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


# --- scale-out stores: the machine's PostgreSQL and Redis (keys app) -------------

SCALEOUT_POSTGRES_URL = os.environ.get(
    "SCALEOUT_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"
)
SCALEOUT_REDIS_URL = os.environ.get("SCALEOUT_REDIS_URL", "redis://127.0.0.1:6379/12")


@dataclass(frozen=True)
class ScaleOutStores:
    postgres_url: str  # server URL, no database name
    redis_url: str


@pytest.fixture(scope="session")
def scaleout_stores() -> ScaleOutStores:
    """PostgreSQL and Redis on this machine, reachable; else skip, or FAIL when CI=true."""
    import psycopg
    import redis

    problems = []
    try:
        psycopg.connect(f"{SCALEOUT_POSTGRES_URL}/postgres", connect_timeout=3).close()
    except Exception as exc:
        problems.append(f"PostgreSQL at {SCALEOUT_POSTGRES_URL}: {exc}")
    try:
        redis.Redis.from_url(SCALEOUT_REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as exc:
        problems.append(f"Redis at {SCALEOUT_REDIS_URL}: {exc}")
    if problems:
        reason = "scale-out test needs PostgreSQL and Redis: " + "; ".join(problems)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return ScaleOutStores(postgres_url=SCALEOUT_POSTGRES_URL, redis_url=SCALEOUT_REDIS_URL)


@pytest.fixture
def scaleout_database(scaleout_stores: ScaleOutStores) -> Iterator[str]:
    """DATABASE_URL of a fresh PostgreSQL database, dropped afterwards."""
    import uuid

    import psycopg

    name = f"localai_test_scaleout_{uuid.uuid4().hex[:10]}"
    admin_url = f"{scaleout_stores.postgres_url}/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{scaleout_stores.postgres_url}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def scaleout_redis_prefix(scaleout_stores: ScaleOutStores) -> Iterator[str]:
    """A key prefix of its own in the shared Redis; its keys are deleted afterwards."""
    import uuid

    import redis

    prefix = f"localai-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(scaleout_stores.redis_url)
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)


def pytest_report_header(config: pytest.Config) -> str:
    return f"CI={os.environ.get('CI', '')!r}"
