"""Embedding coalescing: requests waiting for the same slot share one backend call.

A live gateway (real socket) in front of the fake Ollama with one slot. The
fake holds its embed calls (`hold_embeds`) so that the requests line up
behind the first one; the coalescer's `waiting()` says when they have.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import ollama
import pytest

from gateway import service
from gateway.coalesce import split_total
from keys.models import UsageRecord
from keys.policy import usage_flush
from keys.services import api_key_create
from localai_site.settings import _ollama_hosts
from tests.conftest import ServerThread
from tests.fake_ollama import FakeOllama

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "mxbai-embed-large"
NATIVE = "/v1/embeddings"


def bearer(raw_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw_key}"}


@pytest.fixture
def one_slot(settings, fake_ollama: FakeOllama) -> FakeOllama:
    settings.OLLAMA_NUM_PARALLEL = 1
    return fake_ollama


@pytest.fixture
def keys() -> list[tuple[object, str]]:
    return [api_key_create(name=f"key {n}", rate_limit=100_000) for n in range(4)]


async def _until(condition) -> None:  # type: ignore[no-untyped-def]
    """Wait for a condition another task or thread brings about (60 s at most)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def _waiting() -> int:
    return service.embed_coalescer().waiting()


def _text(n: int) -> str:
    # 1 to 5 words of five letters: token counts (the fake counts words) differ.
    return " ".join(f"w{n:04d}" for _ in range(n % 5 + 1))


def _alone(fake: FakeOllama, texts: list[str]) -> list[list[float]]:
    """What each text gets from the backend in a call of its own."""
    client = ollama.Client(host=fake.url)
    return [list(client.embed(model=MODEL, input=text).embeddings[0]) for text in texts]


def _records() -> list[UsageRecord]:
    usage_flush()
    return list(UsageRecord.objects.order_by("id"))


def _words(text: str) -> int:
    return len(text.split())


def _embed_task(client: httpx.AsyncClient, key: str, text: str) -> asyncio.Task[httpx.Response]:
    """A native embedding request of one text, sent now, answered later."""
    return asyncio.create_task(
        client.post(NATIVE, headers=bearer(key), json={"model": MODEL, "input": text})
    )


def test_64_waiting_requests_share_two_backend_calls_each_with_its_own_vectors_and_usage(
    gateway: str, one_slot: FakeOllama, keys: list[tuple[object, str]]
) -> None:
    one_slot.hold_embeds()
    texts = [_text(n) for n in range(64)]

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=gateway, timeout=60, limits=limits) as client:

            def send(n: int) -> asyncio.Task[httpx.Response]:
                return asyncio.create_task(
                    client.post(
                        NATIVE,
                        headers=bearer(keys[n % len(keys)][1]),
                        json={"model": MODEL, "input": texts[n]},
                    )
                )

            first = send(0)  # takes the one slot; the fake holds it
            await _until(lambda: one_slot.requests_to("/api/embed"))
            rest = [send(n) for n in range(1, 64)]
            await _until(lambda: _waiting() == 63)
            one_slot.release_embeds()
            return await asyncio.gather(first, *rest)

    answers = asyncio.run(run())

    assert [a.status_code for a in answers] == [200] * 64
    assert one_slot.embed_calls == 2  # the first alone, then the 63 that waited together
    assert one_slot.embed_inputs == 64
    backend_tokens = one_slot.embed_tokens
    assert one_slot.peak_in_flight == 1
    calls = [r.json["input"] for r in one_slot.requests_to("/api/embed")]
    # (The 63 reached the gateway in whatever order their connections made.)
    assert calls[0] == texts[:1] and sorted(calls[1]) == sorted(texts[1:])
    vectors = [a.json()["embeddings"][0] for a in answers]
    tokens = [a.json()["usage"]["prompt_tokens"] for a in answers]
    assert vectors == _alone(one_slot, texts)
    # One usage record per request; together exactly what the backend counted.
    records = _records()
    assert len(records) == 64
    assert sorted(r.prompt_tokens for r in records) == sorted(tokens)
    assert sum(r.prompt_tokens for r in records) == backend_tokens == sum(map(_words, texts))
    # Ollama reports a call's total only: alone, a request's count is exact;
    # in a batch it is the total split by characters (within a token here).
    assert tokens[0] == _words(texts[0])
    assert all(abs(t - _words(x)) <= 1 for t, x in zip(tokens, texts, strict=True))
    assert {r.backend for r in records} == {"ollama"}


def test_with_coalescing_off_each_request_is_a_call_of_its_own(
    gateway: str, one_slot: FakeOllama, keys: list[tuple[object, str]], settings
) -> None:
    settings.EMBED_COALESCE = False
    one_slot.hold_embeds()
    texts = [_text(n) for n in range(64)]

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=gateway, timeout=60, limits=limits) as client:
            tasks = [
                asyncio.create_task(
                    client.post(
                        NATIVE,
                        headers=bearer(keys[n % len(keys)][1]),
                        json={"model": MODEL, "input": texts[n]},
                    )
                )
                for n in range(64)
            ]
            await _until(lambda: one_slot.requests_to("/api/embed"))
            one_slot.release_embeds()
            return await asyncio.gather(*tasks)

    answers = asyncio.run(run())

    assert [a.status_code for a in answers] == [200] * 64
    assert one_slot.embed_calls == 64
    assert one_slot.peak_in_flight == 1
    assert [a.json()["usage"]["prompt_tokens"] for a in answers] == list(map(_words, texts))


def test_every_surface_rides_in_the_same_batch_and_keeps_its_own_order(
    gateway: str, one_slot: FakeOllama, keys: list[tuple[object, str]]
) -> None:
    one_slot.hold_embeds()
    native, openai_, ollama_ = ["a b", "c d e", "f"], ["g h i j", "k"], ["l m", "n o p", "q"]

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway, timeout=60) as client:
            holder = asyncio.create_task(
                client.post(NATIVE, headers=bearer(keys[0][1]), json={"model": MODEL, "input": "z"})
            )
            await _until(lambda: one_slot.requests_to("/api/embed"))
            tasks = [
                client.post(
                    NATIVE, headers=bearer(keys[1][1]), json={"model": MODEL, "input": native}
                ),
                client.post(
                    "/openai/v1/embeddings",
                    headers=bearer(keys[2][1]),
                    json={"model": MODEL, "input": openai_},
                ),
                client.post(
                    "/ollama/api/embed",
                    headers=bearer(keys[3][1]),
                    json={"model": f"{MODEL}:latest", "input": ollama_},
                ),
            ]
            started = [asyncio.create_task(task) for task in tasks]
            await _until(lambda: _waiting() == 3)
            one_slot.release_embeds()
            await holder
            return await asyncio.gather(*started)

    native_answer, openai_answer, ollama_answer = asyncio.run(run())

    assert one_slot.embed_calls == 2
    # One call: each request's inputs together and in their order (requests in arrival order).
    sent = one_slot.requests_to("/api/embed")[1].json["input"]
    assert sorted(sent) == sorted(native + openai_ + ollama_)
    assert all(_contains(sent, part) for part in (native, openai_, ollama_))
    assert native_answer.json()["embeddings"] == _alone(one_slot, native)
    assert [d["embedding"] for d in openai_answer.json()["data"]] == _alone(one_slot, openai_)
    assert [d["index"] for d in openai_answer.json()["data"]] == [0, 1]
    body = ollama_answer.json()
    assert body["model"] == f"{MODEL}:latest"  # its own spelling of the model
    assert body["embeddings"] == _alone(one_slot, ollama_)
    counts = [
        native_answer.json()["usage"]["prompt_tokens"],
        openai_answer.json()["usage"]["prompt_tokens"],
        body["prompt_eval_count"],
    ]
    assert sum(counts) == sum(map(_words, native + openai_ + ollama_))


def test_a_request_that_finds_the_slot_free_is_sent_at_once_alone(
    gateway: str, one_slot: FakeOllama, keys: list[tuple[object, str]]
) -> None:
    one_slot.hold_embeds()

    async def run() -> tuple[int, httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway, timeout=60) as client:
            answer = asyncio.create_task(
                client.post(
                    NATIVE, headers=bearer(keys[0][1]), json={"model": MODEL, "input": "alone"}
                )
            )
            # The backend has the call while the request is the only one in
            # the gateway: it waited for no company (no batch window by default).
            await _until(lambda: one_slot.requests_to("/api/embed") or answer.done())
            waiting_then = _waiting()
            assert not answer.done()
            one_slot.release_embeds()
            return waiting_then, await answer

    waiting_then, answer = asyncio.run(run())

    assert answer.status_code == 200
    assert waiting_then == 0
    assert [r.json["input"] for r in one_slot.requests_to("/api/embed")] == [["alone"]]
    assert _records()[0].queued_ms < 1000  # never the queue timeout or a window


def test_a_client_that_leaves_its_batch_costs_nothing_and_the_others_are_served(
    gateway: str, one_slot: FakeOllama, keys: list[tuple[object, str]]
) -> None:
    one_slot.hold_embeds()
    texts = ["one", "two", "three", "four", "five"]

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway, timeout=60) as client:

            def send(text: str) -> asyncio.Task[httpx.Response]:
                return _embed_task(client, keys[0][1], text)

            holder = send("holder")
            await _until(lambda: one_slot.requests_to("/api/embed"))
            batch = [send(text) for text in texts]
            await _until(lambda: _waiting() == 5)
            batch[2].cancel()  # the client of "three" goes away
            await _until(lambda: _waiting() == 4)
            one_slot.release_embeds()
            await holder
            return await asyncio.gather(*(task for task in batch if not task.cancelled()))

    answers = asyncio.run(run())

    kept = [t for t in texts if t != "three"]
    assert [a.status_code for a in answers] == [200] * 4
    assert sorted(one_slot.requests_to("/api/embed")[1].json["input"]) == sorted(kept)
    assert [a.json()["embeddings"][0] for a in answers] == _alone(one_slot, kept)


def test_a_batch_everyone_left_never_reaches_the_backend(
    gateway: str, one_slot: FakeOllama, keys: list[tuple[object, str]]
) -> None:
    one_slot.hold_embeds()

    async def run() -> None:
        async with httpx.AsyncClient(base_url=gateway, timeout=60) as client:
            holder = asyncio.create_task(
                client.post(
                    NATIVE, headers=bearer(keys[0][1]), json={"model": MODEL, "input": "holder"}
                )
            )
            await _until(lambda: one_slot.requests_to("/api/embed"))
            leavers = [
                asyncio.create_task(
                    client.post(
                        NATIVE,
                        headers=bearer(keys[n % 4][1]),
                        json={"model": MODEL, "input": f"leaver {n}"},
                    )
                )
                for n in range(10)
            ]
            await _until(lambda: _waiting() == 10)
            for task in leavers:
                task.cancel()
            await asyncio.gather(*leavers, return_exceptions=True)
            await _until(lambda: _waiting() == 0 and not _scheduler_waiting())
            one_slot.release_embeds()
            assert (await holder).status_code == 200

    asyncio.run(run())

    assert one_slot.embed_calls == 1  # the backend never saw the ten


def _contains(sequence: list[str], part: list[str]) -> bool:
    return any(sequence[i : i + len(part)] == part for i in range(len(sequence)))


def _scheduler_waiting() -> int:
    return sum(sum(s.waiting.values()) for s in service.scheduler_get().stats())


def test_a_bad_input_fails_only_its_own_request(
    gateway: str, one_slot: FakeOllama, keys: list[tuple[object, str]]
) -> None:
    one_slot.hold_embeds()
    too_long = " ".join(["word"] * 600)  # over the model's context of 512

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway, timeout=60) as client:

            def send(text: str) -> asyncio.Task[httpx.Response]:
                return asyncio.create_task(
                    client.post(
                        "/ollama/api/embed",
                        headers=bearer(keys[0][1]),
                        json={"model": MODEL, "input": text, "truncate": False},
                    )
                )

            holder = send("holder")
            await _until(lambda: one_slot.requests_to("/api/embed"))
            batch = [send("fine"), send(too_long), send("also fine")]
            await _until(lambda: _waiting() == 3)
            one_slot.release_embeds()
            await holder
            return await asyncio.gather(*batch)

    fine, bad, also_fine = asyncio.run(run())

    assert fine.status_code == also_fine.status_code == 200
    assert bad.status_code == 400
    assert "context length" in bad.json()["error"]
    # The batch was refused, then each member tried alone (in the same slot).
    inputs = [r.json["input"] for r in one_slot.requests_to("/api/embed")]
    assert sorted(inputs[1]) == sorted(["fine", too_long, "also fine"])
    assert inputs[2:] == [[text] for text in inputs[1]]
    assert fine.json()["embeddings"] == _alone(one_slot, ["fine"])


def test_a_failed_batch_call_fails_every_member_with_the_same_error(
    gateway: str, one_slot: FakeOllama, keys: list[tuple[object, str]]
) -> None:
    one_slot.hold_embeds()

    async def run() -> tuple[httpx.Response, list[httpx.Response]]:
        async with httpx.AsyncClient(base_url=gateway, timeout=60) as client:

            def send(text: str) -> asyncio.Task[httpx.Response]:
                return _embed_task(client, keys[1][1], text)

            holder = send("holder")
            await _until(lambda: one_slot.requests_to("/api/embed"))
            batch = [send(f"text {n}") for n in range(4)]
            await _until(lambda: _waiting() == 4)
            one_slot.oom = True  # the next call (the batch's) fails
            one_slot.release_embeds()
            return await holder, await asyncio.gather(*batch)

    holder, answers = asyncio.run(run())

    assert holder.status_code == 200
    assert len(one_slot.requests_to("/api/embed")) == 2
    assert len({(a.status_code, a.json()["error"]["message"]) for a in answers}) == 1
    assert answers[0].status_code >= 500


@pytest.mark.parametrize(
    ("total", "weights", "parts"),
    [
        (10, [1, 1, 1], [4, 3, 3]),
        (7, [0, 0], [4, 3]),
        (0, [3, 5], [0, 0]),
        (100, [1, 2, 3, 4], [10, 20, 30, 40]),
        (5, [10, 1, 1], [4, 1, 0]),
    ],
)
def test_a_total_is_split_in_whole_tokens_that_add_up(
    total: int, weights: list[int], parts: list[int]
) -> None:
    assert split_total(total, weights) == parts
    assert sum(split_total(total, weights)) == total


# --- several backends: a batch fails over as one ------------------------------


@pytest.fixture
def two_backends() -> Iterator[dict[str, FakeOllama]]:
    servers = {"a": FakeOllama(), "b": FakeOllama()}
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def pool_gateway(transactional_db, two_backends: dict[str, FakeOllama], settings) -> Iterator[str]:
    settings.OLLAMA_HOSTS = _ollama_hosts(
        ",".join(f"{n}={f.url};parallel=1" for n, f in two_backends.items())
    )
    settings.BACKEND_PROBE_INTERVAL = 0.2
    settings.BACKEND_DOWN_MAX = 0.4
    server = ServerThread()
    server.start()
    yield server.url
    server.stop()


def test_a_batch_whose_backend_fails_goes_whole_to_another(
    pool_gateway: str, two_backends: dict[str, FakeOllama], keys: list[tuple[object, str]]
) -> None:
    a, b = two_backends["a"], two_backends["b"]
    # The model loaded on a: routing sends every request there.
    ollama.Client(host=a.url).embed(model=MODEL, input="warm up", keep_alive="10m")
    calls_before = a.embed_calls
    a.hold_embeds()
    texts = [f"text {n}" for n in range(6)]

    async def run() -> tuple[httpx.Response, list[httpx.Response]]:
        async with httpx.AsyncClient(base_url=pool_gateway, timeout=60) as client:
            await _until_loaded(client, "a")

            def send(text: str) -> asyncio.Task[httpx.Response]:
                return _embed_task(client, keys[0][1], text)

            holder = send("holder")
            await _until(lambda: len(a.requests_to("/api/embed")) == 2)
            batch = [send(text) for text in texts]
            await _until(lambda: _waiting() == len(texts))
            a.busy = True  # a refuses the batch's call: it goes to b, whole
            a.release_embeds()
            return await holder, await asyncio.gather(*batch)

    holder, answers = asyncio.run(run())

    assert holder.status_code == 200
    assert [answer.status_code for answer in answers] == [200] * len(texts)
    assert a.embed_calls - calls_before == 1  # the holder's
    [call] = [r.json["input"] for r in b.requests_to("/api/embed")]
    assert sorted(call) == texts
    assert [answer.json()["embeddings"][0] for answer in answers] == _alone(b, texts)
    records = _records()
    assert [r.backend for r in records].count("b") == len(texts)
    assert sum(r.prompt_tokens for r in records if r.backend == "b") == sum(map(_words, texts))


async def _until_loaded(client: httpx.AsyncClient, backend: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        backends = (await client.get("/readyz")).json()["backends"]
        if any(MODEL in name for name in backends[backend]["models_loaded"]):
            return
        assert time.monotonic() < deadline, "the model never showed as loaded"
        await asyncio.sleep(0.05)


# --- the embedded engine: each request its own exact token count --------------


@pytest.fixture
def engine_gateway(transactional_db, engine, dead_ollama: str) -> Iterator[str]:
    """A live gateway with the embedded backend (one slot) and no Ollama."""
    server = ServerThread()
    server.start()
    yield server.url
    server.stop()


@pytest.mark.engine
def test_the_engine_gives_each_batched_request_its_own_exact_token_count(
    engine_gateway: str, keys: list[tuple[object, str]], settings
) -> None:
    model = "all-minilm"
    texts = [f"{'a small cat ' * (n % 4 + 1)}sat on mat number {n}." for n in range(12)]
    big = [f"A long paragraph about item {n}. " * 20 for n in range(128)]
    seen_waiting: list[int] = []

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=engine_gateway, timeout=300) as client:

            def send(inputs: str | list[str], n: int) -> asyncio.Task[httpx.Response]:
                return asyncio.create_task(
                    client.post(
                        NATIVE,
                        headers=bearer(keys[n % len(keys)][1]),
                        json={"model": model, "input": inputs},
                    )
                )

            holder = send(big, 0)  # holds the engine's one slot for a while
            await _until(lambda: service.embed_coalescer().waiting() == 0 and _engine_busy())
            batch = [send(text, n) for n, text in enumerate(texts)]
            await _until(lambda: _waiting() == len(texts) or holder.done())
            seen_waiting.append(_waiting())
            assert (await holder).status_code == 200
            return await asyncio.gather(*batch)

    answers = asyncio.run(run())
    assert [a.status_code for a in answers] == [200] * len(texts)
    batched = [a.json()["usage"]["prompt_tokens"] for a in answers]
    batched_vectors = [a.json()["embeddings"][0] for a in answers]

    settings.EMBED_COALESCE = False
    with httpx.Client(base_url=engine_gateway, timeout=300) as client:
        alone = [
            client.post(
                NATIVE, headers=bearer(keys[0][1]), json={"model": model, "input": text}
            ).json()
            for text in texts
        ]

    assert seen_waiting == [len(texts)]  # they did wait together, as one batch
    assert batched == [answer["usage"]["prompt_tokens"] for answer in alone]
    for ours, theirs in zip(batched_vectors, alone, strict=True):
        assert _cosine(ours, theirs["embeddings"][0]) > 0.9999
    records = _records()
    assert len(records) == 1 + 2 * len(texts)
    assert sorted(r.prompt_tokens for r in records[1 : 1 + len(texts)]) == sorted(batched)


def _engine_busy() -> bool:
    return any(q.in_use for q in service.scheduler_get().stats() if "all-minilm" in q.resource)


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)
