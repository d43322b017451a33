"""Prometheus metrics at /metrics: exact counts summed over two worker processes
(prometheus-client's multiprocess mode), and who may read them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.fake_ollama import FakeOllama
from tests.processes import migrated_with_key, server_env, two_servers

CHAT = "/v1/chat/completions"
HELLO = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "Hi"}]}
MODEL = "qwen2.5:14b"


def scrape(client: httpx.Client, base: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape: {(name, labels): value}."""
    response = client.get(f"{base}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Until `condition()` holds (a stream's end is observed after its last byte is sent)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_it_sums_exact_counts_over_two_worker_processes(
    tmp_path: Path, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["a", " b", " c"]
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = server_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        REDIS_URL="",
        OLLAMA_HOST=fake_ollama.url,
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        LOG_LEVEL="WARNING",
    )
    raw_key, _ = migrated_with_key(env, "metered", rate_limit=1000)
    limited_key, _ = migrated_with_key(env, "limited", rate_limit=1)
    auth = {"Authorization": f"Bearer {raw_key}"}

    with two_servers(env) as ((one, other), client):
        for base in (one, other):  # started (a busy machine can take a while)
            assert client.get(f"{base}/healthz", timeout=90).status_code == 200
        answers = [client.post(one + CHAT, headers=auth, json=HELLO) for _ in range(3)]
        answers += [client.post(other + CHAT, headers=auth, json=HELLO) for _ in range(2)]
        with client.stream(
            "POST", other + CHAT, headers=auth, json={**HELLO, "stream": True}
        ) as stream:
            events = [
                json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: {")
            ]
        unauthenticated = client.post(one + CHAT, json=HELLO)
        limited_auth = {"Authorization": f"Bearer {limited_key}"}
        limited = [client.post(other + CHAT, headers=limited_auth, json=HELLO) for _ in range(2)]

        def native(status: str) -> float:
            return value(
                scrape(client, one),
                "localai_requests_total",
                surface="native",
                endpoint="/v1/chat/completions",
                status=status,
            )

        # 5 whole answers, 1 stream, 1 of the limited key's two.
        wait_for(lambda: native("200") == 7)
        samples = scrape(client, other)  # either process sees both

    assert [a.status_code for a in answers] == [200] * 5
    assert unauthenticated.status_code == 401
    assert [a.status_code for a in limited] == [200, 429]
    prompt = sum(a.json()["usage"]["prompt_tokens"] for a in answers + limited[:1])
    completion = sum(a.json()["usage"]["completion_tokens"] for a in answers + limited[:1])
    final = events[-1]["usage"]
    prompt += final["prompt_tokens"]
    completion += final["completion_tokens"]

    labels = {"surface": "native", "endpoint": "/v1/chat/completions"}
    assert value(samples, "localai_requests_total", **labels, status="200") == 7
    assert value(samples, "localai_requests_total", **labels, status="401") == 1
    assert value(samples, "localai_requests_total", **labels, status="429") == 1
    assert value(samples, "localai_request_duration_seconds_count", **labels) == 9
    assert value(samples, "localai_tokens_total", model=MODEL, kind="prompt") == prompt
    assert value(samples, "localai_tokens_total", model=MODEL, kind="completion") == completion
    assert (
        value(samples, "localai_time_to_first_token_seconds_count", surface="native", model=MODEL)
        == 1
    )
    assert value(samples, "localai_rate_limited_total", limit="requests") == 1
    assert value(samples, "localai_backend_up", backend="ollama") == 1
    assert value(samples, "localai_in_flight", backend="ollama") == 0
    assert ("localai_queue_depth", frozenset({("backend", "ollama")})) in samples
    assert value(samples, "localai_websocket_connections") == 0
    # No label carries a key.
    assert not any(raw_key in str(labels) for _, labels in samples)


@pytest.fixture
def metrics_client(db, settings) -> Client:  # type: ignore[no-untyped-def]
    """A client whose address (127.0.0.1) is not among the allowed ones."""
    settings.METRICS_ALLOWED_ADDRESSES = ["10.0.0.0/8"]
    return Client()


def test_it_opens_metrics_to_the_allowed_addresses(settings, db) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_ALLOWED_ADDRESSES = ["127.0.0.0/8"]
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert b"# TYPE localai_requests_total counter" in response.content


def test_it_refuses_metrics_to_anyone_else(metrics_client: Client) -> None:
    response = metrics_client.get("/metrics")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "metrics_forbidden"


def test_it_refuses_metrics_to_a_signed_in_user_who_is_not_staff(metrics_client: Client) -> None:
    metrics_client.force_login(get_user_model().objects.create_user("dave", password="x"))
    assert metrics_client.get("/metrics").status_code == 403


def test_it_opens_metrics_to_staff_from_anywhere(metrics_client: Client) -> None:
    staff = get_user_model().objects.create_user("erin", password="x", is_staff=True)
    metrics_client.force_login(staff)
    assert metrics_client.get("/metrics").status_code == 200


# --- one process (the live gateway in a thread of this test process) -------------------


def live(name: str, label: str) -> dict[str, float]:
    from gateway import metrics

    return metrics.sample_values(name, label)


def test_it_counts_a_stream_in_flight_until_it_ends(
    http: httpx.Client, auth_headers: dict, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["a", " b", " c", " d"]
    fake_ollama.token_delay = 0.2
    before = live("localai_in_flight", "backend").get("ollama", 0)
    with http.stream("POST", CHAT, headers=auth_headers, json={**HELLO, "stream": True}) as stream:
        lines = stream.iter_lines()
        assert next(line for line in lines if line.startswith("data: {"))
        during = live("localai_in_flight", "backend")["ollama"]
        list(lines)

    assert during == before + 1
    wait_for(lambda: live("localai_in_flight", "backend")["ollama"] == before)


def test_it_counts_backend_errors_by_backend_and_code(dead_ollama: str, transactional_db) -> None:
    from keys.services import api_key_create
    from tests.conftest import ServerThread

    _, raw_key = api_key_create(name="errors", rate_limit=1000)
    before = live("localai_backend_errors_total", "code").get("backend_unavailable", 0)
    server = ServerThread()
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            auth = {"Authorization": f"Bearer {raw_key}"}
            answers = [client.post(CHAT, headers=auth, json=HELLO) for _ in range(2)]
            metrics_text = client.get("/metrics").text
    finally:
        server.stop()

    assert [a.status_code for a in answers] == [503, 503]
    assert live("localai_backend_errors_total", "code")["backend_unavailable"] == before + 2
    assert 'localai_backend_up{backend="ollama"} 0.0' in metrics_text


def test_it_counts_refusals_by_the_token_limit(
    http: httpx.Client, fake_ollama: FakeOllama, transactional_db
) -> None:
    from keys.services import api_key_create

    _, raw_key = api_key_create(name="tokens", rate_limit=1000, tokens_per_minute=5)
    auth = {"Authorization": f"Bearer {raw_key}"}
    before = live("localai_rate_limited_total", "limit").get("tokens", 0)
    first = http.post(CHAT, headers=auth, json=HELLO)
    # The first answer's tokens are charged when its usage is recorded.
    wait_for(lambda: http.post(CHAT, headers=auth, json=HELLO).status_code == 429)

    assert first.status_code == 200
    assert live("localai_rate_limited_total", "limit")["tokens"] == before + 1


def test_it_reports_the_requests_waiting_for_a_backend_slot(
    gateway: str, auth_headers: dict, fake_ollama: FakeOllama, settings
) -> None:
    import asyncio

    settings.OLLAMA_NUM_PARALLEL = 1
    fake_ollama.stall = 1.0  # the first request holds the one slot for a second

    def queued(text: str) -> float:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "localai_queue_depth" and sample.labels["backend"] == "ollama":
                    return sample.value
        return -1

    async def run() -> tuple[list[int], float]:
        async with httpx.AsyncClient(base_url=gateway, timeout=60) as client:
            calls = [
                asyncio.ensure_future(client.post(CHAT, headers=auth_headers, json=HELLO))
                for _ in range(2)
            ]
            deadline = time.monotonic() + 30
            while (depth := queued((await client.get("/metrics")).text)) < 1:
                assert time.monotonic() < deadline, "no request ever waited"
                await asyncio.sleep(0.02)
            answers = await asyncio.gather(*calls)
            return [a.status_code for a in answers], depth

    statuses, depth = asyncio.run(run())
    assert statuses == [200, 200]
    assert depth == 1
