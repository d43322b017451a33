"""The rough edges real clients hit (issue 15, "smaller things"), each with its fix."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web
from django.contrib.auth import get_user_model

from tests.fake_ollama import FakeOllama


@pytest.fixture
def missing_models_ollama(settings) -> Iterator[FakeOllama]:
    """A fake Ollama whose delete and copy answer as Ollama does for a missing model."""
    fake = FakeOllama()

    async def not_found(call) -> web.Response:
        model = (await call.request.json()).get("model") or "x"
        return web.json_response({"error": f"model '{model}' not found"}, status=404)

    fake._routes["/api/delete"] = {"DELETE": not_found}
    fake._routes["/api/copy"] = {"POST": not_found}
    fake.start()
    settings.OLLAMA_HOST = fake.url
    yield fake
    fake.stop()


@pytest.fixture
def admin_key(db) -> str:
    from keys.models import ApiKey
    from keys.services import api_key_create

    key, raw = api_key_create(name="admin", rate_limit=1_000_000)
    ApiKey.objects.filter(pk=key.pk).update(allowed_endpoints=["ollama_admin", "models"])
    return raw


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("DELETE", "/ollama/api/delete", {"model": "gone:1b"}),
        ("POST", "/ollama/api/copy", {"source": "gone:1b", "destination": "new:1b"}),
    ],
)
def test_deleting_or_copying_a_missing_model_does_not_advise_pulling_it(
    http: httpx.Client, admin_key: str, missing_models_ollama: FakeOllama, method, path, body
) -> None:
    response = http.request(
        method, path, headers={"Authorization": f"Bearer {admin_key}"}, content=json.dumps(body)
    )

    assert response.status_code == 404
    assert response.json() == {"error": "model 'gone:1b' not found"}


def test_the_ollama_base_url_without_a_slash_answers_like_ollama(http: httpx.Client) -> None:
    response = http.get("/ollama")

    assert response.status_code == 200
    assert response.text == "Ollama is running"


def test_revoking_an_empty_prefix_answers_in_the_envelope_not_a_csrf_page(
    http: httpx.Client, settings
) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    get_user_model().objects.create_user("op", password="op-password-1", is_staff=True)

    anonymous = http.post("/admin/api-keys//revoke")
    staff = http.post("/admin/api-keys//revoke", auth=("op", "op-password-1"))

    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "authentication_error"
    assert staff.status_code == 404
    assert staff.json()["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("tokens", [[9906, 1917], [[9906], [1917, 11]]])
def test_token_array_embeddings_are_refused_telling_langchain_users_the_setting(
    http: httpx.Client, api_key: str, tokens
) -> None:
    response = http.post(
        "/openai/v1/embeddings",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": "mxbai-embed-large", "input": tokens},
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input"
    assert "check_embedding_ctx_length=False" in response.json()["error"]["message"]


def test_langchain_embeddings_work_with_the_setting_the_message_names(
    gateway: str, api_key: str
) -> None:
    from langchain_openai import OpenAIEmbeddings

    embeddings = OpenAIEmbeddings(
        model="mxbai-embed-large",
        base_url=f"{gateway}/openai/v1",
        api_key=api_key,
        check_embedding_ctx_length=False,
        max_retries=0,
    )

    vectors = embeddings.embed_documents(["first", "second"])

    assert len(vectors) == 2


def test_the_site_has_a_favicon(http: httpx.Client) -> None:
    # Browsers ask every page's host for /favicon.ico; it was a 404 in the log.
    answer = http.get("/favicon.ico")

    assert answer.status_code == 200
    assert answer.headers["Content-Type"] in {"image/x-icon", "image/vnd.microsoft.icon"}
    assert answer.content[:4] == b"\x00\x00\x01\x00"  # an ICO file's header
