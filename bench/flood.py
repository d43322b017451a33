"""The flood benchmark of the fair scheduler (`python -m bench.flood`).

One backend slot (the fake Ollama with `--max-concurrent 1`, 50 ms a
request). Key A floods it with 200 non-streamed requests at concurrency 50;
key B sends one request every 0.5 s meanwhile. B's latency is measured with
the scheduler and without it (SCHEDULER_ENABLED=false: every request goes
straight to the backend's own first-come queue), in the same run, on the
same machine, unpinned as `make run` serves. Also: the same flood over two
gateway processes sharing the scheduler through Redis, and how busy the
backend's slot stayed while work was queued.

Prints a Markdown table and writes `bench/flood.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.processes import ROOT, fake_ollama_process, manage, server_env, start_server

SERVICE_SECONDS = 0.05
BODY = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "Hi"}]}


def fake_backend() -> Any:
    """The fake Ollama in its own process: one slot, SERVICE_SECONDS a request."""
    return fake_ollama_process(
        "--max-concurrent", "1", "--first-token-delay", str(SERVICE_SECONDS), "--tokens", "1"
    )


@contextlib.contextmanager
def gateways(env: dict[str, str], count: int) -> Iterator[list[str]]:
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(start_server(env=env, server="uvicorn")) for _ in range(count)]
        for url in urls:  # the first answer waits for Django to load
            httpx.get(f"{url}/healthz", timeout=120)
        yield urls


def _key(env: dict[str, str], name: str) -> str:
    out = manage(env, "create_api_key", name, "--rate-limit", "100000")
    return next(word for word in out.split() if word.startswith("lai_"))


async def _busy_seconds(client: httpx.AsyncClient, backend: str) -> float:
    return (await client.get(f"{backend}/_fake/stats")).json()["busy_seconds"]


async def flood(
    urls: list[str], key_a: str, key_b: str, requests: int, backend: str
) -> dict[str, Any]:
    """A's flood and B's steady trickle; B's latencies, the run's throughput, and
    the backend's busy share (its own busy time over the run's wall time)."""
    b_latencies: list[float] = []
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(requests):
            queue.put_nowait(i)

        async def worker(index: int) -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                url = urls[i % len(urls)]
                answer = await client.post(
                    f"{url}/v1/chat/completions",
                    headers={"Authorization": f"Bearer {key_a}"},
                    json=BODY,
                )
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        busy_before = await _busy_seconds(client, backend)
        started = time.monotonic()
        workers = [asyncio.create_task(worker(i)) for i in range(50)]
        done = asyncio.gather(*workers)
        b_sent = 0
        while not done.done():
            sent_at = time.monotonic()
            url = urls[b_sent % len(urls)]
            b_sent += 1
            answer = await client.post(
                f"{url}/v1/chat/completions",
                headers={"Authorization": f"Bearer {key_b}"},
                json=BODY,
            )
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            b_latencies.append(time.monotonic() - sent_at)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(done), max(0.0, 0.5 - (time.monotonic() - sent_at))
                )
        await done
        elapsed = time.monotonic() - started
        busy = await _busy_seconds(client, backend) - busy_before
    served = requests + b_sent
    return {
        "b_requests": len(b_latencies),
        "b_p50_ms": round(statistics.median(b_latencies) * 1000, 1),
        "b_p95_ms": round(_p95(b_latencies) * 1000, 1),
        "elapsed_s": round(elapsed, 2),
        "requests_per_s": round(served / elapsed, 2),
        # The slot's busy share: the time the backend had a request running (its
        # own count: from taking a request to the last byte of its answer) over
        # the wall time of the run, all of which had work queued.
        "slot_busy": round(min(1.0, busy / elapsed), 3),
        "backend_ms_per_request": round(busy / served * 1000, 1),
        "statuses": statuses,
    }


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def run(requests: int, redis_url: str | None) -> dict[str, Any]:
    results: dict[str, Any] = {
        "service_ms": SERVICE_SECONDS * 1000,
        "a_requests": requests,
        "a_concurrency": 50,
    }
    with fake_backend() as backend, tempfile.TemporaryDirectory() as tmp:
        cases = [
            ("without the scheduler (backend FIFO)", {"SCHEDULER_ENABLED": "false"}, 1, ""),
            (
                "with the scheduler",
                {"SCHEDULER_ENABLED": "true", "OLLAMA_NUM_PARALLEL": "1"},
                1,
                "",
            ),
        ]
        if redis_url:
            cases.append(
                (
                    "with the scheduler, 2 processes on Redis",
                    {"SCHEDULER_ENABLED": "true", "OLLAMA_NUM_PARALLEL": "1"},
                    2,
                    redis_url,
                )
            )
        for number, (name, extra, processes, redis) in enumerate(cases):
            env = server_env(
                DATABASE_URL=f"sqlite:///{Path(tmp) / f'flood{number}.sqlite3'}",
                OLLAMA_HOST=backend,
                REDIS_URL=redis,
                EMBEDDED_BACKEND="off",
                GATEWAY_MAX_PENDING_REQUESTS="100000",
                **extra,
            )
            manage(env, "migrate", "--noinput", "-v0")
            key_a, key_b = _key(env, "flood-a"), _key(env, "trickle-b")
            if redis:
                import redis as redis_lib

                redis_lib.Redis.from_url(redis).flushdb()
            with gateways(env, processes) as urls:
                print(f"  {name} ...", file=sys.stderr, flush=True)
                results[name] = asyncio.run(flood(urls, key_a, key_b, requests, backend))
    return results


def table(results: dict[str, Any]) -> str:
    rows = [
        "| case | B's p50 | B's p95 | B's requests | throughput | slot busy | statuses |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in results.items():
        if not isinstance(row, dict):
            continue
        rows.append(
            f"| {name} | {row['b_p50_ms']} ms | {row['b_p95_ms']} ms | {row['b_requests']} "
            f"| {row['requests_per_s']} req/s | {row['slot_busy']:.0%} | {row['statuses']} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flood", description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
        help="Redis for the two-process case ('' skips it)",
    )
    args = parser.parse_args(argv)
    redis_url = args.redis_url or None
    if redis_url:
        try:
            import redis as redis_lib

            redis_lib.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
        except Exception as exc:  # the two-process case needs it; say so, run the rest
            print(
                f"  no Redis at {redis_url} ({exc}): skipping the two-process case", file=sys.stderr
            )
            redis_url = None
    results = run(args.requests, redis_url)
    (ROOT / "bench" / "flood.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
