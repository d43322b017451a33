"""The chat page's HTTP side (page, model list, sign-in) and the channel layer choice."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from keys.services import api_key_create
from localai_site.asgi import application
from tests.fake_ollama import FakeOllama

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def signed_in_client(db) -> Client:  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_user(username="dana", password="pw-for-dana-123")
    client = Client()
    client.force_login(user)
    return client


# --- the page -------------------------------------------------------------------------


def test_the_page_offers_sign_in_and_a_key_field_when_signed_out(client, db):  # type: ignore[no-untyped-def]
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="sign-in-link"' in body
    assert 'id="key-input"' in body
    assert 'data-authenticated="false"' in body
    assert '<script type="module" src="/static/realtime/chat_page.js">' in body


def test_the_page_shows_the_signed_in_user_and_no_key_field(signed_in_client):  # type: ignore[no-untyped-def]
    body = signed_in_client.get("/").content.decode()
    assert "Signed in as <strong>dana</strong>" in body
    assert 'id="key-input"' not in body
    assert 'data-authenticated="true"' in body


def test_the_login_form_signs_in_and_redirects_to_the_page(db):  # type: ignore[no-untyped-def]
    get_user_model().objects.create_user(username="erin", password="pw-for-erin-123")
    client = Client(enforce_csrf_checks=True)
    form = client.get("/accounts/login/")
    token = form.cookies["csrftoken"].value
    response = client.post(
        "/accounts/login/",
        {"username": "erin", "password": "pw-for-erin-123", "csrfmiddlewaretoken": token},
    )
    assert (response.status_code, response["Location"]) == (302, "/")
    assert "sessionid" in response.cookies


def test_a_wrong_password_is_refused_on_the_form(db):  # type: ignore[no-untyped-def]
    get_user_model().objects.create_user(username="erin", password="pw-for-erin-123")
    response = Client().post("/accounts/login/", {"username": "erin", "password": "nope"})
    assert response.status_code == 200
    assert "didn't match" in response.content.decode()


def test_sign_out_ends_the_session(signed_in_client):  # type: ignore[no-untyped-def]
    response = signed_in_client.post("/accounts/logout/")
    assert (response.status_code, response["Location"]) == (302, "/")
    assert 'data-authenticated="false"' in signed_in_client.get("/").content.decode()


def test_the_client_module_is_served_as_javascript(client, db):  # type: ignore[no-untyped-def]
    response = client.get("/static/realtime/chat_client.js")
    assert response.status_code == 200
    assert "javascript" in response["Content-Type"]
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"export class ChatSocket" in body


# --- /chat/models -----------------------------------------------------------------------


def test_models_for_a_signed_in_user_are_the_chat_capable_ones(
    signed_in_client, fake_ollama: FakeOllama
):  # type: ignore[no-untyped-def]
    response = signed_in_client.get("/chat/models")
    assert response.status_code == 200
    assert response.json() == {
        "models": [
            model.display_name
            for model in sorted_models(fake_ollama)
            if "completion" in model.capabilities
        ],
        "default": "qwen2.5:14b",
    }
    # The embedding-only model, which would fail in the page, is not offered.
    assert "mxbai-embed-large:latest" not in response.json()["models"]


def test_models_with_a_pasted_key_respect_its_model_list(client, db, fake_ollama):  # type: ignore[no-untyped-def]
    _, raw_key = api_key_create(name="narrow", allowed_models=["llama3.2"])
    response = client.get("/chat/models", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert response.status_code == 200
    assert response.json()["models"] == ["llama3.2:latest"]


def test_models_without_credentials_is_401_in_the_envelope(client, db, fake_ollama):  # type: ignore[no-untyped-def]
    response = client.get("/chat/models")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert fake_ollama.requests == []


def test_models_with_a_dead_backend_is_503_in_the_envelope(signed_in_client, dead_ollama):  # type: ignore[no-untyped-def]
    response = signed_in_client.get("/chat/models")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "backend_unavailable"


def sorted_models(fake: FakeOllama) -> list:  # type: ignore[type-arg]
    """The fake's catalogue in the order Ollama lists it: newest first."""
    return sorted(fake.models, key=lambda model: model.modified_at, reverse=True)


# --- the channel layer ------------------------------------------------------------------


def _settings_channel_layer(redis_url: str) -> dict:  # type: ignore[type-arg]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "localai_site.settings", "REDIS_URL": redis_url}
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.CHANNEL_LAYERS['default']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def test_the_channel_layer_is_in_memory_without_redis_and_redis_with_it():
    assert _settings_channel_layer("") == {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    assert _settings_channel_layer("redis://127.0.0.1:6379/3") == {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:6379/3"]},
    }


def _redis_listening() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.scaleout
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_chat_works_over_the_redis_channel_layer(fake_ollama, api_key, settings):  # type: ignore[no-untyped-def]
    if not _redis_listening():
        if os.environ.get("CI") == "true":
            pytest.fail("Redis is not listening on 127.0.0.1:6379")
        pytest.skip("Redis is not listening on 127.0.0.1:6379")
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:6379/3"], "prefix": "localai-test"},
        }
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    try:
        communicator = WebsocketCommunicator(
            application,
            "/ws/chat/redis",
            headers=[(b"authorization", f"Bearer {api_key}".encode())],
        )
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        await communicator.send_json_to({"type": "chat", "message": "over redis"})
        frames = []
        while not frames or frames[-1]["type"] not in ("assistant_end", "error"):
            frames.append(await communicator.receive_json_from(timeout=5))
        assert frames[-1]["type"] == "assistant_end"
        await communicator.disconnect()
    finally:
        channel_layers.backends.clear()


def test_models_with_a_key_count_against_its_models_limit(client, db, fake_ollama):  # type: ignore[no-untyped-def]
    _, raw_key = api_key_create(name="slow", rate_limit=1)
    first = client.get("/chat/models", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    second = client.get("/chat/models", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert (first.status_code, second.status_code) == (200, 429)
    assert second.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(second["Retry-After"]) >= 1
