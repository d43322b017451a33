"""The load-test tool (chapter 5, section 5.5.2), grown into a real command.

    python -m bench.loadtest --url http://127.0.0.1:8000 --key lai_... \\
        --endpoint chat -n 1000 -c 10
    python -m bench.loadtest --url http://127.0.0.1:11434 --api ollama --endpoint chat-stream -d 10

A steady pool of `--concurrency` workers (each starts its next request as soon
as its last one ends; no batches waiting for their slowest member) sends
`--requests` requests in total, or keeps going for `--duration` seconds.
`--rate` switches to an open loop: requests start at a fixed arrival rate
whether or not earlier ones have finished (at most `--concurrency` in flight),
which is how overload is offered. Progress goes to stderr while it runs; the
report (the chapter's total, success, failed, success rate, average, median,
min, max, p95, p99, plus requests/s, time to first chunk and the gap between
chunks for streams, and every non-2xx status or transport error) goes to
stdout, as text or, with `--json`, as one JSON object.

A request succeeds when its status is 2xx and, for a stream, when the stream
ends the way a finished answer ends (`data: [DONE]` for the gateway's SSE,
a `"done":true` line for Ollama's NDJSON); a stream cut short counts as
failed (`incomplete_stream`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp

DEFAULT_CHAT_MODEL = "qwen2.5:14b"
DEFAULT_EMBEDDING_MODEL = "mxbai-embed-large"
ENDPOINTS = ("chat", "chat-stream", "embeddings", "models")
APIS = ("gateway", "openai", "ollama")


@dataclass(frozen=True)
class Preset:
    method: str
    path: str
    body: dict[str, Any] | None
    stream: bool = False


def preset(api: str, endpoint: str, *, model: str | None = None, max_tokens: int = 50) -> Preset:
    """The request an endpoint preset sends on one API surface.

    `gateway` is the native `/v1/` API, `openai` the `/openai/v1/` surface,
    `ollama` Ollama's own `/api/` (the direct path to Ollama or the fake, or
    the gateway's `/ollama/` mirror when the URL ends in `/ollama`).
    """
    messages = [{"role": "user", "content": "Hello, how are you?"}]
    chat_model = model or DEFAULT_CHAT_MODEL
    embed_model = model or DEFAULT_EMBEDDING_MODEL
    stream = endpoint == "chat-stream"
    if api == "ollama":
        if endpoint in ("chat", "chat-stream"):
            body = {
                "model": chat_model,
                "messages": messages,
                "stream": stream,
                "options": {"num_predict": max_tokens},
            }
            return Preset("POST", "/api/chat", body, stream)
        if endpoint == "embeddings":
            return Preset("POST", "/api/embed", {"model": embed_model, "input": ["Hello"]})
        return Preset("GET", "/api/tags", None)
    prefix = "/openai/v1" if api == "openai" else "/v1"
    if endpoint in ("chat", "chat-stream"):
        body = {"model": chat_model, "messages": messages, "max_tokens": max_tokens}
        if stream:
            body["stream"] = True
        return Preset("POST", f"{prefix}/chat/completions", body, stream)
    if endpoint == "embeddings":
        return Preset("POST", f"{prefix}/embeddings", {"model": embed_model, "input": ["Hello"]})
    return Preset("GET", f"{prefix}/models", None)


@dataclass(frozen=True)
class LoadTestConfig:
    """One load test. `requests` and/or `duration` bound it (at least one must be set)."""

    url: str
    method: str = "GET"
    path: str = "/"
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    stream: bool = False
    requests: int | None = None
    duration: float | None = None
    concurrency: int = 10
    rate: float | None = None
    timeout: float = 60.0
    progress: bool = True


@dataclass(slots=True)
class Sample:
    """One finished request as the client saw it."""

    status: int  # 0: no HTTP status (transport error)
    latency: float
    ok: bool
    ttft: float | None = None
    gaps: list[float] | None = None
    error: str | None = None
    # Open loop only: seconds the request started after its scheduled time.
    lag: float = 0.0


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation between closest ranks.

    Same definition as numpy's default: p=50 of [1, 2, 3, 4] is 2.5; p=0 and
    p=100 are the min and the max.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * p / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _stats(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "avg": sum(values) / len(values),
        "median": percentile(values, 50),
        "min": min(values),
        "max": max(values),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
    }


def build_report(
    samples: Sequence[Sample], elapsed: float, config: LoadTestConfig
) -> dict[str, Any]:
    """The report as a plain dict (what `--json` prints). Times in seconds."""
    total = len(samples)
    success = sum(1 for s in samples if s.ok)
    non_2xx = Counter(str(s.status) for s in samples if s.status and not 200 <= s.status < 300)
    errors = Counter(s.error for s in samples if s.error)
    ttfts = [s.ttft for s in samples if s.ok and s.ttft is not None]
    gaps = [g for s in samples if s.ok and s.gaps for g in s.gaps]
    lags = [s.lag for s in samples]
    return {
        "url": config.url.rstrip("/") + config.path,
        "method": config.method,
        "stream": config.stream,
        "concurrency": config.concurrency,
        "rate": config.rate,
        "total": total,
        "success": success,
        "failed": total - success,
        "success_rate": (100.0 * success / total) if total else 0.0,
        "elapsed": elapsed,
        "requests_per_second": total / elapsed if elapsed > 0 else 0.0,
        "latency": _stats([s.latency for s in samples]),
        "latency_success": _stats([s.latency for s in samples if s.ok]),
        "latency_non_2xx": _stats(
            [s.latency for s in samples if s.status and not 200 <= s.status < 300]
        ),
        "ttft": _stats(ttfts),
        "chunk_gap": _stats(gaps),
        "start_lag": _stats(lags) if config.rate else None,
        "status_codes": dict(sorted(Counter(str(s.status) for s in samples if s.status).items())),
        "non_2xx": dict(sorted(non_2xx.items())),
        "errors": dict(sorted(errors.items())),
    }


async def _one(
    session: aiohttp.ClientSession, config: LoadTestConfig, target: str, lag: float = 0.0
) -> Sample:
    started = time.perf_counter()
    try:
        async with session.request(
            config.method, target, data=config.body, headers=config.headers
        ) as response:
            status = response.status
            if not config.stream or not 200 <= status < 300:
                await response.read()
                return Sample(status, time.perf_counter() - started, 200 <= status < 300, lag=lag)
            ttft: float | None = None
            last: float | None = None
            gaps: list[float] = []
            finished = False
            async for raw in response.content:
                line = raw.strip()
                if not line:
                    continue
                now = time.perf_counter()
                if line.startswith(b"data:"):  # the gateway's SSE
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        finished = True
                        continue
                elif line.startswith(b"{"):  # Ollama's NDJSON
                    payload = line
                    if b'"done":true' in line.replace(b" ", b""):
                        finished = True
                else:
                    continue
                if b'"error"' in payload[:12]:
                    finished = False
                    break
                if ttft is None:
                    ttft = now - started
                elif last is not None:
                    gaps.append(now - last)
                last = now
            latency = time.perf_counter() - started
            if not finished:
                return Sample(status, latency, False, ttft, gaps, "incomplete_stream", lag)
            return Sample(status, latency, True, ttft, gaps, lag=lag)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Sample(0, time.perf_counter() - started, False, error=type(exc).__name__, lag=lag)


class _Progress:
    def __init__(self, config: LoadTestConfig, out: TextIO) -> None:
        self.config, self.out = config, out
        self.done = self.failed = 0
        self.started = time.perf_counter()

    def add(self, sample: Sample) -> None:
        self.done += 1
        self.failed += not sample.ok

    async def run(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.print()

    def print(self, end: str = "") -> None:
        elapsed = time.perf_counter() - self.started
        goal = f"/{self.config.requests}" if self.config.requests else ""
        if self.config.duration:
            goal += f" ({elapsed:.0f}/{self.config.duration:g} s)"
        rps = self.done / elapsed if elapsed else 0.0
        line = f"\r  {self.done}{goal} requests, {self.failed} failed, {rps:.0f} req/s"
        self.out.write(line + end)
        self.out.flush()


async def run_load_test(config: LoadTestConfig, *, progress_out: TextIO | None = None) -> dict:
    """Run one load test; return its report (see `build_report`)."""
    if not config.requests and not config.duration:
        raise ValueError("Give a number of requests, a duration, or both.")
    target = config.url.rstrip("/") + config.path
    samples: list[Sample] = []
    progress = _Progress(config, progress_out or sys.stderr)
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=config.timeout)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False
    ) as session:
        started = time.perf_counter()
        deadline = started + config.duration if config.duration else math.inf
        ticker = asyncio.create_task(progress.run()) if config.progress else None
        issued = 0

        def more() -> bool:
            nonlocal issued
            if time.perf_counter() >= deadline:
                return False
            if config.requests is not None and issued >= config.requests:
                return False
            issued += 1
            return True

        def keep(sample: Sample) -> None:
            samples.append(sample)
            progress.add(sample)

        try:
            if config.rate:
                await _open_loop(session, config, target, started, more, keep)
            else:

                async def worker() -> None:
                    while more():
                        keep(await _one(session, config, target))

                await asyncio.gather(*(worker() for _ in range(config.concurrency)))
        finally:
            elapsed = time.perf_counter() - started
            if ticker is not None:
                ticker.cancel()
                progress.print(end="\n")
    return build_report(samples, elapsed, config)


async def _open_loop(session, config, target, started, more, keep) -> None:  # type: ignore[no-untyped-def]
    """Start request i at `started + i / rate`, at most `concurrency` in flight."""
    assert config.rate
    slots = asyncio.Semaphore(config.concurrency)
    tasks: set[asyncio.Task[None]] = set()
    index = 0

    async def fire(scheduled: float) -> None:
        try:
            keep(await _one(session, config, target, max(0.0, time.perf_counter() - scheduled)))
        finally:
            slots.release()

    while more():
        scheduled = started + index / config.rate
        index += 1
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        task = asyncio.create_task(fire(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)


def _ms(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value * 1000:.2f} ms"


def format_report(report: dict[str, Any]) -> str:
    """The chapter's report, plus requests/s, stream timings and non-2xx codes."""
    lines = [
        "=== Test result ===",
        f"URL: {report['method']} {report['url']}"
        + (" (stream)" if report["stream"] else "")
        + (
            f"  [open loop: {report['rate']:g} req/s offered]"
            if report["rate"]
            else f"  [{report['concurrency']} workers]"
        ),
        f"Total requests: {report['total']}",
        f"Success: {report['success']}",
        f"Failed: {report['failed']}",
        f"Success rate: {report['success_rate']:.2f}%",
        f"Requests/s: {report['requests_per_second']:.1f} "
        f"({report['total']} in {report['elapsed']:.2f} s)",
    ]
    latency = report["latency"]
    if latency:
        lines += [
            "",
            f"Average response time: {_ms(latency['avg'])}",
            f"Median: {_ms(latency['median'])}",
            f"Minimum: {_ms(latency['min'])}",
            f"Maximum: {_ms(latency['max'])}",
            f"95th percentile: {_ms(latency['p95'])}",
            f"99th percentile: {_ms(latency['p99'])}",
        ]
    for key, title in (("ttft", "Time to first chunk"), ("chunk_gap", "Gap between chunks")):
        stats = report[key]
        if stats:
            lines.append(
                f"{title}: median {_ms(stats['median'])}, p95 {_ms(stats['p95'])}, "
                f"p99 {_ms(stats['p99'])}, max {_ms(stats['max'])}"
            )
    if report["non_2xx"]:
        codes = ", ".join(f"{code}: {count}" for code, count in report["non_2xx"].items())
        lines.append(f"Non-2xx responses: {codes}")
    if report["errors"]:
        errors = ", ".join(f"{name}: {count}" for name, count in report["errors"].items())
        lines.append(f"Errors: {errors}")
    return "\n".join(lines)


def config_from_args(args: argparse.Namespace) -> LoadTestConfig:
    chosen = preset(args.api, args.endpoint, model=args.model, max_tokens=args.max_tokens)
    method, path, body, stream = chosen.method, chosen.path, chosen.body, chosen.stream
    if args.path:
        path = args.path
    if args.method:
        method = args.method.upper()
    if args.payload is not None:
        text = args.payload
        if text.startswith("@"):
            with open(text[1:], encoding="utf-8") as handle:
                text = handle.read()
        body = json.loads(text)
        stream = bool(isinstance(body, dict) and body.get("stream"))
        if method == "GET":
            method = "POST"
    headers = {"Accept": "*/*"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if args.key:
        headers["Authorization"] = f"Bearer {args.key}"
    for header in args.header or ():
        name, _, value = header.partition(":")
        headers[name.strip()] = value.strip()
    requests = args.requests
    if requests is None and args.duration is None:
        requests = 100
    return LoadTestConfig(
        url=args.url,
        method=method,
        path=path,
        body=json.dumps(body).encode() if body is not None else None,
        headers=headers,
        stream=stream,
        requests=requests,
        duration=args.duration,
        concurrency=args.concurrency,
        rate=args.rate,
        timeout=args.timeout,
        progress=not args.quiet,
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.loadtest",
        description="Load-test the gateway (or Ollama directly) with a steady pool of workers.",
    )
    p.add_argument("--url", default="http://127.0.0.1:8000", help="base URL of the server")
    p.add_argument("--api", choices=APIS, default="gateway", help="which API the presets speak")
    p.add_argument("--endpoint", choices=ENDPOINTS, default="chat", help="request preset")
    p.add_argument("--path", help="override the preset's path")
    p.add_argument("--method", help="override the preset's method")
    p.add_argument("--payload", help="JSON body (or @file) instead of the preset's")
    p.add_argument("--model", help="model for the preset (default: the gateway's defaults)")
    p.add_argument("--max-tokens", type=int, default=50, help="max_tokens of chat presets")
    p.add_argument("--key", help="API key, sent as 'Authorization: Bearer <key>'")
    p.add_argument("-H", "--header", action="append", help="extra header 'Name: value'")
    p.add_argument("-n", "--requests", type=int, help="total requests (default 100)")
    p.add_argument("-d", "--duration", type=float, help="run for this many seconds")
    p.add_argument("-c", "--concurrency", type=int, default=10, help="workers (default 10)")
    p.add_argument(
        "--rate", type=float, help="open loop: start this many requests per second instead"
    )
    p.add_argument("--timeout", type=float, default=60.0, help="per-request timeout, seconds")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return p


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run from the command line; exit status 0 when every request succeeded, else 1."""
    args = parser().parse_args(argv)
    out = out or sys.stdout
    config = config_from_args(args)
    if not args.json and not args.quiet:
        print("Load test started...", file=sys.stderr)
        print(f"URL: {config.method} {config.url.rstrip('/')}{config.path}", file=sys.stderr)
        amount = f"{config.requests} requests" if config.requests else ""
        if config.duration:
            amount += (" or " if amount else "") + f"{config.duration:g} s"
        print(f"Amount: {amount}, concurrency {config.concurrency}", file=sys.stderr)
    report = asyncio.run(run_load_test(config))
    if args.json:
        out.write(json.dumps(report, indent=2) + "\n")
    else:
        out.write(format_report(report) + "\n")
    return 0 if report["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
