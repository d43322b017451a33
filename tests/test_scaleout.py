"""Scale-out: two real server processes (daphne and uvicorn) on one PostgreSQL
database and one Redis serve one key, and enforce ONE rate limit exactly;
a revocation reaches both at once; their buffered usage survives shutdown.

Needs the machine's PostgreSQL and Redis (skipped when absent, fails under CI=true).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import ScaleOutStores
from tests.fake_ollama import FakeOllama
from tests.processes import server_env, start_server

pytestmark = pytest.mark.scaleout

ROOT = Path(__file__).resolve().parent.parent
CHAT = "/v1/chat/completions"
HELLO = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "Hi"}]}


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_two_processes_share_one_limit_and_see_revocation_at_once(
    scaleout_stores: ScaleOutStores,
    scaleout_database: str,
    scaleout_redis_prefix: str,
    fake_ollama: FakeOllama,
) -> None:
    fake_ollama.reply = ["a", " b", " c"]
    env = server_env(
        DATABASE_URL=scaleout_database,
        REDIS_URL=scaleout_stores.redis_url,
        CACHE_KEY_PREFIX=scaleout_redis_prefix,
        OLLAMA_HOST=fake_ollama.url,
        # Nothing is written on a timer: what the test finds in the database
        # after shutdown, the processes wrote as they exited.
        USAGE_FLUSH_INTERVAL="3600",
        LOG_LEVEL="WARNING",
    )
    manage(env, "migrate", "--noinput", "-v0")
    raw_key = manage(env, "create_api_key", "shared", "--rate-limit", "10").splitlines()[-1]
    prefix = raw_key.split("_")[1]
    auth = {"Authorization": f"Bearer {raw_key}"}

    with (
        start_server(env=env, server="daphne") as first,
        start_server(env=env, server="uvicorn") as second,
        httpx.Client(timeout=15) as client,
    ):
        servers = (first, second)
        answers = [client.post(servers[i % 2] + CHAT, headers=auth, json=HELLO) for i in range(14)]

        manage(env, "revoke_api_key", prefix)
        after_revocation = [client.get(f"{base}/v1/models", headers=auth) for base in servers]

    assert [answer.status_code for answer in answers] == [200] * 10 + [429] * 4, [
        answer.text for answer in answers if answer.status_code not in (200, 429)
    ]
    # One budget, spent alternately through both processes.
    assert [int(a.headers["x-ratelimit-remaining-requests"]) for a in answers[:10]] == list(
        range(9, -1, -1)
    )
    assert all(int(a.headers["Retry-After"]) >= 1 for a in answers[10:])
    assert [answer.status_code for answer in after_revocation] == [401, 401]
    assert len(fake_ollama.requests_to("/api/chat")) == 10

    # Both processes have exited: every request they served is on record.
    tokens = sum(a.json()["usage"]["total_tokens"] for a in answers[:10])
    with psycopg.connect(scaleout_database) as conn:
        usage_count, last_used = conn.execute(
            "SELECT usage_count, last_used_at FROM keys_apikey WHERE prefix = %s", (prefix,)
        ).fetchone()
        rows = conn.execute(
            "SELECT status, count(*), sum(prompt_tokens + completion_tokens) "
            "FROM keys_usagerecord GROUP BY status ORDER BY status"
        ).fetchall()
    assert usage_count == 14 and last_used is not None
    assert rows == [(200, 10, tokens), (429, 4, 0)]


def test_processes_keep_keys_yet_see_a_change_made_through_another_at_once(
    scaleout_stores: ScaleOutStores,
    scaleout_database: str,
    scaleout_redis_prefix: str,
    fake_ollama: FakeOllama,
) -> None:
    """Each process keeps the keys it looked up (keys.keycache) while the keys
    generation in Redis is unchanged; a change made by a script, or through
    the staff API of the other process, applies from the next request on."""
    env = server_env(
        DATABASE_URL=scaleout_database,
        REDIS_URL=scaleout_stores.redis_url,
        CACHE_KEY_PREFIX=scaleout_redis_prefix,
        OLLAMA_HOST=fake_ollama.url,
        LOG_LEVEL="WARNING",
    )
    manage(env, "migrate", "--noinput", "-v0")
    raw_key = manage(env, "create_api_key", "kept", "--rate-limit", "1000").splitlines()[-1]
    prefix = raw_key.split("_")[1]
    manage(
        {**env, "DJANGO_SUPERUSER_PASSWORD": "op-password-1"},
        *("createsuperuser", "--noinput", "--username", "op", "--email", "op@example.com"),
    )
    auth = {"Authorization": f"Bearer {raw_key}"}

    with (
        start_server(env=env, server="uvicorn") as first,
        start_server(env=env, server="uvicorn") as second,
        httpx.Client(timeout=15) as client,
    ):
        servers = (first, second)
        warm = [client.post(base + CHAT, headers=auth, json=HELLO) for base in servers]
        # A script changes the allow-list with the ORM (a model save).
        manage(
            env,
            "shell",
            "-c",
            f"from keys.models import ApiKey; key = ApiKey.objects.get(prefix='{prefix}'); "
            "key.allowed_endpoints = ['embeddings']; key.save()",
        )
        narrowed = [client.post(base + CHAT, headers=auth, json=HELLO) for base in servers]
        revoked = client.post(
            f"{first}/admin/api-keys/{prefix}/revoke", auth=("op", "op-password-1")
        )
        after = client.get(f"{second}/v1/models", headers=auth)

    assert [a.status_code for a in warm] == [200, 200], [a.text for a in warm]
    assert [a.status_code for a in narrowed] == [403, 403]
    assert {a.json()["error"]["code"] for a in narrowed} == {"endpoint_not_allowed"}
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert after.status_code == 401 and "revoked" in after.json()["error"]["message"]


def test_without_redis_postgresql_processes_keep_no_keys_and_see_revocation_at_once(
    scaleout_stores: ScaleOutStores, scaleout_database: str, fake_ollama: FakeOllama
) -> None:
    """PostgreSQL with the local-memory cache: no store every process shares,
    so no process keeps keys; a revocation still applies at once."""
    env = server_env(
        DATABASE_URL=scaleout_database,
        REDIS_URL="",
        OLLAMA_HOST=fake_ollama.url,
        LOG_LEVEL="WARNING",
    )
    manage(env, "migrate", "--noinput", "-v0")
    raw_key = manage(env, "create_api_key", "unkept", "--rate-limit", "1000").splitlines()[-1]
    auth = {"Authorization": f"Bearer {raw_key}"}

    with (
        start_server(env=env, server="uvicorn") as first,
        start_server(env=env, server="uvicorn") as second,
        httpx.Client(timeout=15) as client,
    ):
        servers = (first, second)
        before = [client.get(f"{base}/v1/models", headers=auth).status_code for base in servers]
        manage(env, "revoke_api_key", raw_key.split("_")[1])
        after = [client.get(f"{base}/v1/models", headers=auth).status_code for base in servers]

    assert before == [200, 200]
    assert after == [401, 401]
