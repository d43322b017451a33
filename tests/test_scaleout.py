"""Scale-out: two real server processes (daphne and uvicorn) on one PostgreSQL
database and one Redis serve one key, and enforce ONE rate limit exactly;
a revocation reaches both at once; their buffered usage survives shutdown.

Needs the machine's PostgreSQL and Redis (skipped when absent, fails under CI=true).
"""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import ScaleOutStores
from tests.fake_ollama import FakeOllama
from tests.processes import manage, migrated_with_key, server_env, two_servers

pytestmark = pytest.mark.scaleout

CHAT = "/v1/chat/completions"
HELLO = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "Hi"}]}


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
    raw_key, prefix = migrated_with_key(env, "shared", rate_limit=10)
    auth = {"Authorization": f"Bearer {raw_key}"}

    with two_servers(env, "daphne", "uvicorn") as (servers, client):
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
    raw_key, prefix = migrated_with_key(env, "kept", rate_limit=1000)
    manage(
        {**env, "DJANGO_SUPERUSER_PASSWORD": "op-password-1"},
        *("createsuperuser", "--noinput", "--username", "op", "--email", "op@example.com"),
    )
    auth = {"Authorization": f"Bearer {raw_key}"}

    with two_servers(env, "uvicorn", "uvicorn") as (servers, client):
        first, second = servers
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
    raw_key, prefix = migrated_with_key(env, "unkept", rate_limit=1000)
    auth = {"Authorization": f"Bearer {raw_key}"}

    with two_servers(env, "uvicorn", "uvicorn") as (servers, client):
        before = [client.get(f"{base}/v1/models", headers=auth).status_code for base in servers]
        manage(env, "revoke_api_key", prefix)
        after = [client.get(f"{base}/v1/models", headers=auth).status_code for base in servers]

    assert before == [200, 200]
    assert after == [401, 401]
