"""The embedding coalescing benchmark (`python -m bench.coalesce`).

One backend slot (the fake Ollama with `--max-concurrent 1`) whose embed
call costs more per call than per input, as a GPU's does (`--call-ms`,
default 40 ms a call, plus `--input-ms`, 1 ms an input). Rounds of 64
concurrent single-input requests (4 keys) go to a gateway started as
`make run` starts it (uvicorn), with EMBED_COALESCE on and off, in the same
run, alternating. For each: the backend calls it received, the throughput
and the latency; then the ratio, and whether every request got the same
vector in both runs and token counts that add up to the backend's.

Prints a Markdown table and writes `bench/coalesce.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.processes import ROOT, fake_ollama_process, manage, server_env, start_server

MODEL = "mxbai-embed-large"
CONCURRENT = 64
KEYS = 4


def fake_backend(call_ms: float, input_ms: float, counters: dict[str, int]) -> Any:
    """The fake Ollama in its own process; its counters land in `counters` when it ends."""
    return fake_ollama_process(
        "--max-concurrent", "1", "--embed-call-ms", str(call_ms),
        "--embed-input-ms", str(input_ms), counters=counters,
    )  # fmt: skip


def _text(n: int) -> str:
    return " ".join(f"word{n}" for _ in range(n % 7 + 1))


async def rounds(url: str, keys: list[str], count: int) -> dict[str, Any]:
    """`count` rounds of 64 concurrent requests; what each answered, and how fast."""
    texts = [_text(n) for n in range(CONCURRENT)]
    latencies: list[float] = []
    answers: dict[str, list[float]] = {}
    tokens = 0
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def one(n: int) -> None:
            nonlocal tokens
            sent = time.monotonic()
            answer = await client.post(
                "/v1/embeddings",
                headers={"Authorization": f"Bearer {keys[n % len(keys)]}"},
                json={"model": MODEL, "input": texts[n]},
            )
            latencies.append(time.monotonic() - sent)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            if answer.status_code == 200:
                body = answer.json()
                answers[texts[n]] = body["embeddings"][0]
                tokens += body["usage"]["prompt_tokens"]

        elapsed = 0.0
        for _ in range(count):
            started = time.monotonic()
            await asyncio.gather(*(one(n) for n in range(CONCURRENT)))
            elapsed += time.monotonic() - started
    requests = count * CONCURRENT
    return {
        "requests": requests,
        "elapsed_s": round(elapsed, 3),
        "requests_per_s": round(requests / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "answered_tokens": tokens,
        "statuses": statuses,
        "vectors": answers,
    }


def run(count: int, call_ms: float, input_ms: float) -> dict[str, Any]:
    results: dict[str, Any] = {
        "call_ms": call_ms,
        "input_ms": input_ms,
        "concurrent": CONCURRENT,
        "rounds": count,
    }
    cases = [("coalescing off", "false"), ("coalescing on", "true")]
    with tempfile.TemporaryDirectory() as tmp:
        for number, (name, switch) in enumerate(cases):
            counters: dict[str, int] = {}
            with fake_backend(call_ms, input_ms, counters) as backend:
                env = server_env(
                    DATABASE_URL=f"sqlite:///{Path(tmp) / f'coalesce{number}.sqlite3'}",
                    OLLAMA_HOST=backend,
                    OLLAMA_NUM_PARALLEL="1",
                    EMBED_COALESCE=switch,
                    GATEWAY_MAX_PENDING_REQUESTS="100000",
                    RATE_LIMIT_EMBEDDINGS="1000000",
                )
                manage(env, "migrate", "--noinput", "-v0")
                keys = [_key(env, f"bench-{k}") for k in range(KEYS)]
                with start_server(env=env, server="uvicorn") as url:
                    httpx.get(f"{url}/healthz", timeout=120)  # Django loaded
                    print(f"  {name} ...", file=sys.stderr, flush=True)
                    results[name] = asyncio.run(rounds(url, keys, count))
            results[name]["backend_calls"] = counters.get("embed_calls", 0)
            results[name]["backend_inputs"] = counters.get("embed_inputs", 0)
            results[name]["backend_tokens"] = counters.get("embed_tokens", 0)
    off, on = results["coalescing off"], results["coalescing on"]
    results["throughput_ratio"] = round(on["requests_per_s"] / off["requests_per_s"], 2)
    results["calls_ratio"] = round(off["backend_calls"] / max(1, on["backend_calls"]), 2)
    results["same_vectors"] = on.pop("vectors") == off.pop("vectors")
    results["tokens_add_up"] = all(
        case["answered_tokens"] == case["backend_tokens"] for case in (on, off)
    )
    return results


def _key(env: dict[str, str], name: str) -> str:
    out = manage(env, "create_api_key", name, "--rate-limit", "1000000")
    return next(word for word in out.split() if word.startswith("lai_"))


def table(results: dict[str, Any]) -> str:
    rows = [
        f"{results['rounds']} rounds of {results['concurrent']} concurrent single-input "
        f"requests, 1 slot, {results['call_ms']:g} ms a call + {results['input_ms']:g} ms "
        "an input",
        "",
        "| case | backend calls | inputs | throughput | p50 | max | statuses |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("coalescing off", "coalescing on"):
        row = results[name]
        rows.append(
            f"| {name} | {row['backend_calls']} | {row['backend_inputs']} "
            f"| {row['requests_per_s']} req/s | {row['p50_ms']} ms | {row['max_ms']} ms "
            f"| {row['statuses']} |"
        )
    rows += [
        "",
        f"throughput on/off: {results['throughput_ratio']}x; "
        f"backend calls off/on: {results['calls_ratio']}x; "
        f"same vector for every request: {results['same_vectors']}; "
        f"answered tokens = backend's tokens: {results['tokens_add_up']}",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.coalesce", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--call-ms", type=float, default=40.0, help="backend cost of a call")
    parser.add_argument("--input-ms", type=float, default=1.0, help="backend cost of an input")
    args = parser.parse_args(argv)
    results = run(args.rounds, args.call_ms, args.input_ms)
    (ROOT / "bench" / "coalesce.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
