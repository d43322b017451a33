"""Keys, limits and errors on `/ollama/` as the official `ollama` client sees them.

Errors are Ollama's `{"error": "<message>"}` with the real status, so
`ollama.ResponseError` carries both; model management needs a key that
lists `ollama_admin` explicitly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import ollama
import pytest
from aiohttp import web

from keys.models import ApiKey
from keys.services import api_key_create
from tests.fake_ollama import FakeOllama

USER = [{"role": "user", "content": "Say hello"}]


def ollama_client(gateway: str, key: str | None) -> ollama.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return ollama.Client(host=f"{gateway}/ollama", headers=headers, timeout=10)


@pytest.fixture
def client(gateway: str, api_key: str) -> Iterator[ollama.Client]:
    with ollama_client(gateway, api_key) as c:
        yield c


def key_with_groups(groups: list[str], **kwargs) -> str:
    key, raw = api_key_create(name="scoped", rate_limit=1_000_000, **kwargs)
    # Written directly: `ollama_admin` is granted by listing it (EXPLICIT_ONLY_GROUPS).
    ApiKey.objects.filter(pk=key.pk).update(allowed_endpoints=groups)
    return raw


# --- keys ---------------------------------------------------------------------------------


def test_the_client_without_a_key_is_refused_with_a_readable_error(
    gateway: str, fake_ollama: FakeOllama
) -> None:
    with ollama_client(gateway, None) as client, pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="qwen2.5:14b", messages=USER)

    assert caught.value.status_code == 401
    assert isinstance(caught.value.error, str)
    assert "API key" in caught.value.error
    assert fake_ollama.requests == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/ollama/api/tags"),
        ("GET", "/ollama/api/ps"),
        ("GET", "/ollama/api/version"),
        ("POST", "/ollama/api/show"),
        ("POST", "/ollama/api/chat"),
        ("POST", "/ollama/api/generate"),
        ("POST", "/ollama/api/embed"),
        ("POST", "/ollama/api/embeddings"),
        ("POST", "/ollama/api/pull"),
        ("DELETE", "/ollama/api/delete"),
    ],
)
def test_every_ollama_route_needs_a_key(
    http: httpx.Client, fake_ollama: FakeOllama, method: str, path: str
) -> None:
    response = http.request(method, path, json={"model": "qwen2.5:14b"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert isinstance(response.json()["error"], str)
    assert fake_ollama.requests == []


def test_a_wrong_key_is_refused(gateway: str) -> None:
    with ollama_client(gateway, "lai_wrong") as client, pytest.raises(ollama.ResponseError) as e:
        client.list()

    assert e.value.status_code == 401


def test_a_model_outside_the_keys_allow_list_is_a_403(
    gateway: str, fake_ollama: FakeOllama, db
) -> None:
    _, raw = api_key_create(name="llama only", allowed_models=["llama3.2"])

    with ollama_client(gateway, raw) as client:
        assert client.chat(model="llama3.2", messages=USER).message.content
        with pytest.raises(ollama.ResponseError) as caught:
            client.chat(model="qwen2.5:14b", messages=USER, stream=False)
        with pytest.raises(ollama.ResponseError):
            client.show("qwen2.5:14b")

    assert caught.value.status_code == 403
    assert "qwen2.5:14b" in caught.value.error
    assert len(fake_ollama.requests_to("/api/chat")) == 1


def test_over_the_rate_limit_is_a_429_with_retry_after(
    gateway: str, fake_ollama: FakeOllama, db
) -> None:
    _, raw = api_key_create(name="one a minute", rate_limit=1)

    with ollama_client(gateway, raw) as client:
        client.list()
        with pytest.raises(ollama.ResponseError) as caught:
            client.list()
    with httpx.Client(base_url=gateway) as http:
        response = http.get("/ollama/api/tags", headers={"Authorization": f"Bearer {raw}"})

    assert caught.value.status_code == 429
    assert "Rate limit" in caught.value.error
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.json()["error"].startswith("Rate limit exceeded")


# --- backend and input errors ----------------------------------------------------------------


def test_an_unknown_model_is_a_404_not_found(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as whole:
        client.chat(model="no-such-model", messages=USER)
    with pytest.raises(ollama.ResponseError) as streamed:
        list(client.chat(model="no-such-model", messages=USER, stream=True))
    with pytest.raises(ollama.ResponseError) as shown:
        client.show("no-such-model")

    for caught in (whole, streamed, shown):
        assert caught.value.status_code == 404
        assert "not found" in caught.value.error


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/ollama/api/chat", {"messages": USER}, 400, "model is required"),
        ("/ollama/api/show", {}, 400, "model is required"),
        ("/ollama/api/generate", {"prompt": "hi"}, 404, "model '' not found"),
        ("/ollama/api/embed", {"input": "hi"}, 404, "model '' not found"),
        ("/ollama/api/chat", {"model": "qwen2.5:14b", "think": "lots"}, 400, "think"),
        ("/ollama/api/chat", {"model": "qwen2.5:14b", "format": "yaml"}, 400, "format"),
        ("/ollama/api/embed", {"model": "mxbai-embed-large", "input": 5}, 400, "invalid input"),
    ],
)
def test_bad_input_is_answered_like_ollama(
    http: httpx.Client,
    auth_headers: dict,
    fake_ollama: FakeOllama,
    path: str,
    body: dict,
    status: int,
    message: str,
) -> None:
    response = http.post(path, headers=auth_headers, json=body)

    assert response.status_code == status
    assert message in response.json()["error"]
    assert fake_ollama.requests == []


def test_a_missing_or_malformed_body_is_a_400(http: httpx.Client, auth_headers: dict) -> None:
    empty = http.post("/ollama/api/chat", headers=auth_headers)
    broken = http.post("/ollama/api/chat", headers=auth_headers, content=b'{"model": ')

    assert (empty.status_code, empty.json()) == (400, {"error": "missing request body"})
    assert broken.status_code == 400
    assert isinstance(broken.json()["error"], str)


def test_an_unknown_ollama_route_is_404_page_not_found(
    http: httpx.Client, auth_headers: dict
) -> None:
    response = http.post("/ollama/api/blobs/sha256:abc", headers=auth_headers)

    assert response.status_code == 404
    assert response.json() == {"error": "404 page not found"}


def test_a_busy_backend_is_a_503_with_retry_after(
    http: httpx.Client, auth_headers: dict, client: ollama.Client, fake_ollama: FakeOllama
) -> None:
    fake_ollama.busy = True

    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="qwen2.5:14b", messages=USER)
    response = http.post(
        "/ollama/api/chat",
        headers=auth_headers,
        json={"model": "qwen2.5:14b", "messages": USER, "stream": False},
    )

    assert caught.value.status_code == 503
    assert "busy" in caught.value.error
    assert int(response.headers["retry-after"]) >= 1


def test_an_unreachable_backend_is_a_503(gateway: str, api_key: str, dead_ollama: str) -> None:
    with ollama_client(gateway, api_key) as client, pytest.raises(ollama.ResponseError) as e:
        client.list()

    assert e.value.status_code == 503
    assert dead_ollama in e.value.error


def test_a_failure_mid_stream_is_an_error_line_the_client_raises(
    client: ollama.Client, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["a", "b", "c", "d"]
    fake_ollama.error_after_tokens = 2
    received = []

    with pytest.raises(ollama.ResponseError) as caught:
        for part in client.chat(model="qwen2.5:14b", messages=USER, stream=True):
            received.append(part.message.content)

    assert received == ["a", "b"]
    assert caught.value.status_code == -1  # ollama-python's mark for an in-stream error line
    assert "an error was encountered while running the model" in caught.value.error


def test_closing_the_client_stream_closes_the_backend_request(
    client: ollama.Client, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = [f"w{i} " for i in range(200)]
    fake_ollama.token_delay = 0.05

    parts = client.generate(model="qwen2.5:14b", prompt="Go on", stream=True)
    next(parts)
    next(parts)
    parts.close()
    closed_at = time.monotonic()

    record = fake_ollama.wait_for_stream_end(timeout=5)
    assert record.path == "/api/generate"
    assert record.outcome == "client_disconnected"
    assert record.ended_at - closed_at < 1.0
    assert record.tokens_sent < 200


@pytest.mark.asyncio
async def test_the_async_client_sees_the_same_errors(gateway: str, api_key: str) -> None:
    async with ollama.AsyncClient(host=f"{gateway}/ollama") as anonymous:
        with pytest.raises(ollama.ResponseError) as refused:
            await anonymous.list()
    async with ollama.AsyncClient(
        host=f"{gateway}/ollama", headers={"Authorization": f"Bearer {api_key}"}
    ) as client:
        with pytest.raises(ollama.ResponseError) as missing:
            await client.chat(model="missing:1b", messages=USER)

    assert refused.value.status_code == 401
    assert missing.value.status_code == 404


# --- model management (ollama_admin) ----------------------------------------------------------


@pytest.fixture
def managing_ollama(fake_ollama: FakeOllama, settings) -> Iterator[FakeOllama]:
    """A fake Ollama that also answers pull, push, create, delete and copy.

    The shared fake has no model-management routes; these are registered on a
    separate instance so the shared one stays untouched.
    """
    fake = FakeOllama()

    async def progress(call) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(call.request)
        for line in (
            {"status": "pulling manifest"},
            {"status": "downloading", "digest": "sha256:abc", "total": 100, "completed": 100},
            {"status": "success"},
        ):
            await response.write(json.dumps(line).encode() + b"\n")
        await response.write_eof()
        return response

    async def ok(call) -> web.Response:
        return web.Response(status=200)

    for path in ("/api/pull", "/api/push", "/api/create"):
        fake._routes[path] = {"POST": progress}
    fake._routes["/api/delete"] = {"DELETE": ok}
    fake._routes["/api/copy"] = {"POST": ok}
    fake.start()
    settings.OLLAMA_HOST = fake.url
    yield fake
    fake.stop()


@pytest.mark.parametrize(
    "operation",
    [
        lambda c: c.pull("llama3.2"),
        lambda c: c.push("me/llama3.2"),
        lambda c: c.create(model="mine", from_="llama3.2", system="Be nice"),
        lambda c: c.delete("llama3.2"),
        lambda c: c.copy("llama3.2", "backup"),
    ],
    ids=["pull", "push", "create", "delete", "copy"],
)
def test_model_management_is_refused_to_a_key_without_ollama_admin(
    client: ollama.Client, managing_ollama: FakeOllama, operation
) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        operation(client)

    assert caught.value.status_code == 403
    assert "ollama_admin" in caught.value.error
    assert managing_ollama.requests == []


def test_a_key_limited_to_other_groups_cannot_manage_models_either(
    gateway: str, managing_ollama: FakeOllama, db
) -> None:
    raw = key_with_groups(["models", "chat", "embeddings"])

    with ollama_client(gateway, raw) as client, pytest.raises(ollama.ResponseError) as caught:
        client.delete("llama3.2")

    assert caught.value.status_code == 403
    assert managing_ollama.requests == []


def test_a_key_that_lists_ollama_admin_manages_models(
    gateway: str, managing_ollama: FakeOllama, db
) -> None:
    raw = key_with_groups(["models", "ollama_admin"])

    with ollama_client(gateway, raw) as client:
        pulled = client.pull("llama3.2")
        progress = list(client.pull("llama3.2", stream=True))
        created = client.create(model="mine", from_="llama3.2", system="Be nice")
        deleted = client.delete("llama3.2")
        copied = client.copy("llama3.2", "backup")
        with pytest.raises(ollama.ResponseError) as chat:
            client.chat(model="llama3.2", messages=USER)

    assert pulled.status == "success"
    assert [p.status for p in progress] == ["pulling manifest", "downloading", "success"]
    assert progress[1].completed == 100
    assert created.status == "success"
    assert deleted.status == "success" and copied.status == "success"
    assert chat.value.status_code == 403  # its allow-list has no "chat"
    seen = [(r.method, r.path) for r in managing_ollama.requests]
    assert seen == [
        ("POST", "/api/pull"),
        ("POST", "/api/pull"),
        ("POST", "/api/create"),
        ("DELETE", "/api/delete"),
        ("POST", "/api/copy"),
    ]
    create_body = managing_ollama.requests[2].json
    assert (create_body["model"], create_body["from"], create_body["system"]) == (
        "mine",
        "llama3.2",
        "Be nice",
    )
    assert managing_ollama.requests[3].json == {"model": "llama3.2"}
    assert managing_ollama.requests[4].json == {"source": "llama3.2", "destination": "backup"}


def test_the_native_openai_and_ollama_surfaces_share_one_limit(
    gateway: str, fake_ollama: FakeOllama, db
) -> None:
    _, raw = api_key_create(name="two chats a minute", rate_limit=2)
    headers = {"Authorization": f"Bearer {raw}"}
    body = {"model": "qwen2.5:14b", "messages": USER}

    with httpx.Client(base_url=gateway, headers=headers, timeout=10) as http:
        native = http.post("/v1/chat/completions", json=body)
        openai_style = http.post("/openai/v1/chat/completions", json=body)
        ollama_style = http.post("/ollama/api/chat", json={**body, "stream": False})

    assert (native.status_code, openai_style.status_code) == (200, 200)
    assert ollama_style.status_code == 429
    assert ollama_style.json()["error"].startswith("Rate limit exceeded")
    assert len(fake_ollama.requests_to("/api/chat")) == 2
