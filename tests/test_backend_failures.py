"""Every way the backend can fail maps to its own status and code."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.fake_ollama import FakeOllama

CHAT_BODY = {"messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def dead_gateway_http(dead_ollama: str, transactional_db, auth_headers):
    """A live gateway whose OLLAMA_HOST has nothing listening."""
    from tests.conftest import ServerThread

    server = ServerThread()
    server.start()
    with httpx.Client(base_url=server.url, timeout=10, headers=auth_headers) as client:
        yield client
    server.stop()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/models", None),
        ("GET", "/v1/models/qwen2.5:14b", None),
        ("POST", "/v1/chat/completions", CHAT_BODY),
        ("POST", "/v1/chat/completions", {**CHAT_BODY, "stream": True}),
        ("POST", "/v1/embeddings", {"input": "x"}),
    ],
)
def test_with_ollama_absent_it_answers_503_saying_what_to_do(
    dead_gateway_http: httpx.Client, dead_ollama: str, method: str, path: str, body: dict | None
) -> None:
    response = dead_gateway_http.request(method, path, json=body)

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "backend_unavailable"
    assert error["type"] == "backend_unavailable_error"
    assert dead_ollama in error["message"]
    assert "OLLAMA_HOST" in error["message"]
    assert "ollama serve" in error["message"]


def test_readyz_names_the_backend_when_ollama_is_absent(dead_gateway_http: httpx.Client) -> None:
    response = dead_gateway_http.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["checks"] == {"database": "ok", "cache": "ok", "backend": "failing"}
    assert body["error"]["details"][0]["check"] == "backend"


def test_a_failing_readyz_is_logged_once_as_a_warning_not_an_error_per_poll(
    dead_gateway_http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO"):
        polls = [dead_gateway_http.get("/readyz") for _ in range(3)]

    assert [poll.status_code for poll in polls] == [503] * 3
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    warnings = [
        r for r in caplog.records if r.name == "gateway.probes" and r.levelname == "WARNING"
    ]
    assert len(warnings) == 1
    assert "backend" in warnings[0].getMessage()


def test_readyz_is_ok_when_everything_answers(http: httpx.Client) -> None:
    response = http.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "ok", "backend": "ok"},
    }


def test_healthz_answers_without_touching_the_backend(
    http: httpx.Client, fake_ollama: FakeOllama
) -> None:
    response = http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert fake_ollama.requests == []


@pytest.mark.parametrize("stream", [False, True])
def test_a_full_ollama_queue_is_503_backend_busy_with_retry_after(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama, stream: bool
) -> None:
    fake_ollama.busy = True
    response = http.post(
        "/v1/chat/completions", headers=auth_headers, json={**CHAT_BODY, "stream": stream}
    )

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "backend_busy"
    assert response.headers["retry-after"] == "2"


@pytest.mark.parametrize("stream", [False, True])
def test_a_backend_that_never_answers_is_504(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama, settings, stream: bool
) -> None:
    settings.OLLAMA_READ_TIMEOUT = 0.3
    fake_ollama.stall = 5.0
    response = http.post(
        "/v1/chat/completions", headers=auth_headers, json={**CHAT_BODY, "stream": stream}
    )

    assert response.status_code == 504
    error = response.json()["error"]
    assert error["code"] == "backend_timeout"
    assert error["type"] == "backend_timeout_error"
    assert "OLLAMA_READ_TIMEOUT" in error["message"]


def test_garbage_from_the_backend_is_502(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    fake_ollama.garbage = True
    response = http.post("/v1/chat/completions", headers=auth_headers, json=CHAT_BODY)

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "backend_error"


@pytest.mark.parametrize("stream", [False, True])
def test_a_backend_that_drops_the_connection_before_answering_is_502_not_503(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama, stream: bool
) -> None:
    # Ollama was reached, then broke: a bad gateway, not "cannot reach Ollama".
    fake_ollama.disconnect_after_tokens = 0
    response = http.post(
        "/v1/chat/completions", headers=auth_headers, json={**CHAT_BODY, "stream": stream}
    )

    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "backend_error"
    assert "OLLAMA_HOST" not in error["message"]
    assert_plain_words(error["message"])


# What aiohttp's own exceptions say ("TransferEncodingError: 400, message='Not
# enough data to satisfy transfer length header.'") means nothing to a user.
CLIENT_INTERNALS = ("Error:", "Error(", "aiohttp", "payload", "message=", "Errno", "errno")


def assert_plain_words(message: str) -> None:
    assert "Ollama" in message, message
    assert not any(internal in message for internal in CLIENT_INTERNALS), message


@pytest.mark.parametrize("after_tokens", [1, 2])
def test_a_backend_dying_mid_stream_is_reported_in_plain_words(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama, after_tokens: int
) -> None:
    fake_ollama.disconnect_after_tokens = after_tokens
    with http.stream(
        "POST", "/v1/chat/completions", headers=auth_headers, json={**CHAT_BODY, "stream": True}
    ) as stream:
        events = [line for line in stream.iter_lines() if line.startswith("data:")]

    error = json.loads(events[-1].removeprefix("data:").strip())["error"]
    assert error["code"] == "backend_error"
    assert_plain_words(error["message"])


def test_a_runner_crash_before_the_first_token_is_502_with_its_message(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    fake_ollama.fail_before_first_token = True
    response = http.post("/v1/chat/completions", headers=auth_headers, json=CHAT_BODY)

    assert response.status_code == 502
    assert "unexpectedly stopped" in response.json()["error"]["message"]


def test_a_backend_out_of_memory_is_507(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    fake_ollama.oom = True
    response = http.post("/v1/chat/completions", headers=auth_headers, json=CHAT_BODY)

    assert response.status_code == 507
    error = response.json()["error"]
    assert error["code"] == "insufficient_resources"
    assert error["type"] == "insufficient_resources_error"
