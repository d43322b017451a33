"""The WebSocket chat consumer, driven with channels' WebsocketCommunicator.

The communicator runs the project's whole ASGI websocket stack (Origin check,
session, key auth, routing, consumer) in the test's event loop; the consumer
reaches the fake Ollama through the real `ollama` client over a real socket.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from keys.models import UsageRecord
from keys.services import api_key_create, api_key_revoke
from localai_site.asgi import application
from realtime.models import ChatMessage, ChatSession

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

TIMEOUT = 5


# --- helpers ----------------------------------------------------------------------


def bearer(raw_key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {raw_key}".encode())]


async def open_ws(
    path: str = "/ws/chat/s1",
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    subprotocols: list[str] | None = None,
) -> tuple[WebsocketCommunicator, bool, Any]:
    communicator = WebsocketCommunicator(
        application, path, headers=headers or [], subprotocols=subprotocols
    )
    connected, detail = await communicator.connect(timeout=TIMEOUT)
    return communicator, connected, detail


async def open_chat(raw_key: str, path: str = "/ws/chat/s1") -> WebsocketCommunicator:
    communicator, connected, _ = await open_ws(path, headers=bearer(raw_key))
    assert connected
    return communicator


async def receive(communicator: WebsocketCommunicator) -> dict[str, Any]:
    return await communicator.receive_json_from(timeout=TIMEOUT)


async def receive_until(communicator: WebsocketCommunicator, *types: str) -> list[dict[str, Any]]:
    """Frames up to and including the first one whose type is in `types`."""
    frames = []
    while True:
        frame = await receive(communicator)
        frames.append(frame)
        if frame["type"] in types:
            return frames


async def receive_close(communicator: WebsocketCommunicator) -> int:
    message = await communicator.receive_output(timeout=TIMEOUT)
    assert message["type"] == "websocket.close", message
    return message.get("code", 1000)


async def chat(communicator: WebsocketCommunicator, message: str, **fields: Any) -> list[dict]:
    await communicator.send_json_to({"type": "chat", "message": message, **fields})
    return await receive_until(communicator, "assistant_end", "error")


@pytest.fixture
def key_factory(transactional_db):  # type: ignore[no-untyped-def]
    def create(**fields: Any) -> str:
        fields.setdefault("rate_limit", 1_000_000)
        _, raw_key = api_key_create(name=fields.pop("name", "ws test"), **fields)
        return raw_key

    return create


@pytest.fixture
def session_cookie(transactional_db) -> tuple[Any, list[tuple[bytes, bytes]]]:
    """A user logged in through Django's session machinery, and its cookie header."""
    user = get_user_model().objects.create_user(username="alice", password="s3cret-pass")
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    return user, [(b"cookie", cookie.encode())]


# --- authentication -------------------------------------------------------------


async def test_it_closes_4401_without_credentials_before_any_backend_call(fake_ollama):
    communicator, connected, _ = await open_ws()
    assert connected  # accepted only so the client can see the close code
    frame = await receive(communicator)
    assert frame["type"] == "error"
    assert frame["code"] == "invalid_api_key"
    assert await receive_close(communicator) == 4401
    assert fake_ollama.requests == []
    await communicator.disconnect()


async def test_it_closes_4401_for_an_unknown_key(fake_ollama, key_factory):
    raw_key = await sync_to_async(key_factory)()
    # The last character changed, so its checksum fails (it must really change:
    # one key in 62 ends in "x" already, and that one connected).
    other_last = "y" if raw_key.endswith("x") else "x"
    communicator, _, _ = await open_ws(headers=bearer(raw_key[:-1] + other_last))
    assert (await receive(communicator))["code"] == "invalid_api_key"
    assert await receive_close(communicator) == 4401
    await communicator.disconnect()


async def test_it_closes_4401_for_a_non_bearer_authorization_header(fake_ollama, key_factory):
    raw_key = await sync_to_async(key_factory)()
    communicator, _, _ = await open_ws(headers=[(b"authorization", f"Basic {raw_key}".encode())])
    assert (await receive(communicator))["code"] == "invalid_api_key"
    assert await receive_close(communicator) == 4401
    await communicator.disconnect()


async def test_it_closes_4403_for_a_key_not_allowed_to_chat(fake_ollama, key_factory):
    raw_key = await sync_to_async(key_factory)(allowed_endpoints=["embeddings"])
    communicator, _, _ = await open_ws(headers=bearer(raw_key))
    frame = await receive(communicator)
    assert frame["code"] == "endpoint_not_allowed"
    assert await receive_close(communicator) == 4403
    await communicator.disconnect()


async def test_it_closes_4429_when_an_address_keeps_guessing_keys(fake_ollama, settings):
    settings.RATE_LIMIT_UNAUTHENTICATED = 2
    codes = []
    for _ in range(3):
        communicator, _, _ = await open_ws(headers=bearer("lai_wrong"))
        frame = await receive(communicator)
        codes.append((frame["code"], await receive_close(communicator)))
        await communicator.disconnect()
    assert codes == [
        ("invalid_api_key", 4401),
        ("invalid_api_key", 4401),
        ("rate_limit_exceeded", 4429),
    ]


async def test_it_accepts_a_bearer_header_without_subprotocol(fake_ollama, api_key):
    communicator, connected, subprotocol = await open_ws(headers=bearer(api_key))
    assert (connected, subprotocol) == (True, None)
    await communicator.send_json_to({"type": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    await communicator.disconnect()


async def test_it_accepts_a_key_offered_as_subprotocol_and_never_echoes_it(fake_ollama, api_key):
    communicator, connected, subprotocol = await open_ws(
        subprotocols=["localai.v1", f"bearer.{api_key}"]
    )
    assert (connected, subprotocol) == (True, "localai.v1")
    frames = await chat(communicator, "hello")
    assert frames[-1]["type"] == "assistant_end"
    await communicator.disconnect()


async def test_it_accepts_a_logged_in_session(fake_ollama, session_cookie):
    user, cookie = session_cookie
    communicator, connected, subprotocol = await open_ws(
        headers=cookie, subprotocols=["localai.v1"]
    )
    assert (connected, subprotocol) == (True, "localai.v1")
    frames = await chat(communicator, "hello")
    assert frames[-1]["type"] == "assistant_end"
    chat_session = await ChatSession.objects.aget(session_id="s1")
    assert chat_session.user_id == user.pk and chat_session.api_key_id is None
    await communicator.disconnect()


async def test_an_invalid_key_is_refused_even_with_a_valid_session(fake_ollama, session_cookie):
    _, cookie = session_cookie
    communicator, _, _ = await open_ws(headers=[*cookie, *bearer("lai_wrong")])
    assert (await receive(communicator))["code"] == "invalid_api_key"
    assert await receive_close(communicator) == 4401
    await communicator.disconnect()


async def test_it_refuses_a_browser_origin_outside_allowed_hosts(fake_ollama, api_key):
    communicator, connected, _ = await open_ws(
        headers=[*bearer(api_key), (b"origin", b"https://evil.example")]
    )
    assert not connected
    assert fake_ollama.requests == []
    await communicator.disconnect()


async def test_it_accepts_a_browser_from_the_sites_own_origin(fake_ollama, api_key):
    communicator, connected, _ = await open_ws(
        headers=[
            *bearer(api_key),
            (b"host", b"127.0.0.1:8000"),
            (b"origin", b"http://127.0.0.1:8000"),
        ]
    )
    assert connected
    await communicator.disconnect()


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:9999",  # an allowed host name, another port
        "https://127.0.0.1",  # an allowed host name, another scheme and port
        "http://127.0.0.1:9999",
        "https://127.0.0.1:8000",
        "null",
    ],
)
async def test_a_signed_in_browser_on_another_origin_of_an_allowed_host_is_refused(
    fake_ollama, session_cookie, origin
):
    _, cookie = session_cookie
    communicator, connected, _ = await open_ws(
        headers=[*cookie, (b"host", b"127.0.0.1:8000"), (b"origin", origin.encode())],
        subprotocols=["localai.v1"],
    )
    assert not connected
    assert fake_ollama.requests == []
    await communicator.disconnect()


async def test_an_origin_in_csrf_trusted_origins_is_accepted(fake_ollama, api_key, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com"]
    communicator, connected, _ = await open_ws(
        headers=[
            *bearer(api_key),
            (b"host", b"gateway.internal:8000"),
            (b"origin", b"https://chat.example.com"),
        ]
    )
    assert connected
    await communicator.disconnect()


async def test_behind_a_tls_proxy_the_https_origin_is_the_sites_own(fake_ollama, api_key, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    communicator, connected, _ = await open_ws(
        headers=[
            *bearer(api_key),
            (b"host", b"localhost"),
            (b"x-forwarded-proto", b"https"),
            (b"origin", b"https://localhost"),
        ]
    )
    assert connected
    await communicator.disconnect()


async def test_a_key_revoked_mid_connection_is_refused_at_its_next_message(fake_ollama):
    api_key_obj, raw_key = await sync_to_async(api_key_create)(name="soon revoked")
    communicator = await open_chat(raw_key)
    await sync_to_async(api_key_revoke)(api_key=api_key_obj)
    frames = await chat(communicator, "hello")
    assert [frame["type"] for frame in frames] == ["error"]
    assert frames[0]["code"] == "invalid_api_key"
    assert await receive_close(communicator) == 4401
    assert fake_ollama.requests_to("/api/chat") == []
    await communicator.disconnect()


async def test_an_unknown_path_is_closed_4404(fake_ollama, api_key):
    communicator, connected, _ = await open_ws("/ws/nothing/here", headers=bearer(api_key))
    assert connected
    assert (await receive(communicator))["code"] == "not_found"
    assert await receive_close(communicator) == 4404
    await communicator.disconnect()


# --- the conversation ---------------------------------------------------------------


async def test_it_streams_the_reply_in_order_with_the_backends_counts(fake_ollama, api_key):
    fake_ollama.reply = ["Hel", "lo", " there", "!"]
    communicator = await open_chat(api_key)
    frames = await chat(communicator, "hello world", model="llama3.2")

    types = [frame["type"] for frame in frames]
    assert types == ["user_message", "assistant_start"] + ["assistant_chunk"] * 4 + [
        "assistant_end"
    ]
    assert frames[0] == {"type": "user_message", "content": "hello world"}
    assert frames[1] == {"type": "assistant_start", "model": "llama3.2"}
    chunks = [frame["content"] for frame in frames if frame["type"] == "assistant_chunk"]
    assert chunks == ["Hel", "lo", " there", "!"]
    end = frames[-1]
    assert end["full_response"] == "".join(chunks) == "Hello there!"
    assert end["cancelled"] is False
    assert end["finish_reason"] == "stop"
    # The fake counts 2 prompt words + 10 template tokens, and one per content line.
    assert end["usage"] == {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}
    sent = fake_ollama.requests_to("/api/chat")[-1].json
    assert sent["model"] == "llama3.2"
    assert sent["stream"] is True
    assert sent["messages"] == [{"role": "user", "content": "hello world"}]
    await communicator.disconnect()


async def test_chunks_are_sent_as_tokens_arrive_not_at_the_end(fake_ollama, api_key):
    fake_ollama.reply = ["one", " two", " three"]
    fake_ollama.token_delay = 0.3
    communicator = await open_chat(api_key)
    await communicator.send_json_to({"type": "chat", "message": "count"})
    await receive_until(communicator, "assistant_start")
    first = await receive(communicator)
    assert first == {"type": "assistant_chunk", "content": "one"}
    # The backend is still generating while the first chunk is already here.
    assert len(fake_ollama.active_streams) == 1
    await receive_until(communicator, "assistant_end")
    await communicator.disconnect()


async def test_it_uses_the_default_model_and_passes_options(fake_ollama, api_key, settings):
    settings.DEFAULT_CHAT_MODEL = "qwen2.5:14b"
    communicator = await open_chat(api_key)
    frames = await chat(communicator, "hi", temperature=0.2, max_tokens=2)
    assert frames[1]["model"] == "qwen2.5:14b"
    assert frames[-1]["finish_reason"] == "length"
    sent = fake_ollama.requests_to("/api/chat")[-1].json
    assert sent["options"] == {"temperature": 0.2, "num_predict": 2}
    await communicator.disconnect()


async def test_ping_gets_pong(fake_ollama, api_key):
    communicator = await open_chat(api_key)
    await communicator.send_json_to({"type": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    await communicator.disconnect()


async def test_history_is_sent_back_and_grows_with_each_turn(fake_ollama, api_key):
    fake_ollama.reply = ["Sure."]
    communicator = await open_chat(api_key)
    await communicator.send_json_to({"type": "history"})
    assert await receive(communicator) == {"type": "history", "session_id": "s1", "messages": []}
    await chat(communicator, "first")
    await chat(communicator, "second")

    sent = fake_ollama.requests_to("/api/chat")[-1].json["messages"]
    assert sent == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": "second"},
    ]
    await communicator.send_json_to({"type": "history"})
    history = await receive(communicator)
    assert history["messages"] == [*sent, {"role": "assistant", "content": "Sure."}]
    await communicator.disconnect()


async def test_a_reconnect_of_the_same_key_continues_the_conversation(fake_ollama, api_key):
    fake_ollama.reply = ["Noted."]
    communicator = await open_chat(api_key, "/ws/chat/trip")
    await chat(communicator, "my name is Ada")
    await communicator.disconnect()

    communicator = await open_chat(api_key, "/ws/chat/trip")
    await chat(communicator, "what is my name?")
    sent = fake_ollama.requests_to("/api/chat")[-1].json["messages"]
    assert sent == [
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "what is my name?"},
    ]
    await communicator.disconnect()


async def test_another_key_cannot_read_the_conversation(fake_ollama, api_key, key_factory):
    fake_ollama.reply = ["Noted."]
    communicator = await open_chat(api_key, "/ws/chat/shared-name")
    await chat(communicator, "my secret is 42")
    await communicator.disconnect()

    other_key = await sync_to_async(key_factory)(name="other")
    communicator = await open_chat(other_key, "/ws/chat/shared-name")
    await communicator.send_json_to({"type": "history"})
    assert (await receive(communicator))["messages"] == []
    await chat(communicator, "what is the secret?")
    sent = fake_ollama.requests_to("/api/chat")[-1].json["messages"]
    assert sent == [{"role": "user", "content": "what is the secret?"}]
    assert await ChatSession.objects.filter(session_id="shared-name").acount() == 2
    await communicator.disconnect()


async def test_a_session_user_and_a_key_have_separate_conversations(
    fake_ollama, api_key, session_cookie
):
    _, cookie = session_cookie
    communicator = await open_chat(api_key)
    await chat(communicator, "from the key")
    await communicator.disconnect()

    communicator, connected, _ = await open_ws(headers=cookie)
    assert connected
    await communicator.send_json_to({"type": "history"})
    assert (await receive(communicator))["messages"] == []
    await communicator.disconnect()


async def test_clear_forgets_the_conversation(fake_ollama, api_key):
    communicator = await open_chat(api_key)
    await chat(communicator, "remember this")
    await communicator.send_json_to({"type": "clear"})
    assert await receive(communicator) == {"type": "cleared"}
    await chat(communicator, "fresh start")
    sent = fake_ollama.requests_to("/api/chat")[-1].json["messages"]
    assert sent == [{"role": "user", "content": "fresh start"}]
    assert await ChatMessage.objects.acount() == 2
    await communicator.disconnect()


async def test_usage_is_recorded_per_generation_against_the_key(fake_ollama, key_factory):
    raw_key = await sync_to_async(key_factory)()
    fake_ollama.reply = ["a", "b"]
    communicator = await open_chat(raw_key)
    await chat(communicator, "one two three")
    await communicator.disconnect()
    record = await UsageRecord.objects.aget()
    assert (record.endpoint, record.model, record.status) == ("ws_chat", "qwen2.5:14b", 200)
    assert (record.prompt_tokens, record.completion_tokens) == (13, 2)
    assert not record.error_code


# --- cancel, disconnect, backend failures ------------------------------------------


async def test_cancel_stops_the_generation_and_closes_the_backend_request(fake_ollama, api_key):
    fake_ollama.reply = [f" t{i}" for i in range(50)]
    fake_ollama.token_delay = 0.1
    communicator = await open_chat(api_key)
    await communicator.send_json_to({"type": "chat", "message": "go on"})
    await receive_until(communicator, "assistant_chunk")
    await communicator.send_json_to({"type": "cancel"})
    frames = await receive_until(communicator, "assistant_end")
    end = frames[-1]
    assert end["cancelled"] is True
    assert end["finish_reason"] == "cancelled"
    assert end["full_response"].startswith(" t0")
    assert len(end["full_response"]) < len("".join(fake_ollama.reply))

    record = await asyncio.to_thread(fake_ollama.wait_for_stream_end, TIMEOUT)
    assert record.outcome == "client_disconnected"
    assert record.tokens_sent < 50
    # What the user saw is kept, marked cancelled; the connection stays usable.
    answer = await ChatMessage.objects.aget(role="assistant")
    assert answer.cancelled and answer.content == end["full_response"]
    await communicator.send_json_to({"type": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    await communicator.disconnect()


async def test_cancel_with_nothing_generating_is_an_error(fake_ollama, api_key):
    communicator = await open_chat(api_key)
    await communicator.send_json_to({"type": "cancel"})
    frame = await receive(communicator)
    assert (frame["type"], frame["code"]) == ("error", "nothing_to_cancel")
    await communicator.disconnect()


async def test_clear_during_a_generation_cancels_it_first(fake_ollama, api_key):
    fake_ollama.reply = [f" t{i}" for i in range(50)]
    fake_ollama.token_delay = 0.1
    communicator = await open_chat(api_key)
    await communicator.send_json_to({"type": "chat", "message": "go on"})
    await receive_until(communicator, "assistant_chunk")
    await communicator.send_json_to({"type": "clear"})
    frames = await receive_until(communicator, "cleared")
    assert [f["type"] for f in frames][-2:] == ["assistant_end", "cleared"]
    assert await ChatMessage.objects.acount() == 0
    record = await asyncio.to_thread(fake_ollama.wait_for_stream_end, TIMEOUT)
    assert record.outcome == "client_disconnected"
    await communicator.disconnect()


async def test_a_client_that_disconnects_mid_generation_closes_the_backend_request(
    fake_ollama, key_factory
):
    raw_key = await sync_to_async(key_factory)()
    fake_ollama.reply = [f" t{i}" for i in range(50)]
    fake_ollama.token_delay = 0.1
    communicator = await open_chat(raw_key)
    await communicator.send_json_to({"type": "chat", "message": "go on"})
    await receive_until(communicator, "assistant_chunk")
    await communicator.disconnect()

    record = await asyncio.to_thread(fake_ollama.wait_for_stream_end, TIMEOUT)
    assert record.outcome == "client_disconnected"
    assert record.tokens_sent < 50
    usage = await UsageRecord.objects.aget()
    assert (usage.status, usage.error_code) == (499, "cancelled")


async def test_a_second_chat_while_generating_is_refused_and_the_first_completes(
    fake_ollama, api_key
):
    fake_ollama.reply = ["a", "b", "c", "d"]
    fake_ollama.token_delay = 0.2
    communicator = await open_chat(api_key)
    await communicator.send_json_to({"type": "chat", "message": "first"})
    await receive_until(communicator, "assistant_chunk")
    await communicator.send_json_to({"type": "chat", "message": "second"})
    frames = await receive_until(communicator, "assistant_end")
    errors = [frame for frame in frames if frame["type"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == "generation_in_progress"
    assert frames[-1]["full_response"] == "abcd"
    assert len(fake_ollama.requests_to("/api/chat")) == 1
    await communicator.disconnect()


async def test_the_backend_dying_mid_stream_is_an_error_event(fake_ollama, api_key):
    fake_ollama.reply = ["a", "b", "c", "d"]
    fake_ollama.disconnect_after_tokens = 2
    communicator = await open_chat(api_key)
    frames = await chat(communicator, "hello")
    assert [frame["type"] for frame in frames] == [
        "user_message",
        "assistant_start",
        "assistant_chunk",
        "assistant_chunk",
        "error",
    ]
    assert frames[-1]["code"] == "backend_error"
    # A failed turn is not stored; the connection stays usable.
    assert await ChatMessage.objects.acount() == 0
    fake_ollama.disconnect_after_tokens = None
    frames = await chat(communicator, "again")
    assert frames[-1]["type"] == "assistant_end"
    await communicator.disconnect()


async def test_an_error_line_mid_stream_is_an_error_event(fake_ollama, api_key):
    fake_ollama.error_after_tokens = 1
    communicator = await open_chat(api_key)
    frames = await chat(communicator, "hello there")
    assert frames[-1]["type"] == "error"
    assert frames[-1]["code"] == "backend_error"
    await communicator.disconnect()


async def test_an_unknown_model_is_an_error_event(fake_ollama, api_key):
    communicator = await open_chat(api_key)
    frames = await chat(communicator, "hello", model="no-such-model")
    assert frames[-1]["type"] == "error"
    assert frames[-1]["code"] == "model_not_found"
    assert frames[-1]["status"] == 404
    await communicator.disconnect()


async def test_an_unreachable_backend_is_an_error_event(dead_ollama, api_key):
    communicator = await open_chat(api_key)
    frames = await chat(communicator, "hello")
    assert frames[-1]["type"] == "error"
    assert frames[-1]["code"] == "backend_unavailable"
    await communicator.disconnect()


async def test_a_busy_backend_is_an_error_event_with_retry_after(fake_ollama, api_key):
    fake_ollama.busy = True
    communicator = await open_chat(api_key)
    frames = await chat(communicator, "hello")
    assert frames[-1]["code"] == "backend_busy"
    assert frames[-1]["retry_after"] >= 1
    await communicator.disconnect()


# --- limits and permissions ----------------------------------------------------------


async def test_each_chat_message_counts_against_the_keys_chat_limit(fake_ollama, key_factory):
    raw_key = await sync_to_async(key_factory)(rate_limit=2)
    communicator = await open_chat(raw_key)
    assert (await chat(communicator, "one"))[-1]["type"] == "assistant_end"
    assert (await chat(communicator, "two"))[-1]["type"] == "assistant_end"
    frames = await chat(communicator, "three")
    assert [frame["type"] for frame in frames] == ["error"]
    assert frames[0]["code"] == "rate_limit_exceeded"
    assert frames[0]["status"] == 429
    assert isinstance(frames[0]["retry_after"], int) and frames[0]["retry_after"] >= 1
    assert len(fake_ollama.requests_to("/api/chat")) == 2
    await communicator.send_json_to({"type": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    await communicator.disconnect()


async def test_a_session_user_is_limited_per_user_with_the_chat_default(
    fake_ollama, session_cookie, settings
):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "chat": 1}
    _, cookie = session_cookie
    communicator, _, _ = await open_ws(headers=cookie)
    assert (await chat(communicator, "one"))[-1]["type"] == "assistant_end"
    frames = await chat(communicator, "two")
    assert frames[-1]["code"] == "rate_limit_exceeded"
    await communicator.disconnect()
    # Another connection of the same user shares the budget.
    communicator, _, _ = await open_ws("/ws/chat/other", headers=cookie)
    assert (await chat(communicator, "three"))[-1]["code"] == "rate_limit_exceeded"
    await communicator.disconnect()


async def test_a_key_restricted_to_some_models_cannot_chat_with_others(fake_ollama, key_factory):
    raw_key = await sync_to_async(key_factory)(allowed_models=["llama3.2"])
    communicator = await open_chat(raw_key)
    frames = await chat(communicator, "hello", model="qwen2.5:14b")
    assert frames[-1]["code"] == "model_not_allowed"
    assert fake_ollama.requests_to("/api/chat") == []
    assert (await chat(communicator, "hello", model="llama3.2"))[-1]["type"] == "assistant_end"
    await communicator.disconnect()


# --- bad frames: an error event each, and the connection stays usable ----------------


@pytest.mark.parametrize(
    ("frame", "code", "param"),
    [
        ("{not json", "bad_request", "frame"),
        ("[1, 2]", "bad_request", "frame"),
        ('"chat"', "bad_request", "frame"),
        ('{"type": "dance"}', "unknown_type", "type"),
        ('{"message": "no type"}', "unknown_type", "type"),
        ('{"type": "chat"}', "validation_error", "message"),
        ('{"type": "chat", "message": "   "}', "validation_error", "message"),
        ('{"type": "chat", "message": 42}', "validation_error", "message"),
        ('{"type": "chat", "message": "hi", "model": ""}', "validation_error", "model"),
        ('{"type": "chat", "message": "hi", "temperature": 5}', "validation_error", "temperature"),
        ('{"type": "chat", "message": "hi", "max_tokens": 0}', "validation_error", "max_tokens"),
    ],
)
async def test_a_bad_frame_gets_an_error_event_and_the_connection_stays_usable(
    fake_ollama, api_key, frame, code, param
):
    communicator = await open_chat(api_key)
    await communicator.send_to(text_data=frame)
    error = await receive(communicator)
    assert error["type"] == "error"
    assert (error["code"], error["param"]) == (code, param)
    assert error["message"]
    if code == "validation_error":
        assert error["details"][0]["loc"] == param
    await communicator.send_json_to({"type": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    assert fake_ollama.requests_to("/api/chat") == []
    await communicator.disconnect()


async def test_a_binary_frame_gets_an_error_event(fake_ollama, api_key):
    communicator = await open_chat(api_key)
    await communicator.send_to(bytes_data=b'{"type": "ping"}')
    error = await receive(communicator)
    assert (error["type"], error["code"]) == ("error", "bad_request")
    await communicator.send_json_to({"type": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    await communicator.disconnect()


async def test_an_oversized_frame_gets_an_error_event(fake_ollama, api_key, settings):
    settings.WS_MAX_MESSAGE_BYTES = 1000
    communicator = await open_chat(api_key)
    await communicator.send_json_to({"type": "chat", "message": "x" * 2000})
    error = await receive(communicator)
    assert (error["code"], error["status"]) == ("request_too_large", 413)
    assert "1000 bytes" in error["message"]
    assert fake_ollama.requests_to("/api/chat") == []
    frames = await chat(communicator, "small enough")
    assert frames[-1]["type"] == "assistant_end"
    await communicator.disconnect()


# --- idle connections -------------------------------------------------------------------


async def test_an_idle_connection_is_told_and_closed_4408(fake_ollama, api_key, settings):
    settings.WS_IDLE_TIMEOUT = 0.3
    communicator = await open_chat(api_key)
    frame = await receive(communicator)
    assert (frame["type"], frame["code"]) == ("error", "idle_timeout")
    assert await receive_close(communicator) == 4408
    await communicator.disconnect()


async def test_a_connection_receiving_an_answer_is_not_idle(fake_ollama, api_key, settings):
    settings.WS_IDLE_TIMEOUT = 0.3
    fake_ollama.reply = ["a", "b", "c", "d", "e"]
    fake_ollama.token_delay = 0.15
    communicator = await open_chat(api_key)
    frames = await chat(communicator, "take your time")
    assert frames[-1]["type"] == "assistant_end"
    assert frames[-1]["full_response"] == "abcde"
    # Idle again once the answer is done.
    assert (await receive(communicator))["code"] == "idle_timeout"
    assert await receive_close(communicator) == 4408
    await communicator.disconnect()


async def test_subprotocols_passed_as_one_comma_joined_header_value_are_understood(
    fake_ollama, api_key
):
    # What a server that does not split `Sec-WebSocket-Protocol` hands over.
    communicator, connected, subprotocol = await open_ws(
        subprotocols=[f"localai.v1, bearer.{api_key}"]
    )
    assert (connected, subprotocol) == (True, "localai.v1")
    await communicator.send_json_to({"type": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    await communicator.disconnect()
