"""Several Ollama hosts behind one gateway: routing, failover, health.

Three fake Ollama servers on real sockets hold different models (llama3.2 on
two of them); the gateway (uvicorn on a real socket) is configured with
OLLAMA_HOSTS and a short probe interval. Nothing above the socket is mocked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import ollama
import pytest

from localai_site.settings import _ollama_hosts
from tests.conftest import ScaleOutStores, ServerThread
from tests.fake_ollama import FakeOllama, default_models
from tests.processes import migrated_with_key, server_env, two_servers

SHARED = "llama3.2:latest"  # on a and b
ONLY_A, ONLY_B, ONLY_C = "qwen2.5:14b", "mxbai-embed-large:latest", "qwen3:8b"
PROBE_INTERVAL, DOWN_MAX = 0.2, 0.4
QUESTION = [{"role": "user", "content": "Hi"}]


def _models(*names: str) -> list:
    return [model for model in default_models() if model.name in names]


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll `condition` until it is truthy (its value), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeOllama]]:
    servers = {
        "a": FakeOllama(models=_models(ONLY_A, SHARED)),
        "b": FakeOllama(models=_models(SHARED, ONLY_B)),
        "c": FakeOllama(models=_models(ONLY_C)),
    }
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def gateway(transactional_db, fakes: dict[str, FakeOllama], settings) -> Iterator[str]:
    settings.OLLAMA_HOSTS = _ollama_hosts(",".join(f"{n}={f.url}" for n, f in fakes.items()))
    settings.BACKEND_PROBE_INTERVAL = PROBE_INTERVAL
    settings.BACKEND_DOWN_MAX = DOWN_MAX
    settings.OLLAMA_READ_TIMEOUT = 10.0
    server = ServerThread()
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def http(gateway: str, auth_headers: dict) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway, headers=auth_headers, timeout=30) as client:
        yield client


def backends(http: httpx.Client) -> dict[str, Any]:
    return http.get("/readyz").json()["backends"]


def chat(http: httpx.Client, model: str, **extra: Any) -> httpx.Response:
    return http.post("/v1/chat/completions", json={"model": model, "messages": QUESTION, **extra})


def preload(fake: FakeOllama, model: str) -> None:
    """Load `model` on `fake` behind the gateway's back (as another client would)."""
    ollama.Client(host=fake.url).chat(model=model, messages=QUESTION, keep_alive="10m")


def chat_models_asked(fake: FakeOllama) -> list[str]:
    return [request.json["model"] for request in fake.requests_to("/api/chat")]


# --- configuration -------------------------------------------------------------


def test_it_parses_names_weights_and_parallel_slots() -> None:
    hosts = _ollama_hosts("http://a:11434, gpu=http://b:11434;weight=2;parallel=4")

    assert hosts == [
        {"name": "a:11434", "url": "http://a:11434", "weight": 1.0, "parallel": None},
        {"name": "gpu", "url": "http://b:11434", "weight": 2.0, "parallel": 4},
    ]
    assert _ollama_hosts("http://a:11434")[0]["name"] == "ollama"  # as with OLLAMA_HOST
    assert _ollama_hosts("") == []


@pytest.mark.parametrize(
    "value", ["a=http://x:1,a=http://y:1", "http://x:1;weight=heavy", "x=nohost", "http://x;gpu=1"]
)
def test_it_refuses_a_malformed_host_list(value: str) -> None:
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        _ollama_hosts(value)


# --- routing ---------------------------------------------------------------------


def test_a_request_goes_to_the_backend_that_has_its_model_loaded(
    http: httpx.Client, fakes: dict[str, FakeOllama]
) -> None:
    preload(fakes["b"], SHARED)
    wait_for(lambda: SHARED in backends(http)["b"]["models_loaded"])

    answers = [chat(http, SHARED) for _ in range(10)]

    assert [answer.status_code for answer in answers] == [200] * 10
    assert chat_models_asked(fakes["a"]) == []
    assert chat_models_asked(fakes["b"]).count(SHARED) == 11  # the preload, then ours


def test_a_100_request_run_never_calls_a_backend_lacking_the_model(
    http: httpx.Client, fakes: dict[str, FakeOllama]
) -> None:
    models = [ONLY_A, SHARED, ONLY_C, SHARED] * 25

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda model: chat(http, model).status_code, models))

    assert statuses == [200] * 100
    has = {name: {m.name for m in fake.models} for name, fake in fakes.items()}
    asked = {name: chat_models_asked(fake) for name, fake in fakes.items()}
    assert all(model in has[name] for name in fakes for model in asked[name])
    assert sum(len(models) for models in asked.values()) == 100


def test_model_lists_are_the_union_and_say_where_each_model_lives(
    http: httpx.Client,
) -> None:
    tags = http.get("/ollama/api/tags").json()["models"]
    openai = http.get("/openai/v1/models").json()["data"]
    native = http.get("/v1/models").json()

    names = [tag["name"] for tag in tags]
    assert sorted(names) == sorted({ONLY_A, SHARED, ONLY_B, ONLY_C}) and len(set(names)) == 4
    assert {tag["name"]: tag["backends"] for tag in tags}[SHARED] == ["a", "b"]
    assert {model["id"]: model["owned_by"] for model in openai}[ONLY_C] == "c"
    assert {model["id"]: model["backends"] for model in native}[ONLY_B] == ["b"]


# --- failure ------------------------------------------------------------------------


def test_a_model_only_on_a_backend_that_is_down_is_a_503_naming_it(
    http: httpx.Client, fakes: dict[str, FakeOllama]
) -> None:
    assert backends(http)["c"]["state"] == "ok"  # its models are known
    fakes["c"].stop()
    wait_for(lambda: backends(http)["c"]["state"] == "failing")

    response = chat(http, ONLY_C)
    unknown = chat(http, "nope:1b")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "backend_unavailable"
    assert "backend c" in response.json()["error"]["message"]
    assert int(response.headers["Retry-After"]) >= 1
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["error"]["code"] == "model_not_found"
    assert http.get("/readyz").status_code == 200  # a and b still serve


@pytest.mark.parametrize("stream", [False, True])
def test_a_request_to_a_backend_that_went_away_is_retried_on_another(
    http: httpx.Client, fakes: dict[str, FakeOllama], stream: bool
) -> None:
    preload(fakes["a"], SHARED)
    wait_for(lambda: SHARED in backends(http)["a"]["models_loaded"])
    fakes["a"].stop()  # before the poller notices: the request itself finds out

    response = chat(http, SHARED, stream=stream)

    assert response.status_code == 200
    assert "error" not in response.text
    assert chat_models_asked(fakes["b"]) == [SHARED]
    assert backends(http)["a"]["state"] == "failing"


def test_killing_a_backend_mid_run_loses_no_request_and_it_rejoins(
    http: httpx.Client, fakes: dict[str, FakeOllama]
) -> None:
    a, b = fakes["a"], fakes["b"]
    for fake in (a, b):
        preload(fake, SHARED)
        fake.reply = [f"t{i} " for i in range(20)]
        fake.token_delay = 0.05
    wait_for(lambda: all(SHARED in backends(http)[n]["models_loaded"] for n in "ab"))

    def whole(_: int) -> int:
        return chat(http, SHARED).status_code

    def streamed(index: int) -> tuple[str, float]:
        """How a stream ended ("done" or "error"), and when (monotonic): native
        SSE streams and Ollama NDJSON streams by turns."""
        body = {"model": SHARED, "messages": QUESTION, "stream": True}
        if index % 2:
            with http.stream("POST", "/ollama/api/chat", json=body) as response:
                assert response.status_code == 200
                last = json.loads([line for line in response.iter_lines() if line][-1])
            outcome = "error" if "error" in last else "done" if last["done"] else "cut"
            return outcome, time.monotonic()
        data = ""
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: "):
                    data = line[len("data: ") :]
        outcome = "done" if data == "[DONE]" else "error" if "error" in json.loads(data) else "cut"
        return outcome, time.monotonic()

    with ThreadPoolExecutor(24) as pool:
        streams = [pool.submit(streamed, i) for i in range(8)]
        wholes = [pool.submit(whole, i) for i in range(16)]
        # Both backends busy, b with streams past their first token: kill b.
        b.wait_until(lambda f: sum(1 for s in f.active_streams if s.first_byte_at) >= 1)
        a.wait_until(lambda f: len(f.active_streams) >= 1)
        b.stop()
        killed_at = time.monotonic()
        statuses = [future.result(timeout=30) for future in wholes]
        outcomes = [future.result(timeout=30) for future in streams]

    assert statuses == [200] * 16
    ended_by_kill = [at for outcome, at in outcomes if outcome != "done"]
    assert ended_by_kill, "no stream ran on the killed backend"
    assert all(outcome in ("done", "error") for outcome, _ in outcomes), outcomes
    assert all(at - killed_at < 1.0 for at in ended_by_kill)

    b.start()  # the same port again
    back_at = time.monotonic()
    wait_for(lambda: backends(http)["b"]["state"] == "ok")
    # One cooldown (at most BACKEND_DOWN_MAX) and one probe; slack for a busy machine.
    assert time.monotonic() - back_at < DOWN_MAX + PROBE_INTERVAL + 1.5


# --- model management ---------------------------------------------------------------


@pytest.fixture
def admin_headers(db) -> dict[str, str]:
    from keys.services import api_key_create

    _, raw_key = api_key_create(name="admin", allowed_endpoints=["ollama_admin"])
    return {"Authorization": f"Bearer {raw_key}"}


def test_model_management_targets_the_backend_the_caller_names(
    http: httpx.Client, admin_headers: dict, fakes: dict[str, FakeOllama]
) -> None:
    body = {"model": SHARED}
    unnamed = http.request("DELETE", "/ollama/api/delete", json=body, headers=admin_headers)
    unknown = http.request(
        "DELETE", "/ollama/api/delete", json=body, headers={**admin_headers, "X-Backend": "z"}
    )
    only_c = http.request(
        "DELETE", "/ollama/api/delete", json={"model": ONLY_C}, headers=admin_headers
    )

    assert unnamed.status_code == 400
    assert "X-Backend" in unnamed.json()["error"]
    assert unknown.status_code == 404
    assert "no backend named 'z'" in unknown.json()["error"]
    # A model only one backend has needs no name: the fake has no delete route (404).
    assert only_c.status_code == 404, only_c.text
    assert [r.path for r in fakes["c"].requests if r.path == "/api/delete"] == ["/api/delete"]


# --- operators --------------------------------------------------------------------


def test_the_admin_backends_page_shows_each_backend_to_staff(
    admin_client, client, fakes: dict[str, FakeOllama], settings
) -> None:
    settings.OLLAMA_HOSTS = _ollama_hosts(",".join(f"{n}={f.url}" for n, f in fakes.items()))
    fakes["c"].stop()

    page = admin_client.get("/admin/backends/")
    anonymous = client.get("/admin/backends/")

    assert page.status_code == 200
    html = page.content.decode()
    for name in ("a", "b", "c"):
        assert f"<strong>{name}</strong>" in html
    assert "down: Cannot reach Ollama" in html
    assert "Scheduler (LocalScheduler)" in html
    assert anonymous.status_code == 302  # to the admin's login


# --- several gateway processes ---------------------------------------------------


@pytest.mark.scaleout
def test_two_processes_on_postgresql_and_redis_agree_on_backend_health(
    scaleout_stores: ScaleOutStores,
    scaleout_database: str,
    scaleout_redis_prefix: str,
    fakes: dict[str, FakeOllama],
) -> None:
    a, b = fakes["a"], fakes["b"]
    env = server_env(
        DATABASE_URL=scaleout_database,
        REDIS_URL=scaleout_stores.redis_url,
        CACHE_KEY_PREFIX=scaleout_redis_prefix,
        OLLAMA_HOSTS=f"a={a.url},b={b.url};weight=2",  # b first while both are up
        # A process polls the backends only every 30 s: what it learns sooner,
        # it learns from the other process through Redis.
        BACKEND_PROBE_INTERVAL="30",
        BACKEND_DOWN_MAX="1",
        LOG_LEVEL="WARNING",
    )
    raw_key, _ = migrated_with_key(env, "pool", rate_limit=1000)
    auth = {"Authorization": f"Bearer {raw_key}"}
    body = {"model": SHARED, "messages": QUESTION}

    def state(client: httpx.Client, base: str) -> str:
        # Generous: two servers starting on a busy machine take a while to answer.
        return client.get(f"{base}/readyz", timeout=60).json()["backends"]["b"]["state"]

    with two_servers(env) as ((one, other), client):
        for base in (one, other):
            assert state(client, base) == "ok"
        b.stop()
        first = client.post(f"{one}/v1/chat/completions", json=body, headers=auth)
        wait_for(lambda: state(client, other) == "failing")
        second = client.post(f"{other}/v1/chat/completions", json=body, headers=auth)

        b.start()
        wait_for(lambda: state(client, one) == state(client, other) == "ok")

    assert (first.status_code, second.status_code) == (200, 200)
    assert chat_models_asked(a) == [SHARED, SHARED]  # the first retried there, the second sent


def test_a_websocket_chat_on_a_killed_backend_ends_with_an_error_frame(
    gateway: str, api_key: str, fakes: dict[str, FakeOllama]
) -> None:
    import asyncio

    from tests.test_ws_e2e import receive_until, send, ws_connect, ws_url

    b = fakes["b"]
    b.reply, b.token_delay = [f"t{i} " for i in range(40)], 0.05
    preload(b, SHARED)  # b is the one with the model loaded
    with httpx.Client(base_url=gateway, timeout=30) as client:
        wait_for(lambda: SHARED in backends(client)["b"]["models_loaded"])

    async def run() -> tuple[list[dict[str, Any]], float]:
        headers = {"Authorization": f"Bearer {api_key}"}
        async with ws_connect(ws_url(gateway), additional_headers=headers) as ws:
            await send(ws, {"type": "chat", "message": "a long answer", "model": SHARED})
            await asyncio.to_thread(
                b.wait_until, lambda f: any(s.first_byte_at for s in f.active_streams)
            )
            b.stop()
            killed_at = time.monotonic()
            frames = await receive_until(ws, "assistant_end", "error")
            return frames, time.monotonic() - killed_at

    frames, after = asyncio.run(run())

    assert frames[-1]["type"] == "error"
    assert after < 1.0
