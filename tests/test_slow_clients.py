"""Slow clients cannot make a worker refuse everything (issue 11, finding 2).

Against a live server started as `make run` starts it, over raw sockets: many
connections announce a body and send one byte of it, others trickle their
headers, others open a WebSocket with an oversized header line. Meanwhile the
probes and keyed requests are answered; then every slow connection is
answered 408 (431 for the handshake) and closed.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fake_ollama import FakeOllama
from tests.processes import migrated_with_key, server_env, start_server

HEADER_TIMEOUT = BODY_TIMEOUT = 15.0
PENDING_CAP = 5
SLOW_BODIES, SLOW_HEADERS, BIG_HANDSHAKES = 30, 10, 10
WAIT = 60.0  # an upper bound for any answer, never a synchronisation


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    sock.settimeout(WAIT)
    return sock


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _read_to_close(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def slow_body(port: int) -> socket.socket:
    """A POST announcing 100 body bytes that sends one, once the app is reading the body."""
    sock = _connect(port)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n"
        # The server says "100 Continue" when the application first reads the
        # body: the condition that this request has reached the gateway.
        b"Expect: 100-continue\r\n\r\n"
    )
    assert b"100 Continue" in _read_until(sock, b"100 Continue\r\n\r\n")
    sock.sendall(b"{")
    return sock


def slow_headers(port: int) -> socket.socket:
    sock = _connect(port)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1")
    return sock


def big_handshake(port: int) -> socket.socket:
    sock = _connect(port)
    sock.sendall(
        b"GET /ws/chat/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    )
    return sock


@pytest.fixture
def server(tmp_path: Path, fake_ollama: FakeOllama) -> Iterator[tuple[str, str]]:
    env = server_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        OLLAMA_HOST=fake_ollama.url,
        GATEWAY_MAX_PENDING_REQUESTS=str(PENDING_CAP),
        GATEWAY_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        GATEWAY_BODY_TIMEOUT=str(BODY_TIMEOUT),
        RATE_LIMIT_UNAUTHENTICATED="100000",
    )
    raw_key, _ = migrated_with_key(env, "slow-clients", 100_000)
    with start_server(env=env, server="make-run") as url:
        yield url, raw_key


def test_slow_clients_neither_block_probes_and_keyed_requests_nor_stay_open(
    server: tuple[str, str], fake_ollama: FakeOllama
) -> None:
    url, raw_key = server
    port = int(url.rsplit(":", 1)[1])
    attack_started = time.monotonic()
    bodies = [slow_body(port) for _ in range(SLOW_BODIES)]
    headers = [slow_headers(port) for _ in range(SLOW_HEADERS)]
    handshakes = [big_handshake(port) for _ in range(BIG_HANDSHAKES)]

    with httpx.Client(base_url=url, timeout=WAIT) as client:
        healthz = client.get("/healthz")
        readyz = client.get("/readyz")
        keyed = client.get("/v1/models", headers={"Authorization": f"Bearer {raw_key}"})
        chat = client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {raw_key}"},
            json={"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "Hi"}]},
        )
    # Answered while every slow connection was still inside its deadline.
    answered_within = time.monotonic() - attack_started

    assert (healthz.status_code, readyz.status_code) == (200, 200), readyz.text
    assert keyed.status_code == 200, keyed.text
    assert chat.status_code == 200, chat.text
    assert answered_within < BODY_TIMEOUT

    refused = [_read_to_close(sock) for sock in handshakes]
    cut_bodies = [_read_to_close(sock) for sock in bodies]
    cut_headers = [_read_to_close(sock) for sock in headers]
    took = time.monotonic() - attack_started
    for sock in (*bodies, *headers, *handshakes):
        sock.close()

    assert all(answer.startswith(b"HTTP/1.1 431 ") for answer in refused), refused[0][:200]
    assert all(b"HTTP/1.1 408 " in answer for answer in cut_bodies), cut_bodies[0][:300]
    assert all(b"request_timeout" in answer for answer in cut_bodies)
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in cut_headers), cut_headers[0]
    assert took >= BODY_TIMEOUT  # cut by the deadline, not earlier
    assert len(fake_ollama.requests_to("/api/chat")) == 1  # no slow request reached it


def test_make_run_starts_uvicorn_with_the_gateway_protocols() -> None:
    from tests.processes import MAKE_RUN_PROTOCOLS, ROOT

    makefile = (ROOT / "Makefile").read_text()

    assert f"UVICORN_PROTOCOLS := {' '.join(MAKE_RUN_PROTOCOLS)}" in makefile
    assert "$(UVICORN_PROTOCOLS)" in makefile
