"""The native REST API (`/v1/`) end to end: live gateway, real socket, fake Ollama."""

from __future__ import annotations

import httpx
import pytest

from tests.fake_ollama import FakeOllama

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"


def assert_envelope(response: httpx.Response, status: int, code: str, type_: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert error["type"] == type_
    assert error["message"]
    assert "timestamp" in error and "param" in error
    assert "Traceback" not in response.text
    return error


# --- models -----------------------------------------------------------------


def test_it_lists_models_with_the_chapters_shape(http: httpx.Client, auth_headers: dict) -> None:
    response = http.get("/v1/models", headers=auth_headers)

    assert response.status_code == 200
    models = response.json()
    assert isinstance(models, list)
    by_id = {m["id"]: m for m in models}
    qwen = by_id["qwen2.5:14b"]
    assert qwen == {
        "id": "qwen2.5:14b",
        "name": "qwen2.5:14b",
        "size": "9.1GB",
        "size_bytes": 9123456789,
        "family": "qwen2",
        "parameter_size": "14.8B",
        "quantization_level": "Q4_K_M",
        "modified_at": qwen["modified_at"],
        "backends": [],  # one backend: nothing to tell apart
    }
    assert qwen["modified_at"].startswith("20")


@pytest.mark.parametrize(
    "model_id", ["qwen2.5:14b", "hf.co/org/name:Q4_K_M", "QWEN2.5:14B", "llama3.2"]
)
def test_it_shows_one_model_whatever_its_id_holds(
    http: httpx.Client, auth_headers: dict, model_id: str
) -> None:
    response = http.get(f"/v1/models/{model_id}", headers=auth_headers)

    assert response.status_code == 200, response.text
    assert response.json()["id"].lower().startswith(model_id.lower().split(":")[0])


def test_it_answers_404_model_not_found_for_an_unknown_model(
    http: httpx.Client, auth_headers: dict
) -> None:
    response = http.get("/v1/models/no-such-model:7b", headers=auth_headers)

    error = assert_envelope(response, 404, "model_not_found", "model_not_found_error")
    assert "no-such-model:7b" in error["message"]


# --- chat ---------------------------------------------------------------------


def test_it_completes_a_chat_with_the_backends_token_counts(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["Hello", " there", "!"]
    response = http.post(
        CHAT,
        headers=auth_headers,
        json={"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "Hi"}]},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "qwen2.5:14b"
    assert body["message"] == {"role": "assistant", "content": "Hello there!"}
    assert body["id"] and body["created"]
    sent = fake_ollama.requests[-1]
    assert sent.path == "/api/chat"
    usage = body["usage"]
    assert usage["completion_tokens"] == 3
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_it_sends_the_model_default_temperature_and_max_tokens_to_ollama(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    http.post(
        CHAT,
        headers=auth_headers,
        json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5},
    )

    sent = fake_ollama.requests[-1].json
    assert sent["model"] == "qwen2.5:14b"
    assert sent["stream"] is False
    assert sent["options"]["temperature"] == 0.7
    assert sent["options"]["num_predict"] == 5
    assert sent["messages"] == [{"role": "user", "content": "Hi"}]


def test_it_reports_length_when_max_tokens_cuts_the_answer(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["a", "b", "c", "d", "e"]
    response = http.post(
        CHAT,
        headers=auth_headers,
        json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
    )

    body = response.json()
    assert body["message"]["content"] == "ab"
    assert body["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": []}, "messages"),
        ({}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user"}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 2.5}, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": -0.1}, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 32769}, "max_tokens"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}], "stream": "maybe"}, "stream"),
    ],
)
def test_it_rejects_invalid_chat_bodies_with_422_naming_the_field(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama, body: dict, field: str
) -> None:
    response = http.post(CHAT, headers=auth_headers, json=body)

    error = assert_envelope(response, 422, "validation_error", "invalid_request_error")
    assert field in [row["loc"] for row in error["details"]]
    assert fake_ollama.requests == []


def test_it_rejects_malformed_json_with_400(http: httpx.Client, auth_headers: dict) -> None:
    response = http.post(
        CHAT,
        headers={**auth_headers, "Content-Type": "application/json"},
        content=b'{"messages": [',
    )

    assert_envelope(response, 400, "bad_request", "invalid_request_error")


def test_it_rejects_a_body_over_the_size_limit_with_413(
    http: httpx.Client, auth_headers: dict, settings, fake_ollama: FakeOllama
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    text = "x" * 4096
    response = http.post(
        CHAT, headers=auth_headers, json={"messages": [{"role": "user", "content": text}]}
    )

    assert_envelope(response, 413, "request_too_large", "invalid_request_error")
    assert fake_ollama.requests == []


def test_it_answers_405_in_the_envelope_for_a_wrong_method(
    http: httpx.Client, auth_headers: dict
) -> None:
    response = http.get(CHAT, headers=auth_headers)

    assert_envelope(response, 405, "method_not_allowed", "invalid_request_error")


def test_it_answers_404_in_the_envelope_for_an_unknown_route(http: httpx.Client) -> None:
    response = http.get("/v1/does-not-exist")

    assert_envelope(response, 404, "not_found", "not_found_error")


def test_it_answers_chat_to_an_unknown_model_with_404(
    http: httpx.Client, auth_headers: dict
) -> None:
    response = http.post(
        CHAT,
        headers=auth_headers,
        json={"model": "ghost:1b", "messages": [{"role": "user", "content": "Hi"}]},
    )

    error = assert_envelope(response, 404, "model_not_found", "model_not_found_error")
    assert error["param"] == "model"


# --- embeddings -----------------------------------------------------------------


def test_it_embeds_a_list_in_one_backend_call_in_input_order(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    texts = ["first text", "second", "third one here"]
    response = http.post(
        EMBED, headers=auth_headers, json={"model": "mxbai-embed-large", "input": texts}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "mxbai-embed-large"
    assert len(body["embeddings"]) == 3
    embed_calls = [r for r in fake_ollama.requests if r.path.startswith("/api/embed")]
    assert len(embed_calls) == 1
    assert embed_calls[0].json["input"] == texts
    # Input order: each vector equals the one for that text alone.
    single = http.post(EMBED, headers=auth_headers, json={"input": "second"}).json()
    assert single["embeddings"][0] == body["embeddings"][1]
    assert body["usage"]["prompt_tokens"] > 0
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"]


def test_it_embeds_a_single_string_with_the_default_model(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    response = http.post(EMBED, headers=auth_headers, json={"input": "hello"})

    assert response.status_code == 200
    assert len(response.json()["embeddings"]) == 1
    assert fake_ollama.requests[-1].json["model"] == "mxbai-embed-large"


@pytest.mark.parametrize(
    "input_",
    ["", [], [""], ["ok", ""], [1, 2], None, {"text": "x"}],
)
def test_it_rejects_empty_or_invalid_embedding_input_with_422(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama, input_: object
) -> None:
    response = http.post(EMBED, headers=auth_headers, json={"input": input_})

    error = assert_envelope(response, 422, "validation_error", "invalid_request_error")
    assert error["details"][0]["loc"] == "input"
    assert fake_ollama.requests == []


def test_it_rejects_more_inputs_than_the_configured_maximum(
    http: httpx.Client, auth_headers: dict, settings, fake_ollama: FakeOllama
) -> None:
    settings.MAX_EMBEDDING_INPUTS = 3
    response = http.post(EMBED, headers=auth_headers, json={"input": ["a", "b", "c", "d"]})

    error = assert_envelope(response, 422, "validation_error", "invalid_request_error")
    assert "MAX_EMBEDDING_INPUTS" in error["message"]
    assert fake_ollama.requests == []


def test_it_answers_embeddings_for_an_unknown_model_with_404(
    http: httpx.Client, auth_headers: dict
) -> None:
    response = http.post(EMBED, headers=auth_headers, json={"model": "nope", "input": "x"})

    assert_envelope(response, 404, "model_not_found", "model_not_found_error")
