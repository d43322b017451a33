"""Both backends at once: the (fake) Ollama and the embedded engine behind one pool.

Each request goes to the backend that lists its model; lists are merged;
what only Ollama can do (pull, delete) stays with it.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from keys.models import ApiKey
from keys.services import api_key_create
from tests.conftest import EngineModels
from tests.fake_ollama import FakeOllama

pytestmark = pytest.mark.engine

QUESTION = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def http(gateway: str, engine: EngineModels, auth_headers: dict) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway, headers=auth_headers, timeout=60) as client:
        yield client


def test_the_models_of_both_backends_are_listed_once(http: httpx.Client) -> None:
    response = http.get("/v1/models")

    assert response.status_code == 200
    ids = [model["id"] for model in response.json()]
    assert {"qwen2.5:14b", "mxbai-embed-large:latest", "smollm2:135m", "all-minilm:latest"} <= set(
        ids
    )
    assert len(ids) == len(set(ids))


def test_each_request_goes_to_the_backend_that_lists_its_model(
    http: httpx.Client, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["from", " ollama"]

    embedded = http.post(
        "/v1/chat/completions",
        json={"model": "smollm2:135m", "messages": QUESTION, "max_tokens": 3},
    )
    assert fake_ollama.requests_to("/api/chat") == []
    ollama = http.post("/v1/chat/completions", json={"model": "qwen2.5:14b", "messages": QUESTION})

    assert embedded.status_code == 200
    assert embedded.json()["usage"]["completion_tokens"] == 3
    assert ollama.json()["message"]["content"] == "from ollama"
    assert len(fake_ollama.requests_to("/api/chat")) == 1


def test_a_model_no_backend_has_is_a_404(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json={"model": "nope:1b", "messages": QUESTION})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_readyz_names_both_backends(http: httpx.Client) -> None:
    response = http.get("/readyz")

    assert response.status_code == 200
    backends = response.json()["backends"]
    assert backends["ollama"]["state"] == backends["embedded"]["state"] == "ok"
    assert backends["embedded"]["version"] == "0.3.36"


def test_the_chat_page_offers_the_chat_models_of_both_backends(http: httpx.Client) -> None:
    response = http.get("/chat/models")

    assert response.status_code == 200
    models = response.json()["models"]
    assert {"qwen2.5:14b", "llama3.2:latest", "smollm2:135m"} <= set(models)
    assert "mxbai-embed-large:latest" not in models
    assert "all-minilm:latest" not in models
    assert response.json()["default"] == "qwen2.5:14b"  # served by Ollama: no fallback


def test_a_default_model_ollama_lacks_falls_back_to_the_embedded_one(
    http: httpx.Client, settings
) -> None:
    settings.DEFAULT_CHAT_MODEL = "not-pulled:7b"
    settings.DEFAULT_EMBEDDING_MODEL = "not-pulled-either"

    chat = http.post("/v1/chat/completions", json={"messages": QUESTION, "max_tokens": 2})
    embedding = http.post("/v1/embeddings", json={"input": "cat"})

    assert chat.status_code == 200, chat.text
    assert chat.json()["model"] == "smollm2:135m"
    assert embedding.json()["model"] == "all-minilm:latest"
    assert len(embedding.json()["embeddings"][0]) == 384


def test_models_of_the_embedded_backend_cannot_be_deleted_or_copied(
    http: httpx.Client, fake_ollama: FakeOllama
) -> None:
    key, raw_key = api_key_create(name="admin", rate_limit=1_000_000)
    # Written directly: `ollama_admin` is granted by listing it (EXPLICIT_ONLY_GROUPS).
    ApiKey.objects.filter(pk=key.pk).update(allowed_endpoints=["models", "ollama_admin"])
    admin = {"Authorization": f"Bearer {raw_key}"}

    delete = http.request(
        "DELETE", "/ollama/api/delete", json={"model": "smollm2:135m"}, headers=admin
    )
    copy = http.post(
        "/ollama/api/copy", json={"source": "all-minilm", "destination": "mine"}, headers=admin
    )

    assert delete.status_code == copy.status_code == 400
    assert "embedded" in delete.json()["error"]
    assert fake_ollama.requests_to("/api/delete") == fake_ollama.requests_to("/api/copy") == []
