"""One policy on every surface: a key limited to one model sees that model in
every model list, is refused any other with 403 `model_not_allowed`, and each
refusal is on record naming the model it asked for."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.asyncio.client import connect

from keys.models import UsageRecord
from keys.policy import usage_flush
from keys.services import api_key_create
from tests.fake_ollama import FakeOllama

ALLOWED = "qwen2.5:14b"
OTHER = "llama3.2:latest"
HI = [{"role": "user", "content": "hi"}]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def limited_key(gateway: str) -> tuple[object, str]:
    return api_key_create(name="one model", allowed_models=[ALLOWED], rate_limit=1000)


def _bearer(raw_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw_key}"}


def test_it_lists_only_the_allowed_model_on_every_surface(
    http: httpx.Client, fake_ollama: FakeOllama, limited_key, api_key: str
) -> None:
    # Both models loaded, so that /api/ps has something to hide.
    for model in (ALLOWED, OTHER):
        loaded = http.post(
            "/ollama/api/chat",
            headers=_bearer(api_key),
            json={"model": model, "messages": HI, "stream": False},
        )
        assert loaded.status_code == 200
    everything = {
        m["name"] for m in http.get("/ollama/api/tags", headers=_bearer(api_key)).json()["models"]
    }
    assert {ALLOWED, OTHER} <= everything
    _, raw_key = limited_key
    headers = _bearer(raw_key)

    native = [m["id"] for m in http.get("/v1/models", headers=headers).json()]
    openai = [m["id"] for m in http.get("/openai/v1/models", headers=headers).json()["data"]]
    tags = [m["name"] for m in http.get("/ollama/api/tags", headers=headers).json()["models"]]
    ps = [m["name"] for m in http.get("/ollama/api/ps", headers=headers).json()["models"]]
    page = http.get("/chat/models", headers=headers).json()["models"]

    assert native == openai == tags == ps == page == [ALLOWED]


@pytest.mark.parametrize(
    ("path", "body", "error_of"),
    [
        (
            "/v1/chat/completions",
            {"model": OTHER, "messages": HI},
            lambda body: body["error"]["code"],
        ),
        (
            "/openai/v1/chat/completions",
            {"model": OTHER, "messages": HI},
            lambda body: body["error"]["code"],
        ),
        ("/openai/v1/embeddings", {"model": OTHER, "input": "hi"}, lambda b: b["error"]["code"]),
        (
            "/ollama/api/chat",
            {"model": OTHER, "messages": HI, "stream": False},
            lambda body: "model_not_allowed" if OTHER in body["error"] else body,
        ),
        (
            "/ollama/api/embed",
            {"model": OTHER, "input": "hi"},
            lambda body: "model_not_allowed" if OTHER in body["error"] else body,
        ),
    ],
)
def test_it_refuses_another_model_and_records_the_model_asked_for(
    http: httpx.Client, fake_ollama: FakeOllama, limited_key, path: str, body: dict, error_of
) -> None:
    api_key, raw_key = limited_key

    answer = http.post(path, headers=_bearer(raw_key), json=body)
    usage_flush()

    assert answer.status_code == 403
    assert error_of(answer.json()) == "model_not_allowed"
    record = UsageRecord.objects.get(api_key=api_key)
    assert (record.endpoint, record.model, record.status) == (path, OTHER, 403)
    assert record.error_code == "model_not_allowed"
    assert fake_ollama.requests == []  # the backend never saw it


@pytest.mark.asyncio
async def test_the_websocket_refuses_another_model_and_records_the_model_asked_for(
    gateway: str, fake_ollama: FakeOllama, limited_key
) -> None:
    from asgiref.sync import sync_to_async

    api_key, raw_key = limited_key
    url = gateway.replace("http://", "ws://") + "/ws/chat/policy"

    async with connect(url, additional_headers=_bearer(raw_key), open_timeout=30) as ws:
        await ws.send(json.dumps({"type": "chat", "message": "hi", "model": OTHER}))
        frame = json.loads(await ws.recv())

    assert (frame["type"], frame["code"], frame["status"]) == ("error", "model_not_allowed", 403)
    records = await sync_to_async(list)(
        UsageRecord.objects.filter(api_key=api_key).values_list(
            "endpoint", "model", "status", "error_code"
        )
    )
    assert records == [("ws_chat", OTHER, 403, "model_not_allowed")]
    assert fake_ollama.requests == []
