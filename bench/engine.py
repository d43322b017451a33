"""The embedded engine through the gateway against the engine called directly.

    python -m bench.engine [--rounds 5] [--max-tokens 128] [--threads N]

One run, same machine, same model file, same settings (greedy decoding,
`EMBEDDED_THREADS` threads, or --threads), alternating direct and gateway
rounds (ABAB) so that load from elsewhere hits both alike:

- direct: llama-cpp-python's `create_chat_completion(stream=True)` in this
  process, as an application embedding the engine would call it;
- gateway: a `make run`-style uvicorn process (embedded backend on, no
  Ollama), a real key, `POST /v1/chat/completions` streamed over loopback.

Figures: time to first token (request sent -> first text), decode speed
(completion tokens / time from first to last token), and the server's RSS
with both models loaded (after one chat and one embedding). `measure()`
returns them as a dict for `make bench`; `main()` prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.processes import BIN, ROOT, listening_socket

PROMPT = "Write a short story about a lighthouse keeper and a seagull."


@dataclass(frozen=True)
class Sample:
    ttft_s: float
    tokens: int
    decode_s: float

    @property
    def tokens_per_s(self) -> float:
        return (self.tokens - 1) / self.decode_s if self.decode_s > 0 else 0.0


def _settings() -> tuple[str, str, int]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "localai_site.settings")
    from django.conf import settings

    return (
        settings.EMBEDDED_CHAT_MODEL_PATH,
        settings.EMBEDDED_EMBEDDING_MODEL_PATH,
        settings.EMBEDDED_THREADS,
    )


# Tokens of each answer in the paired first-token rounds: more than one, so
# that a decode precedes the first token on both sides, as in real use.
TTFT_PAIR_TOKENS = 8


def _direct_sample(llama: Any, max_tokens: int) -> Sample:
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    for chunk in llama.create_chat_completion(
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        temperature=0.0,
        repeat_penalty=1.1,  # the gateway's default (Ollama's)
        max_tokens=max_tokens,
    ):
        if chunk["choices"][0]["delta"].get("content"):
            last = time.perf_counter()
            first = first or last
            tokens += 1  # llama-cpp-python streams one token per chunk
    return Sample(first - started, tokens, last - first)


def _gateway_sample(client: httpx.Client, max_tokens: int) -> Sample:
    body = {
        "model": "smollm2:135m",
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
        "temperature": 0.0,
        "max_tokens": max_tokens,
    }
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if (event.get("message") or {}).get("content"):
                last = time.perf_counter()
                first = first or last
            usage = event.get("usage")
            if usage:
                tokens = usage["completion_tokens"]
    return Sample(first - started, tokens, last - first)


def _deciles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=10)
    return cuts[0], cuts[-1]


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def measure(*, rounds: int = 5, max_tokens: int = 128, ttft_pairs: int = 40) -> dict[str, Any]:
    """Run the comparison; figures in seconds, tokens/s and bytes.

    The added time to first token is the median of `ttft_pairs` paired
    differences of short answers (TTFT_PAIR_TOKENS tokens, direct then
    through the gateway, after the long rounds): the direct path's own first
    token moves by several ms from round to round (13-22 ms seen in one run),
    which the difference of two medians of a few long rounds does not cancel.
    Both of those are kept beside it. (A one-token answer is no substitute:
    its prompt is then cached whole on both sides, the first token is ready
    without a decode, and the gateway's added time comes out ~1.5 ms lower.)
    """
    import llama_cpp

    chat_path, _, threads = _settings()
    tmp = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "localai_site.settings",
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
        "REDIS_URL": "",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "EMBEDDED_BACKEND": "on",
        "OLLAMA_HOST": "http://127.0.0.1:9",  # no Ollama: the embedded models answer
        "OLLAMA_CONNECT_TIMEOUT": "0.5",
    }
    _manage(env, "migrate", "--noinput", "-v0")
    key = _manage(env, "create_api_key", "bench-engine", "--rate-limit", "1000000").split()[-1]

    sock = listening_socket()
    command = [
        str(BIN / "uvicorn"), "--fd", str(sock.fileno()), "--log-level", "warning",
        "--loop", "uvloop", "--http", "httptools", "localai_site.asgi:application",
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=env, pass_fds=(sock.fileno(),))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            rss_idle = 0
            client.get("/healthz").raise_for_status()
            rss_idle = _rss_bytes(server.pid)
            # Load both models and warm up (the first answer pays the load).
            client.post(
                "/v1/embeddings", json={"model": "all-minilm", "input": ["warm up"]}
            ).raise_for_status()
            _gateway_sample(client, 8)
            llama = llama_cpp.Llama(
                chat_path, n_ctx=4096, n_threads=threads, n_threads_batch=threads, verbose=False
            )
            _direct_sample(llama, 8)
            direct, gateway = [], []
            for _ in range(rounds):
                direct.append(_direct_sample(llama, max_tokens))
                gateway.append(_gateway_sample(client, max_tokens))
            added = []
            for _ in range(ttft_pairs):
                first = _direct_sample(llama, TTFT_PAIR_TOKENS).ttft_s
                added.append(_gateway_sample(client, TTFT_PAIR_TOKENS).ttft_s - first)
            rss_loaded = _rss_bytes(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=10)
        sock.close()

    def summary(samples: list[Sample]) -> dict[str, float]:
        return {
            "ttft_ms": statistics.median(s.ttft_s for s in samples) * 1000,
            "tokens_per_s": statistics.median(s.tokens_per_s for s in samples),
            "tokens": statistics.median(s.tokens for s in samples),
        }

    direct_summary, gateway_summary = summary(direct), summary(gateway)
    return {
        "rounds": rounds,
        "max_tokens": max_tokens,
        "threads": threads,
        "direct": direct_summary,
        "gateway": gateway_summary,
        "tokens_per_s_ratio": gateway_summary["tokens_per_s"] / direct_summary["tokens_per_s"],
        # The short pairs (see the docstring); the long rounds' paired median
        # and the difference of their medians beside it.
        "ttft_pairs": ttft_pairs,
        "ttft_pair_tokens": TTFT_PAIR_TOKENS,
        "ttft_added_ms": statistics.median(added) * 1000,
        "ttft_added_p10_p90_ms": [q * 1000 for q in _deciles(added)],
        "ttft_rounds_paired_ms": statistics.median(
            g.ttft_s - d.ttft_s for d, g in zip(direct, gateway, strict=True)
        )
        * 1000,
        "ttft_medians_difference_ms": gateway_summary["ttft_ms"] - direct_summary["ttft_ms"],
        "server_rss_idle_bytes": rss_idle,
        "server_rss_loaded_bytes": rss_loaded,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, help="EMBEDDED_THREADS for both sides")
    args = parser.parse_args(argv)
    if args.threads:
        os.environ["EMBEDDED_THREADS"] = str(args.threads)  # read by settings, here and there
    result = measure(rounds=args.rounds, max_tokens=args.max_tokens)
    mib = 1024 * 1024
    print(f"Embedded engine, {result['rounds']} rounds, median, max_tokens={result['max_tokens']}, "
          f"{result['threads']} threads")  # fmt: skip
    print(f"{'':10} {'TTFT ms':>9} {'tokens/s':>9} {'tokens':>7}")
    for name in ("direct", "gateway"):
        row = result[name]
        print(f"{name:10} {row['ttft_ms']:9.1f} {row['tokens_per_s']:9.1f} {row['tokens']:7.0f}")
    print(f"gateway/direct tokens/s: {result['tokens_per_s_ratio']:.3f}; "
          f"TTFT added: {result['ttft_added_ms']:+.1f} ms (median of {result['ttft_pairs']} "
          f"paired {result['ttft_pair_tokens']}-token answers; the long rounds paired "
          f"{result['ttft_rounds_paired_ms']:+.1f} ms, their medians' difference "
          f"{result['ttft_medians_difference_ms']:+.1f} ms)")  # fmt: skip
    print(f"server RSS: {result['server_rss_idle_bytes'] / mib:.0f} MiB idle, "
          f"{result['server_rss_loaded_bytes'] / mib:.0f} MiB with both models loaded")  # fmt: skip
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
