"""The load-test tool (`python -m bench.loadtest`) against the live gateway and the fake."""

from __future__ import annotations

import io
import json

import pytest

from bench.loadtest import LoadTestConfig, Sample, build_report, main, percentile
from keys.models import UsageRecord
from keys.policy import usage_flush
from keys.services import api_key_create
from tests.fake_ollama import FakeOllama

REPORT_KEYS = {
    "url", "method", "stream", "concurrency", "rate", "total", "success", "failed",
    "success_rate", "elapsed", "requests_per_second", "latency", "latency_success",
    "latency_non_2xx", "ttft", "chunk_gap", "start_lag", "status_codes", "non_2xx", "errors",
}  # fmt: skip
STATS_KEYS = {"avg", "median", "min", "max", "p95", "p99"}


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def assert_ordered(stats: dict[str, float]) -> None:
    assert set(stats) == STATS_KEYS
    assert 0 < stats["min"] <= stats["median"] <= stats["p95"] <= stats["p99"] <= stats["max"]
    assert stats["min"] <= stats["avg"] <= stats["max"]


def test_the_json_report_counts_what_the_gateway_answered(
    gateway: str, fake_ollama: FakeOllama
) -> None:
    # A key allowed 5 chats a minute, 12 chats from 3 workers: some 200s, the rest 429s.
    api_key, raw_key = api_key_create(name="loadtest", rate_limit=5)

    code, out = run(
        "--url", gateway, "--key", raw_key, "--endpoint", "chat", "-n", "12", "-c", "3",
        "--json", "-q",
    )  # fmt: skip
    report = json.loads(out)
    usage_flush()

    # The gateway's own usage records are the truth the report must match.
    recorded: dict[str, int] = {}
    for record in UsageRecord.objects.filter(api_key=api_key):
        recorded[str(record.status)] = recorded.get(str(record.status), 0) + 1
    assert set(report) == REPORT_KEYS
    assert report["total"] == 12
    assert report["status_codes"] == recorded
    assert report["success"] == recorded["200"] >= 5
    assert report["failed"] == 12 - report["success"] == recorded["429"]
    assert report["non_2xx"] == {"429": recorded["429"]}
    assert report["errors"] == {}
    assert report["success_rate"] == pytest.approx(100 * report["success"] / 12)
    assert report["requests_per_second"] == pytest.approx(12 / report["elapsed"])
    assert report["url"] == f"{gateway}/v1/chat/completions"
    assert (report["method"], report["concurrency"], report["stream"]) == ("POST", 3, False)
    assert_ordered(report["latency"])
    assert_ordered(report["latency_non_2xx"])
    assert report["ttft"] is None and report["chunk_gap"] is None
    assert code == 1  # not every request succeeded


def test_streams_report_time_to_first_chunk_and_gaps(
    gateway: str, fake_ollama: FakeOllama, api_key: str
) -> None:
    fake_ollama.reply = ["one", " two", " three", " four"]

    code, out = run(
        "--url", gateway, "--key", api_key, "--endpoint", "chat-stream", "-n", "6", "-c", "2",
        "--json", "-q",
    )  # fmt: skip
    report = json.loads(out)

    assert code == 0
    assert (report["total"], report["success"], report["failed"]) == (6, 6, 0)
    assert report["stream"] is True
    assert_ordered(report["ttft"])
    assert_ordered(report["chunk_gap"])
    assert report["ttft"]["max"] <= report["latency"]["max"]
    assert len(fake_ollama.requests_to("/api/chat")) == 6


def test_a_stream_cut_short_counts_as_failed(
    gateway: str, fake_ollama: FakeOllama, api_key: str
) -> None:
    fake_ollama.reply = ["a", "b", "c", "d"]
    fake_ollama.disconnect_after_tokens = 2

    _, out = run(
        "--url", gateway, "--key", api_key, "--endpoint", "chat-stream", "-n", "2", "-c", "1",
        "--json", "-q",
    )  # fmt: skip
    report = json.loads(out)

    assert (report["total"], report["success"], report["failed"]) == (2, 0, 2)
    assert report["status_codes"] == {"200": 2}
    assert report["errors"] == {"incomplete_stream": 2}


def test_the_text_report_is_the_chapters_with_the_non_2xx_breakdown(
    gateway: str, fake_ollama: FakeOllama
) -> None:
    code, out = run(
        "--url", gateway, "--key", "lai_not_a_real_key", "--endpoint", "models", "-n", "4",
        "-c", "2", "-q",
    )  # fmt: skip

    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "=== Test result ==="
    for expected in ("Total requests: 4", "Success: 0", "Failed: 4", "Success rate: 0.00%",
                     "Non-2xx responses: 401: 4"):  # fmt: skip
        assert expected in lines
    for label in ("Average response time:", "Median:", "Minimum:", "Maximum:",
                  "95th percentile:", "99th percentile:", "Requests/s:"):  # fmt: skip
        assert any(line.startswith(label) for line in lines)


def test_duration_mode_keeps_a_steady_pool_busy_until_the_time_is_up(
    gateway: str, fake_ollama: FakeOllama, api_key: str
) -> None:
    _, out = run(
        "--url", gateway, "--key", api_key, "--endpoint", "embeddings", "-d", "0.5", "-c", "2",
        "--json", "-q",
    )  # fmt: skip
    report = json.loads(out)

    assert report["total"] >= 2
    assert report["failed"] == 0
    assert report["elapsed"] >= 0.5
    # Every request reached the backend once: counted by inputs, as requests
    # waiting together may share one backend call (embedding coalescing).
    inputs = sum(len(r.json["input"]) for r in fake_ollama.requests_to("/api/embed"))
    assert inputs == report["total"]  # the tool embeds ["Hello"]


def test_percentiles_interpolate_between_closest_ranks() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 0) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0
    assert percentile([float(n) for n in range(1, 101)], 95) == pytest.approx(95.05)


def test_the_report_adds_up_samples_by_status() -> None:
    samples = [
        Sample(200, 0.010, True),
        Sample(200, 0.020, True),
        Sample(429, 0.001, False),
        Sample(503, 0.002, False),
        Sample(0, 0.5, False, error="ClientConnectorError"),
    ]
    report = build_report(samples, 2.0, LoadTestConfig(url="http://x", requests=5))

    assert (report["total"], report["success"], report["failed"]) == (5, 2, 3)
    assert report["success_rate"] == 40.0
    assert report["requests_per_second"] == 2.5
    assert report["non_2xx"] == {"429": 1, "503": 1}
    assert report["status_codes"] == {"200": 2, "429": 1, "503": 1}
    assert report["errors"] == {"ClientConnectorError": 1}
    assert report["latency"]["max"] == 0.5
    assert report["latency_success"]["median"] == pytest.approx(0.015)
