"""Real gateway server processes for tests (daphne or uvicorn subprocesses).

The test binds and listens on a loopback socket first and hands the file
descriptor to the server (`--fd`): clients can connect at once, the kernel
queues them until the server accepts, so there is no wait-until-ready loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def listening_socket(backlog: int = 1024) -> socket.socket:
    """A loopback socket, listening, that a child process can inherit.

    TCP_NODELAY is set here because accepted sockets inherit it: servers
    handed a socket (uvicorn `sockets=`, `--fd`) do not set it themselves,
    and Nagle's algorithm then holds a response body back behind its headers
    until the client's delayed ACK, about 40 ms per request.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


MAKE_RUN_PROTOCOLS = (
    "--http", "localai_site.server:HttpProtocol",
    "--ws", "localai_site.server:WebSocketProtocol",
)  # fmt: skip


def server_command(server: str, fd: int) -> list[str]:
    app = "localai_site.asgi:application"
    if server == "daphne":
        return [str(BIN / "daphne"), "--fd", str(fd), "-v", "0", app]
    if server == "uvicorn":
        return [str(BIN / "uvicorn"), "--fd", str(fd), "--log-level", "warning", app]
    if server == "make-run":
        # uvicorn as `make run` starts it (the Makefile's UVICORN_PROTOCOLS).
        return [
            str(BIN / "uvicorn"), "--fd", str(fd), "--log-level", "warning",
            "--loop", "uvloop", *MAKE_RUN_PROTOCOLS, "--timeout-keep-alive", "5", app,
        ]  # fmt: skip
    raise ValueError(f"unknown server {server!r}")


@contextlib.contextmanager
def start_server(*, env: Mapping[str, str], server: str = "daphne") -> Iterator[str]:
    """Run one server process on a fresh loopback socket; yield its base URL."""
    with server_process(env=env, server=server) as (url, _):
        yield url


@contextlib.contextmanager
def server_process(
    *, env: Mapping[str, str], server: str = "daphne", args: Sequence[str] = ()
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Like `start_server`, with extra server `args`; yield (base URL, the process)."""
    sock = listening_socket()
    port = sock.getsockname()[1]
    process = subprocess.Popen(
        [*server_command(server, sock.fileno()), *args],
        cwd=ROOT,
        env=dict(env),
        pass_fds=(sock.fileno(),),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        try:
            _, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        sock.close()
        if process.returncode not in (0, -15, 143) and stderr:
            sys.stderr.write(stderr.decode(errors="replace")[-4000:])


@contextlib.contextmanager
def fake_ollama_process(*args: str, counters: dict[str, Any] | None = None) -> Iterator[str]:
    """The fake Ollama in a process of its own (`python -m tests.fake_ollama ARGS`): its URL.

    With `counters`, the fake runs with `--stats` and its exit counters land there.
    """
    stats = ["--stats"] if counters is not None else []
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_ollama", "--port", "0", *args, *stats],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    url = process.stdout.readline().decode().strip()
    try:
        yield url
    finally:
        process.terminate()
        if counters is not None:
            counters.update(json.loads(process.stdout.readline() or b"{}"))
        process.wait(timeout=10)


def server_env(**overrides: str) -> dict[str, str]:
    """The test process's environment plus overrides, for a server process."""
    # The fake Ollama is these servers' backend: no embedded models beside it.
    # It serves any number of requests at once, so may the gateway (see conftest).
    # A line per request would fill the unread stderr pipe of `start_server`
    # and stall the server: tests that read logs ask for them.
    env = {
        "OLLAMA_NUM_PARALLEL": "10000",
        "LOG_LEVEL": "WARNING",
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "localai_site.settings",
        "EMBEDDED_BACKEND": "off",
    }
    env.update(overrides)
    return env


def manage(env: Mapping[str, str], *args: str) -> str:
    """`python manage.py ARGS` in a child process with `env`; its output (asserts success)."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def migrated_with_key(env: Mapping[str, str], name: str, rate_limit: int) -> tuple[str, str]:
    """Migrate the database `env` names and make a key there: (raw key, its prefix)."""
    manage(env, "migrate", "--noinput", "-v0")
    raw_key = manage(env, "create_api_key", name, "--rate-limit", str(rate_limit)).splitlines()[-1]
    return raw_key, raw_key.split("_")[1]


@contextlib.contextmanager
def two_servers(
    env: Mapping[str, str], first: str = "uvicorn", second: str = "uvicorn"
) -> Iterator[tuple[tuple[str, str], httpx.Client]]:
    """Two server processes on the same stores, and an HTTP client: ((url, url), client)."""
    with (
        start_server(env=env, server=first) as one,
        start_server(env=env, server=second) as other,
        # A bound, not a wait: fresh processes import Django before answering.
        httpx.Client(timeout=60) as client,
    ):
        yield (one, other), client
