"""The real server processes (uvicorn, as `make run` starts it, and daphne) on a
fresh database with no Ollama: they start, and explain what to do instead of failing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fake_ollama import free_port
from tests.processes import server_env, start_server

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["uvicorn", "daphne"])
def server_without_ollama(request, tmp_path: Path) -> Iterator[tuple[str, str]]:
    ollama_url = f"http://127.0.0.1:{free_port()}"
    env = server_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.sqlite3'}", OLLAMA_HOST=ollama_url, REDIS_URL=""
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    with start_server(env=env, server=request.param) as base_url:
        yield base_url, ollama_url


def test_the_server_starts_without_ollama_and_readyz_says_what_to_do(
    server_without_ollama: tuple[str, str],
) -> None:
    base_url, ollama_url = server_without_ollama

    # Bounds, not waits: a fresh process imports Django first (8 s seen on a
    # loaded machine), and the kernel holds the request until it accepts.
    alive = httpx.get(f"{base_url}/healthz", timeout=60)
    ready = httpx.get(f"{base_url}/readyz", timeout=60)

    assert alive.status_code == 200
    assert ready.status_code == 503
    message = ready.json()["error"]["message"]
    assert ollama_url in message
    assert "ollama serve" in message


def test_loading_the_app_moves_the_long_lived_objects_out_of_the_collectors_sight() -> None:
    # Full garbage collections over Django's import-time objects stalled every
    # open stream now and then (tens of ms); the app freezes them once loaded.
    env = server_env(DATABASE_URL="sqlite://", REDIS_URL="")
    probe = "import gc, localai_site.asgi; print(gc.get_freeze_count())"
    frozen = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )

    assert int(frozen.stdout.split()[-1]) > 50_000
