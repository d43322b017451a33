"""Keys kept in each server process (`keys.keycache`) never outlive a change.

Two real uvicorn processes serve the test's SQLite database (no Redis: the
keys generation is the file beside the database). Each test first uses the
key on both, so both keep it, then changes the key the way an operator
would (the admin's actions and forms, the staff API on one of the
processes, the management command in a third process) and asserts that the
very next request on every process sees the change. A process that kept
the key without noticing the change would answer 200.

In-process tests cover what a kept key still checks at every use (expiry by
the clock, the hash) and what it does not keep (the usage counters).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.backends import utils as db_utils
from django.test import Client
from django.utils import timezone

from gateway.errors import AuthenticationError
from keys.models import ApiKey
from keys.services import api_key_authenticate, api_key_create
from keys.usage import PendingUsage, usage_write
from tests.fake_ollama import FakeOllama
from tests.processes import manage, server_env, start_server

CHAT = "/v1/chat/completions"
HELLO = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "Hi"}]}
KEYS_ADMIN = "/admin/keys/apikey/"


@pytest.fixture(scope="module")
def server_env_for_test_db(django_db_setup, django_db_blocker, fake_ollama_server) -> dict:
    with django_db_blocker.unblock():
        name = connection.settings_dict["NAME"]
    return server_env(
        DATABASE_URL=f"sqlite:///{name}",
        REDIS_URL="",
        OLLAMA_HOST=fake_ollama_server.url,
        RATE_LIMIT_UNAUTHENTICATED="1000000",
        LOG_LEVEL="WARNING",
    )


@pytest.fixture(scope="module")
def servers(server_env_for_test_db: dict) -> Iterator[tuple[str, str]]:
    """Two uvicorn processes on the test database."""
    with (
        start_server(env=server_env_for_test_db, server="uvicorn") as first,
        start_server(env=server_env_for_test_db, server="uvicorn") as second,
    ):
        yield first, second


@pytest.fixture
def client_http(fake_ollama: FakeOllama) -> Iterator[httpx.Client]:
    """A client for the server processes; the fake Ollama they use is reset."""
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture
def operator(transactional_db) -> Client:
    """A logged-in superuser's admin session (committed: the servers see it)."""
    user = get_user_model().objects.create_superuser("root", password="x")
    client = Client()
    client.force_login(user)
    return client


def bearer(raw_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw_key}"}


def used_on_both(client: httpx.Client, servers: tuple[str, str], raw_key: str) -> None:
    """Both processes answer (and so keep) the key."""
    for base in servers:
        answer = client.post(base + CHAT, headers=bearer(raw_key), json=HELLO)
        assert answer.status_code == 200, answer.text


def statuses(client: httpx.Client, servers: tuple[str, str], raw_key: str) -> list[int]:
    return [
        client.post(base + CHAT, headers=bearer(raw_key), json=HELLO).status_code
        for base in servers
    ]


def test_revoking_with_the_admin_action_refuses_the_next_request_on_every_process(
    servers: tuple[str, str], client_http: httpx.Client, operator: Client, fake_ollama: FakeOllama
) -> None:
    api_key, raw_key = api_key_create(name="kept", rate_limit=1000)
    used_on_both(client_http, servers, raw_key)

    answer = operator.post(
        KEYS_ADMIN, {"action": "revoke_selected", "_selected_action": [api_key.pk]}, follow=True
    )

    assert "Revoked 1 API key(s)" in answer.content.decode()
    assert statuses(client_http, servers, raw_key) == [401, 401]
    assert len(fake_ollama.requests_to("/api/chat")) == 2


def test_revoking_through_the_staff_api_on_one_process_refuses_on_the_other(
    servers: tuple[str, str], client_http: httpx.Client, transactional_db
) -> None:
    get_user_model().objects.create_user("op", password="op-password-1", is_staff=True)
    api_key, raw_key = api_key_create(name="kept", rate_limit=1000)
    used_on_both(client_http, servers, raw_key)

    revoked = client_http.post(
        f"{servers[0]}/admin/api-keys/{api_key.prefix}/revoke", auth=("op", "op-password-1")
    )

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    second = client_http.post(servers[1] + CHAT, headers=bearer(raw_key), json=HELLO)
    assert second.status_code == 401
    assert "revoked" in second.json()["error"]["message"]


def test_revoking_with_the_management_command_refuses_the_next_request_on_every_process(
    servers: tuple[str, str],
    server_env_for_test_db: dict,
    client_http: httpx.Client,
    transactional_db,
) -> None:
    api_key, raw_key = api_key_create(name="kept", rate_limit=1000)
    used_on_both(client_http, servers, raw_key)

    manage(server_env_for_test_db, "revoke_api_key", api_key.prefix)

    assert statuses(client_http, servers, raw_key) == [401, 401]


def test_a_changed_allow_list_applies_on_the_next_request_on_every_process(
    servers: tuple[str, str], client_http: httpx.Client, operator: Client
) -> None:
    api_key, raw_key = api_key_create(name="kept", rate_limit=1000)
    used_on_both(client_http, servers, raw_key)

    saved = operator.post(
        f"{KEYS_ADMIN}{api_key.pk}/change/",
        {
            "name": "kept",
            "owner": "",
            "expires_at_0": "",
            "expires_at_1": "",
            "rate_limit": "1000",
            "tokens_per_minute": "",
            "priority": "1",
            "allowed_endpoints": ["embeddings"],
            "allowed_models": "",
        },
    )

    assert saved.status_code == 302, saved.content.decode()[-3000:]
    assert ApiKey.objects.get(pk=api_key.pk).allowed_endpoints == ["embeddings"]
    answers = [
        client_http.post(base + CHAT, headers=bearer(raw_key), json=HELLO) for base in servers
    ]
    assert [a.status_code for a in answers] == [403, 403]
    assert {a.json()["error"]["code"] for a in answers} == {"endpoint_not_allowed"}


def test_extending_an_expired_key_in_the_admin_makes_it_work_again_on_every_process(
    servers: tuple[str, str], client_http: httpx.Client, operator: Client
) -> None:
    api_key, raw_key = api_key_create(name="lapsed", rate_limit=1000)
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    assert statuses(client_http, servers, raw_key) == [401, 401]  # both keep it, expired

    operator.post(KEYS_ADMIN, {"action": "extend_expiry", "_selected_action": [api_key.pk]})

    assert statuses(client_http, servers, raw_key) == [200, 200]


def test_deactivating_the_owner_refuses_the_key_on_every_process(
    servers: tuple[str, str], client_http: httpx.Client, transactional_db
) -> None:
    owner = get_user_model().objects.create_user("ana", password="x")
    _, raw_key = api_key_create(name="ana's", owner=owner, rate_limit=1000)
    used_on_both(client_http, servers, raw_key)

    owner.is_active = False
    owner.save()

    assert statuses(client_http, servers, raw_key) == [401, 401]


# --- in this process ---------------------------------------------------------------


@pytest.fixture
def key_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every key lookup by prefix any thread runs (the live gateway runs in another)."""
    statements: list[str] = []
    lock = threading.Lock()
    execute = db_utils.CursorWrapper.execute

    def counting_execute(self, sql, params=None):  # type: ignore[no-untyped-def]
        if 'FROM "keys_apikey"' in sql and '"prefix" =' in sql:
            with lock:
                statements.append(sql)
        return execute(self, sql, params)

    monkeypatch.setattr(db_utils.CursorWrapper, "execute", counting_execute)
    return statements


def test_a_kept_key_is_refused_once_its_expiry_passes(
    http: httpx.Client, fake_ollama: FakeOllama, key_lookups: list[str]
) -> None:
    expires_at = timezone.now() + timedelta(seconds=1)
    _, raw_key = api_key_create(name="brief", expires_at=expires_at)

    first = http.get("/v1/models", headers=bearer(raw_key))
    # Nothing changes in the database: only the clock moves past the expiry.
    while timezone.now() <= expires_at:
        time.sleep(0.05)
    second = http.get("/v1/models", headers=bearer(raw_key))

    assert first.status_code == 200
    assert second.status_code == 401
    assert "expired" in second.json()["error"]["message"]
    assert len(key_lookups) == 1  # the second answer came from the kept key


def test_a_kept_key_still_needs_its_whole_secret(
    http: httpx.Client, fake_ollama: FakeOllama, key_lookups: list[str]
) -> None:
    from keys.services import _checksum

    _, raw_key = api_key_create(name="kept")
    assert http.get("/v1/models", headers=bearer(raw_key)).status_code == 200
    # Same prefix (the lookup key of the cache), another secret, valid checksum.
    body = raw_key[:-6][:-1] + ("A" if raw_key[-7] != "A" else "B")
    forged = body + _checksum(body)

    answer = http.get("/v1/models", headers=bearer(forged))

    assert answer.status_code == 401
    assert answer.json()["error"]["message"] == "Invalid API key."


def test_a_kept_key_reads_its_usage_counters_fresh(transactional_db, key_lookups) -> None:
    api_key, raw_key = api_key_create(name="counted")
    api_key_authenticate(raw_key=raw_key)  # looked up, kept

    usage_write([PendingUsage(api_key_id=api_key.pk, endpoint="/v1/models", model="", status=200)])
    kept = api_key_authenticate(raw_key=raw_key)

    assert len(key_lookups) == 1  # the usage write did not drop the kept key
    assert kept.usage_count == 1 and kept.last_used_at is not None


def test_a_bulk_update_of_keys_drops_every_kept_key(transactional_db, key_lookups) -> None:
    api_key, raw_key = api_key_create(name="bulk")
    api_key_authenticate(raw_key=raw_key)

    ApiKey.objects.filter(pk=api_key.pk).update(allowed_models=["llama3:8b"])

    assert api_key_authenticate(raw_key=raw_key).allowed_models == ["llama3:8b"]
    assert len(key_lookups) == 2


def test_a_change_no_signal_reports_applies_within_the_kept_rows_age(
    transactional_db, key_lookups, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raw SQL on the keys table moves no generation; a kept row is trusted
    only MAX_AGE seconds (10 in production, shortened here)."""
    from keys import keycache

    monkeypatch.setattr(keycache, "MAX_AGE", 0.5)
    api_key, raw_key = api_key_create(name="raw")
    api_key_authenticate(raw_key=raw_key)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE keys_apikey SET is_active = %s, revoked_at = %s WHERE id = %s",
            [False, timezone.now(), api_key.pk],
        )
    kept_until = time.monotonic() + keycache.MAX_AGE

    while time.monotonic() <= kept_until:
        time.sleep(0.05)

    with pytest.raises(AuthenticationError, match="revoked"):
        api_key_authenticate(raw_key=raw_key)
    assert len(key_lookups) == 2
