"""Broadcast: a notice sent from the admin reaches chat sockets held by two server
processes (PostgreSQL + Redis channel layer), to everyone or to one key's sessions.

Needs the machine's PostgreSQL and Redis (skipped when absent, fails under CI=true).
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import psycopg
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.conftest import ScaleOutStores
from tests.fake_ollama import FakeOllama
from tests.processes import manage, migrated_with_key, server_env, two_servers

pytestmark = pytest.mark.scaleout

TIMEOUT = 20


def chat_socket(base: str, raw_key: str, session: str) -> ClientConnection:
    """A chat connection that has joined its notice groups (its ping was answered)."""
    socket = connect(
        base.replace("http://", "ws://") + f"/ws/chat/{session}",
        additional_headers={"Authorization": f"Bearer {raw_key}"},
        open_timeout=TIMEOUT,
    )
    socket.send(json.dumps({"type": "ping"}))
    assert next_frame(socket)["type"] == "pong"
    return socket


def next_frame(socket: ClientConnection) -> dict[str, Any]:
    return json.loads(socket.recv(timeout=TIMEOUT))


def csrf_token(page: httpx.Response) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert match, page.text[:500]
    return match.group(1)


def admin_signed_in(client: httpx.Client, base: str) -> None:
    login = client.get(f"{base}/admin/login/")
    signed_in = client.post(
        f"{base}/admin/login/?next=/admin/",
        data={
            "username": "op",
            "password": "op-password-1",
            "csrfmiddlewaretoken": csrf_token(login),
            "next": "/admin/",
        },
    )
    assert signed_in.status_code == 302, signed_in.text[:500]


def notice_send(client: httpx.Client, base: str, **fields: str) -> None:
    form = client.get(f"{base}/admin/ops/broadcast/")
    sent = client.post(
        f"{base}/admin/ops/broadcast/",
        data={"csrfmiddlewaretoken": csrf_token(form), "level": "warning", **fields},
    )
    assert sent.status_code == 302, sent.text[:2000]


def test_a_notice_from_the_admin_reaches_chats_on_both_processes(
    scaleout_stores: ScaleOutStores,
    scaleout_database: str,
    scaleout_redis_prefix: str,
    fake_ollama: FakeOllama,
) -> None:
    env = server_env(
        DATABASE_URL=scaleout_database,
        REDIS_URL=scaleout_stores.redis_url,
        CACHE_KEY_PREFIX=scaleout_redis_prefix,
        OLLAMA_HOST=fake_ollama.url,
        LOG_LEVEL="WARNING",
    )
    alice_key, _ = migrated_with_key(env, "alice", rate_limit=1000)
    bob_key, bob_prefix = migrated_with_key(env, "bob", rate_limit=1000)
    manage(
        {**env, "DJANGO_SUPERUSER_PASSWORD": "op-password-1"},
        *("createsuperuser", "--noinput", "--username", "op", "--email", "op@example.com"),
    )
    with psycopg.connect(scaleout_database) as conn:
        (bob_id,) = conn.execute(
            "SELECT id FROM keys_apikey WHERE prefix = %s", (bob_prefix,)
        ).fetchone()

    with two_servers(env) as ((one, other), client):
        for base in (one, other):  # started (a busy machine can take a while)
            assert client.get(f"{base}/healthz", timeout=90).status_code == 200
        alice_one = chat_socket(one, alice_key, "a1")
        alice_other = chat_socket(other, alice_key, "a2")
        bob_other = chat_socket(other, bob_key, "b1")
        admin_signed_in(client, one)

        notice_send(client, one, message="Restarting in 5 minutes")
        everyone = [next_frame(s) for s in (alice_one, alice_other, bob_other)]

        notice_send(client, one, message="Bob, your key expires today", api_key=str(bob_id))
        to_bob = next_frame(bob_other)
        # Alice's next frame is the next notice to everyone: she never got Bob's.
        notice_send(client, one, message="Back in a minute", level="info")
        after = [next_frame(s) for s in (alice_one, alice_other, bob_other)]
        for socket in (alice_one, alice_other, bob_other):
            socket.close()

    assert (
        everyone
        == [{"type": "notice", "message": "Restarting in 5 minutes", "level": "warning"}] * 3
    )
    assert to_bob == {
        "type": "notice",
        "message": "Bob, your key expires today",
        "level": "warning",
    }
    assert [frame["message"] for frame in after] == ["Back in a minute"] * 3
