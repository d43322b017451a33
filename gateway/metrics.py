"""The gateway's Prometheus metrics (`prometheus-client`), correct across worker processes.

With `PROMETHEUS_MULTIPROC_DIR` set (settings put it in the environment
before this module is imported) every worker writes its samples to files in
that directory and a scrape of any worker sums them all, which is
prometheus-client's multiprocess mode. Without it (one process, tests) the
default registry is used.

Labels are bounded: surfaces and route patterns (never raw paths), HTTP
statuses, error codes, backend names, and model names only once a backend
has answered with them (a model the backend serves). Never a key.

The functions below are what the rest of the gateway calls; nothing else
touches the metric objects.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from gateway.backends import normalize_model_name

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Seconds. Whole answers of a local model take seconds to minutes.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)

REQUESTS = Counter(
    "localai_requests",
    "Requests answered, by surface, route pattern and HTTP status.",
    ["surface", "endpoint", "status"],
)
REQUEST_DURATION = Histogram(
    "localai_request_duration_seconds",
    "Time from request to the last byte of the answer (streams: the end of the stream).",
    ["surface", "endpoint"],
    buckets=DURATION_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "localai_time_to_first_token_seconds",
    "Time from request to the first token of a streamed answer.",
    ["surface", "model"],
    buckets=TTFT_BUCKETS,
)
TOKENS = Counter(
    "localai_tokens",
    "Tokens the backends processed, by model and kind (prompt or completion).",
    ["model", "kind"],
)
RATE_LIMITED = Counter(
    "localai_rate_limited",
    "Requests refused by a rate limit (requests per minute, or tokens per minute).",
    ["limit"],
)
BACKEND_ERRORS = Counter(
    "localai_backend_errors",
    "Failed backend calls, by backend and error code.",
    ["backend", "code"],
)
IN_FLIGHT = Gauge(
    "localai_in_flight",
    "Backend calls in progress (streams until they end), by backend.",
    ["backend"],
    multiprocess_mode="livesum",
)
WEBSOCKET_CONNECTIONS = Gauge(
    "localai_websocket_connections",
    "Open WebSocket chat connections.",
    multiprocess_mode="livesum",
)

# --- what the gateway reports ---------------------------------------------------


def request_observe(*, surface: str, endpoint: str, status: int, seconds: float) -> None:
    """One answered request (HTTP or a WebSocket generation)."""
    REQUESTS.labels(surface, endpoint, str(status)).inc()
    REQUEST_DURATION.labels(surface, endpoint).observe(seconds)


def first_token_observe(*, surface: str, model: str, seconds: float) -> None:
    """A stream's first token arrived `seconds` after its request (the backend serves `model`)."""
    TIME_TO_FIRST_TOKEN.labels(surface, normalize_model_name(model)).observe(seconds)


def tokens_add(*, model: str, prompt: int, completion: int) -> None:
    """Tokens a backend reported for `model` (only called with counts a backend answered)."""
    name = normalize_model_name(model)
    if prompt > 0:
        TOKENS.labels(name, "prompt").inc(prompt)
    if completion > 0:
        TOKENS.labels(name, "completion").inc(completion)


def rate_limited(*, limit: str) -> None:
    """A request refused by the `"requests"` or the `"tokens"` limit."""
    RATE_LIMITED.labels(limit).inc()


def backend_error(*, backend: str, code: str) -> None:
    BACKEND_ERRORS.labels(backend, code).inc()


@contextlib.contextmanager
def in_flight(backend: str) -> Iterator[None]:
    """Counts a backend call as in flight while the block runs.

    The hook for backends and the pool: whatever calls a backend named
    `backend` wraps the call (or the whole stream) in it.
    """
    gauge = IN_FLIGHT.labels(backend)
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def websocket_opened() -> None:
    WEBSOCKET_CONNECTIONS.inc()


def websocket_closed() -> None:
    WEBSOCKET_CONNECTIONS.dec()


# --- gauges computed at scrape time ------------------------------------------------

# Callables the scraping process asks, each returning {backend name: value}.
_backend_up_sources: list[Callable[[], dict[str, float]]] = []
_queue_depth_sources: list[Callable[[], dict[str, float]]] = []


def backend_up_source(source: Callable[[], dict[str, float]]) -> None:
    """Register how to learn, at scrape time, which backends answer (1) or not (0)."""
    _backend_up_sources.append(source)


def queue_depth_source(source: Callable[[], dict[str, float]]) -> None:
    """Register how to learn, at scrape time, the requests queued per backend."""
    _queue_depth_sources.append(source)


def _merged(sources: Iterable[Callable[[], dict[str, float]]]) -> dict[str, float]:
    values: dict[str, float] = {}
    for source in sources:
        values.update(source())
    return values


class _ScrapeTimeCollector(Collector):
    """`localai_backend_up` and `localai_queue_depth`, asked for when scraped."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "localai_backend_up", "1 when the backend answers, else 0.", labels=["backend"]
        )
        for backend, value in _merged(_backend_up_sources).items():
            up.add_metric([backend], value)
        queue = GaugeMetricFamily(
            "localai_queue_depth",
            "Requests waiting for a backend slot in the scheduler.",
            labels=["backend"],
        )
        for backend, value in _merged(_queue_depth_sources).items():
            queue.add_metric([backend], value)
        return [up, queue]


def _multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def registry() -> CollectorRegistry:
    """The registry a scrape reads: every process's files (multiprocess), else this process."""
    if _multiprocess_dir():
        scraped = CollectorRegistry()
        multiprocess.MultiProcessCollector(scraped)
    else:
        scraped = CollectorRegistry()
        scraped.register(_ProcessRegistry())
    scraped.register(_ScrapeTimeCollector())
    return scraped


class _ProcessRegistry(Collector):
    """This process's default registry, as one collector of a scrape registry."""

    def collect(self) -> Iterable[Any]:
        return REGISTRY.collect()


def metrics_render() -> bytes:
    """The text exposition of every metric (what `/metrics` serves)."""
    return generate_latest(registry())


def sample_values(name: str, label: str) -> dict[str, float]:
    """Current values of one sample name by one label (the admin dashboard's live counters).

    `name` as scraped: `localai_in_flight`, `localai_backend_errors_total`.
    """
    values: dict[str, float] = {}
    for family in registry().collect():
        if not name.startswith(family.name):
            continue
        for sample in family.samples:
            if sample.name == name and label in sample.labels:
                key = sample.labels[label]
                values[key] = values.get(key, 0.0) + sample.value
    return values


def process_exit(pid: int) -> None:
    """A worker is exiting: its live gauges no longer count (multiprocess mode)."""
    if _multiprocess_dir():
        multiprocess.mark_process_dead(pid)
