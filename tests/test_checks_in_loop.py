"""Where the API-key checks run (gateway/viewsets.py, keys.policy.checks_are_local).

With the default stores a kept key is authenticated and counted in the event
loop, with no thread switch; a key not kept yet is looked up in a thread,
and either way each request is counted exactly once. With Redis every check
runs in a thread, so no round trip blocks the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from keys import keycache, policy
from keys.services import api_key_create
from tests.conftest import ScaleOutStores


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def where_counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """For each request counted: whether it was counted in the event loop."""
    seen: list[bool] = []
    count = policy.request_count

    def spy(**kwargs: Any) -> Any:
        seen.append(_in_event_loop())
        return count(**kwargs)

    monkeypatch.setattr(policy, "request_count", spy)
    yield seen


def _remaining(response: httpx.Response) -> int:
    return int(response.headers["x-ratelimit-remaining-requests"])


def test_a_kept_key_is_checked_in_the_event_loop_and_each_request_counted_once(
    gateway: str, where_counted: list[bool]
) -> None:
    _, raw_key = api_key_create(name="loop", rate_limit=10)
    keycache.clear()
    headers = {"Authorization": f"Bearer {raw_key}"}
    with httpx.Client(base_url=gateway, timeout=10) as client:
        answers = [client.get("/v1/models", headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [_remaining(a) for a in answers] == [9, 8, 7]
    # The first request looked the key up in the database, from a thread.
    assert where_counted == [False, True, True]


def test_refusals_in_the_event_loop_are_counted_once_too(
    gateway: str, where_counted: list[bool], settings: Any
) -> None:
    settings.RATE_LIMIT_UNAUTHENTICATED = 5
    with httpx.Client(base_url=gateway, timeout=10) as client:
        missing = [client.get("/v1/models") for _ in range(2)]
        unknown = client.get("/v1/models", headers={"Authorization": "Bearer sk-nope"})
    assert [a.status_code for a in (*missing, unknown)] == [401, 401, 401]
    assert [_remaining(a) for a in (*missing, unknown)] == [4, 3, 2]
    assert where_counted == [True, True, True]  # malformed keys need no database


@pytest.mark.django_db(transaction=True)
def test_with_redis_every_check_runs_in_a_thread(
    gateway: str,
    where_counted: list[bool],
    settings: Any,
    scaleout_stores: ScaleOutStores,
    scaleout_redis_prefix: str,
) -> None:
    settings.REDIS_URL = scaleout_stores.redis_url
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "KEY_PREFIX": scaleout_redis_prefix}
    }
    assert not policy.checks_are_local()
    _, raw_key = api_key_create(name="redis", rate_limit=10)
    headers = {"Authorization": f"Bearer {raw_key}"}
    with httpx.Client(base_url=gateway, timeout=10) as client:
        answers = [client.get("/v1/models", headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [_remaining(a) for a in answers] == [9, 8, 7]
    assert where_counted == [False, False, False]
