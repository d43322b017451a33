"""Auth plus rate limiting cost a bounded, small number of queries per request:
at most one indexed SELECT for the key (its owner joined in), and none once
the process keeps the key (`keys.keycache`); the limits live in the
rate-limit store, not the database; usage is written in batches."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from django.db.backends import utils as db_utils
from django.test import Client

from keys.policy import usage_flush
from keys.services import _checksum, api_key_create
from tests.fake_ollama import FakeOllama


def test_one_authenticated_request_costs_one_query_for_auth_and_limits(
    client: Client, fake_ollama: FakeOllama, django_assert_max_num_queries, db
) -> None:
    _, raw_key = api_key_create(name="counted")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}

    # The test client serves the request in this thread, where nothing batches:
    # the usage write (one small transaction) happens within the request too.
    with django_assert_max_num_queries(6) as captured:
        answer = client.get("/v1/models", **auth)

    assert answer.status_code == 200
    sqls = [query["sql"] for query in captured.captured_queries]
    before_usage = sqls[: next(i for i, sql in enumerate(sqls) if "SAVEPOINT" in sql)]
    assert len(before_usage) == 1, before_usage
    assert 'FROM "keys_apikey"' in before_usage[0] and '"prefix" =' in before_usage[0]
    assert sum('INSERT INTO "keys_usagerecord"' in sql for sql in sqls) == 1


def test_a_refused_key_costs_at_most_one_query_and_garbage_none(
    client: Client, django_assert_num_queries, db
) -> None:
    with django_assert_num_queries(0):
        garbage = client.get("/v1/models", HTTP_AUTHORIZATION="Bearer not-a-key")
    body = "lai_AAAAAAAA_" + "B" * 38
    well_formed_but_unknown = body + _checksum(body)
    with django_assert_num_queries(1):
        unknown = client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {well_formed_but_unknown}")

    assert garbage.status_code == 401 and unknown.status_code == 401


@pytest.fixture
def every_query(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SQL statement any thread runs (the live gateway runs in another thread)."""
    statements: list[str] = []
    lock = threading.Lock()
    execute, executemany = db_utils.CursorWrapper.execute, db_utils.CursorWrapper.executemany

    def counting_execute(self, sql, params=None):  # type: ignore[no-untyped-def]
        with lock:
            statements.append(sql)
        return execute(self, sql, params)

    def counting_executemany(self, sql, param_list):  # type: ignore[no-untyped-def]
        with lock:
            statements.append(sql)
        return executemany(self, sql, param_list)

    monkeypatch.setattr(db_utils.CursorWrapper, "execute", counting_execute)
    monkeypatch.setattr(db_utils.CursorWrapper, "executemany", counting_executemany)
    return statements


def test_through_the_server_100_requests_cost_one_key_lookup_and_a_few_batch_writes(
    http: httpx.Client, fake_ollama: FakeOllama, every_query: list[str], settings
) -> None:
    _, raw_key = api_key_create(name="counted", rate_limit=1000)
    every_query.clear()
    started = time.monotonic()

    for _ in range(100):
        assert http.get("/v1/models", headers={"Authorization": f"Bearer {raw_key}"}).is_success
    usage_flush()

    elapsed = time.monotonic() - started
    lookups = [sql for sql in every_query if 'FROM "keys_apikey"' in sql and '"prefix" =' in sql]
    # The server keeps the key: the usage batches (which move only the
    # counters) do not make it look the key up again.
    assert len(lookups) == 1
    # Everything else is usage batches: 4 statements (BEGIN, key check, bulk
    # INSERT, UPDATE) per flush, and a flush at most every USAGE_FLUSH_INTERVAL.
    flushes = elapsed / settings.USAGE_FLUSH_INTERVAL + 2
    others = [sql for sql in every_query if sql not in lookups]
    assert len(others) <= 4 * flushes, (elapsed, others)
    assert sum(sql.startswith('INSERT INTO "keys_usagerecord"') for sql in others) <= flushes
