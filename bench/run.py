# ruff: noqa: RUF001  (typographic multiplication sign and dashes are wanted in the Markdown)
"""The benchmark suite: `make bench` (`python -m bench.run`) writes BENCHMARKS.md.

What the gateway adds on top of Ollama, measured in ONE run against the
project's fake Ollama (tests/fake_ollama.py, a separate process), side by side
with the direct path (the same load sent straight to the fake's /api/...):
gateway and direct runs alternate (ABAB), each figure is the median of the
repeats with its min-max.

Processes: the gateway (daphne, uvicorn or granian, one worker) on core 0;
the fake Ollama, wrk and this driver (which also runs the `bench.loadtest`
tool in-process) on core 1. The gateway uses a temporary SQLite database, a
real key made by `manage.py create_api_key` with a limit too high to throttle,
and its feature switches (GATEWAY_AUTH_ENABLED, GATEWAY_RATE_LIMITS_ENABLED,
GATEWAY_USAGE_ENABLED, REDIS_URL) for the cost of each feature.

Two sections run the gateway as `make run` serves it, unpinned: `unpinned`
(beside the pinned gateway and the ceiling of the mandated stack, a bare adrf
proxy in bench/ceiling) and `speedups` (each speed-up on a library's private
API against the gateway with it undone, bench/undone.py).

    python -m bench.run                 # ~11 minutes, writes BENCHMARKS.md
    python -m bench.run --long          # more repeats, longer runs
    python -m bench.run --only latency,throughput --out /tmp/b.md
    python -m bench.run --smoke --only unpinned --out /tmp/b.md --json /tmp/b.json
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp

from bench.loadtest import LoadTestConfig, percentile, preset, run_load_test
from tests.fake_ollama import free_port
from tests.processes import listening_socket

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WRK_SCRIPT = ROOT / "bench" / "wrk.lua"
GATEWAY_CORE, LOAD_CORE = "0", "1"
CHAT_MODEL, EMBED_MODEL = "qwen2.5:14b", "mxbai-embed-large"
SECTIONS = (
    "latency",
    "throughput",
    "unpinned",
    "speedups",
    "features",
    "servers",
    "streaming",
    "rejections",
    "overload",
    "held",
    "disconnect",
    "profile",
    "engine",
    "flood",
    "coalesce",
    "routing",
)


@dataclass(frozen=True)
class Profile:
    name: str
    repeats: int
    wrk_seconds: float
    latency_requests: int
    streams: int
    websockets: int
    overload_seconds: float
    disconnects: int


QUICK = Profile("make bench", 3, 5.0, 300, 5000, 5000, 8.0, 20)
LONG = Profile("make bench-long", 7, 15.0, 1500, 10000, 10000, 30.0, 50)
# Checks that the suite's code runs (one short repeat); its figures mean nothing.
SMOKE = Profile("smoke", 1, 2.0, 50, 200, 200, 3.0, 3)

# The paced fake: a token every 10 ms (100 tokens/s, faster than a 14B model on
# this machine), 40 tokens and the final line: a stream lasts ~0.41 s.
PACED_TOKEN_SECONDS, PACED_TOKENS = 0.01, 40
PACED_STREAM_SECONDS = PACED_TOKEN_SECONDS * (PACED_TOKENS + 1)

TARGETS = {
    "chat_rps": 800.0,
    "chat_rps_stretch": 1000.0,
    "added_p50_ms": 1.5,
    "added_p99_ms": 5.0,
    "added_ttft_c1_ms": 2.0,
    "added_ttft_c16_p99_ms": 15.0,
    "added_gap_p99_ms": 1.0,
    "streams": 5000,
    "stream_kb": 64.0,
    "websockets": 5000,
    "websocket_kb": 80.0,
    "idle_mb": 120.0,
    "rejection_ratio": 2.0,
    "disconnect_ms": 100.0,
    # The full gateway unpinned, as a share of the bare adrf proxy's rate.
    "unpinned_of_ceiling": 0.8,
    # The embedded engine through the gateway, against llama.cpp called directly.
    "engine_tokens_ratio": 0.95,
    "engine_ttft_added_ms": 5.0,
    # The fair scheduler's flood: B's p95 within 3 service times; the slot busy.
    "flood_b_p95_service_times": 3.0,
    "flood_slot_busy": 0.95,
    "routing_added_us": 100.0,
}


# --- small helpers -------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pinned(core: str) -> list[str]:
    """A `taskset` prefix when the machine has the cores for it."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", core]
    return []


def spread(values: list[float]) -> dict[str, float] | None:
    """Median with min and max (None when nothing was measured)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt(s: dict[str, float] | None, unit: str = "", digits: int = 2) -> str:
    if not s:
        return "n/a"
    if s["min"] == s["max"]:
        return f"{s['median']:,.{digits}f}{unit}"
    return f"{s['median']:,.{digits}f}{unit} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f})"


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(child) for child in handle.read().split()]
    return found


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- processes -------------------------------------------------------------------


class FakeProcess:
    """`python -m tests.fake_ollama` on core 1; its first stdout line is its URL."""

    def __init__(self, *args: str) -> None:
        command = [*pinned(LOAD_CORE), sys.executable, "-m", "tests.fake_ollama", "--port", "0"]
        self.process = subprocess.Popen(
            [*command, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().decode().strip()
        if not self.url.startswith("http"):
            raise RuntimeError("the fake Ollama did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@dataclass
class Gateway:
    """One gateway server process (one worker) on core 0."""

    name: str
    server: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    sock: socket.socket | None = None
    # `make run` pins nothing; the other figures pin the gateway to one core.
    pin: bool = True
    app: str = "localai_site.asgi:application"

    def start(self) -> Gateway:
        app = self.app
        if self.server == "granian":
            port = free_port()
            command = [
                str(BIN / "granian"),
                "--interface",
                "asgi",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--no-log",
                "--backlog",
                "4096",
                app,
            ]
            pass_fds: tuple[int, ...] = ()
        else:
            self.sock = listening_socket(backlog=4096)
            port = self.sock.getsockname()[1]
            fd = str(self.sock.fileno())
            pass_fds = (self.sock.fileno(),)
            if self.server == "daphne":
                command = [str(BIN / "daphne"), "--fd", fd, "-v", "0", app]
            else:
                command = [
                    str(BIN / "uvicorn"),
                    "--fd",
                    fd,
                    "--log-level",
                    "warning",
                    "--no-access-log",
                    "--loop",
                    "uvloop",
                    "--http",
                    "httptools",
                    "--ws",
                    "websockets-sansio",
                    app,
                ]
        self.process = subprocess.Popen(
            [*(pinned(GATEWAY_CORE) if self.pin else []), *command],
            cwd=ROOT,
            env=self.env,
            pass_fds=pass_fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}"
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        # daphne and uvicorn accept on the pre-bound socket at once (the kernel
        # queues); the first answer still waits for Django to load. granian
        # binds its own port, so connections are refused until it listens.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", int(self.url.rsplit(":", 1)[1])), 2):
                    pass
                probe = f"import urllib.request as u; u.urlopen('{self.url}/healthz', timeout=30)"
                subprocess.run(
                    [sys.executable, "-c", probe],
                    check=True,
                    capture_output=True,
                    timeout=40,
                )
                return
            except (OSError, subprocess.SubprocessError):
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"{self.name}: the server exited") from None
                time.sleep(0.2)
        raise RuntimeError(f"{self.name}: not ready after 60 s")

    @property
    def worker_pid(self) -> int:
        """The process that serves (granian's worker is a child process)."""
        assert self.process is not None
        pid = self.process.pid
        # taskset execs the server, so the Popen pid is the server itself.
        if self.server == "granian":
            kids = children(pid)
            return kids[0] if kids else pid
        return pid

    def rss_kb(self) -> int:
        return rss_kb(self.worker_pid)

    def cpu_seconds(self) -> float:
        assert self.process is not None
        pids = [self.process.pid, *children(self.process.pid)]
        return sum(cpu_seconds(pid) for pid in pids)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.sock is not None:
            self.sock.close()


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed: {result.stderr[-2000:]}")
    return result.stdout


def create_key(env: dict[str, str], name: str, rate_limit: int) -> str:
    out = manage(env, "create_api_key", name, "--rate-limit", str(rate_limit))
    return out.strip().splitlines()[-1].strip()


def redis_url(db: int) -> str | None:
    """A Redis URL on this machine's Redis (database `db`, emptied), or None without Redis."""
    try:
        import redis

        client = redis.Redis.from_url(f"redis://127.0.0.1:6379/{db}", socket_timeout=2)
        client.flushdb()
        return f"redis://127.0.0.1:6379/{db}"
    except Exception:
        return None


# --- load generators ---------------------------------------------------------------


def wrk(
    url: str,
    *,
    method: str = "GET",
    body: Any = None,
    key: str | None = None,
    connections: int = 50,
    seconds: float = 5.0,
) -> dict[str, Any]:
    """One wrk run (separate process, core 1); the script's JSON summary plus req/s."""
    env = {
        **os.environ,
        "WRK_METHOD": method,
        "WRK_BODY": json.dumps(body) if body is not None else "",
        "WRK_AUTH": f"Bearer {key}" if key else "",
    }
    command = [
        *pinned(LOAD_CORE),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("WRKJSON "))
    data = json.loads(line[len("WRKJSON ") :])
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    data["errors_total"] = sum(data["errors"].values()) - data["errors"]["status"]
    return data


def throughput(
    url: str, *, gateway: Gateway | None = None, seconds: float, **kwargs: Any
) -> dict[str, Any]:
    """wrk when installed, else the loadtest tool; with the gateway's CPU per request."""
    cpu_before = gateway.cpu_seconds() if gateway else 0.0
    if shutil.which("wrk"):
        result = wrk(url, seconds=seconds, **kwargs)
        result["generator"] = "wrk"
    else:
        base, path = url.split("/", 3)[:3], "/" + url.split("/", 3)[3]
        body = kwargs.get("body")
        config = LoadTestConfig(
            url="/".join(base),
            method=kwargs.get("method", "GET"),
            path=path,
            body=json.dumps(body).encode() if body is not None else None,
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {kwargs['key']}"} if kwargs.get("key") else {}),
            },
            duration=seconds,
            concurrency=kwargs.get("connections", 50),
            progress=False,
        )
        report = asyncio.run(run_load_test(config))
        result = {
            "rps": report["requests_per_second"],
            "requests": report["total"],
            "codes": report["status_codes"],
            "errors_total": sum(report["errors"].values()),
            "latency_us": {
                "p50": report["latency"]["median"] * 1e6,
                "p99": report["latency"]["p99"] * 1e6,
            },
            "generator": "bench.loadtest",
        }
    if gateway:
        used = gateway.cpu_seconds() - cpu_before
        result["cpu_ms_per_request"] = 1000 * used / max(1, result["requests"])
    return result


def loadtest(
    base: str,
    api: str,
    endpoint: str,
    *,
    key: str | None = None,
    requests: int | None = None,
    duration: float | None = None,
    concurrency: int = 1,
    rate: float | None = None,
) -> dict[str, Any]:
    chosen = preset(api, endpoint)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    config = LoadTestConfig(
        url=base,
        method=chosen.method,
        path=chosen.path,
        body=json.dumps(chosen.body).encode() if chosen.body is not None else None,
        headers=headers,
        stream=chosen.stream,
        requests=requests,
        duration=duration,
        concurrency=concurrency,
        rate=rate,
        progress=False,
        timeout=30,
    )
    return asyncio.run(run_load_test(config))


# --- the suite ----------------------------------------------------------------------


@dataclass
class Bench:
    profile: Profile
    server: str
    only: set[str]
    tmp: Path
    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    fakes: list[FakeProcess] = field(default_factory=list)
    gateways: list[Gateway] = field(default_factory=list)

    # -- setup ------------------------------------------------------------------

    def setup(self) -> None:
        self.fake = self._fake()
        self.paced_fake = self._fake(
            "--token-delay", str(PACED_TOKEN_SECONDS), "--tokens", str(PACED_TOKENS)
        )
        self.slow_fake = self._fake("--token-delay", "2.0", "--tokens", "200")
        # 4 at a time, 50 ms each, 16 queued: the backend, not the gateway, is full.
        self.busy_fake = self._fake(
            "--max-concurrent", "4", "--max-queue", "16", "--first-token-delay", "0.05"
        )
        self.db_env = self.env(OLLAMA_HOST=self.fake.url)
        log("migrating a fresh SQLite database")
        manage(self.db_env, "migrate", "--noinput", "-v0")
        self.key = create_key(self.db_env, "bench", 1_000_000_000)
        self.limited_key = create_key(self.db_env, "bench-limited", 1)
        revoked = create_key(self.db_env, "bench-revoked", 1_000_000_000)
        manage(self.db_env, "revoke_api_key", revoked.split("_")[1])
        self.revoked_key = revoked

    def _fake(self, *args: str) -> FakeProcess:
        fake = FakeProcess(*args)
        self.fakes.append(fake)
        return fake

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "localai_site.settings",
            "DATABASE_URL": f"sqlite:///{self.tmp / 'bench.sqlite3'}",
            "REDIS_URL": "",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            # Clean 401s for the rejection figure: no per-address limit in the way.
            "RATE_LIMIT_UNAUTHENTICATED": "1000000000",
            "GATEWAY_AUTH_ENABLED": "true",
            "GATEWAY_RATE_LIMITS_ENABLED": "true",
            "GATEWAY_USAGE_ENABLED": "true",
            # The fake Ollama alone (bench/engine.py measures the embedded engine).
            "EMBEDDED_BACKEND": "off",
            # The fake serves any number of requests at once: the scheduler still
            # takes and gives back a slot per request, but never makes one wait
            # (bench/flood.py measures the waiting, with one slot).
            "OLLAMA_NUM_PARALLEL": "10000",
        }
        env.update(overrides)
        return env

    def gateway(
        self,
        name: str,
        server: str | None = None,
        *,
        pin: bool = True,
        app: str | None = None,
        **env: str,
    ) -> Gateway:
        gateway = Gateway(name, server or self.server, self.env(**env), pin=pin)
        if app:
            gateway.app = app
        self.gateways.append(gateway)
        log(f"starting {gateway.server} gateway '{name}'")
        return gateway.start()

    def teardown(self) -> None:
        for gateway in self.gateways:
            gateway.stop()
        for fake in self.fakes:
            fake.stop()

    def run(self) -> None:
        self.setup()
        self.main = self.gateway("main", OLLAMA_HOST=self.fake.url)
        self.warm(self.main)
        self.results["idle_rss_kb"] = {self.server: self.main.rss_kb()}
        for section in SECTIONS:
            if self.only and section not in self.only:
                continue
            log(f"--- {section}")
            started = time.monotonic()
            try:
                getattr(self, f"bench_{section}")()
            except Exception:
                self.errors[section] = traceback.format_exc(limit=8)
                log(f"{section} FAILED:\n{self.errors[section]}")
            log(f"{section}: {time.monotonic() - started:.0f} s")

    def warm(self, gateway: Gateway) -> None:
        for endpoint in ("models", "chat", "chat-stream", "embeddings"):
            loadtest(gateway.url, "gateway", endpoint, key=self.key, requests=20, concurrency=2)

    # -- figures ------------------------------------------------------------------

    def bench_latency(self) -> None:
        """Added latency at concurrency 1: gateway minus direct, per repeat."""
        n = self.profile.latency_requests
        per: dict[str, dict[str, list[float]]] = collections.defaultdict(
            lambda: collections.defaultdict(list)
        )
        for _ in range(self.profile.repeats):
            for endpoint in ("models", "chat", "chat-stream", "embeddings"):
                gw = loadtest(self.main.url, "gateway", endpoint, key=self.key, requests=n)
                direct = loadtest(self.fake.url, "ollama", endpoint, requests=n)
                metric = "ttft" if endpoint == "chat-stream" else "latency"
                for name, report in (("gateway", gw), ("direct", direct)):
                    per[endpoint][f"{name}_p50"].append(report[metric]["median"] * 1000)
                    per[endpoint][f"{name}_p99"].append(report[metric]["p99"] * 1000)
                    per[endpoint][f"{name}_failed"].append(report["failed"])
                per[endpoint]["added_p50"].append(
                    (gw[metric]["median"] - direct[metric]["median"]) * 1000
                )
                per[endpoint]["added_p99"].append(
                    (gw[metric]["p99"] - direct[metric]["p99"]) * 1000
                )
        self.results["latency"] = {
            endpoint: {name: spread(values) for name, values in figures.items()}
            for endpoint, figures in per.items()
        }

    def _chat_rate(self, gateway: Gateway, key: str | None = None) -> dict[str, Any]:
        body = preset("gateway", "chat").body
        return throughput(
            f"{gateway.url}/v1/chat/completions",
            gateway=gateway,
            method="POST",
            body=body,
            key=key or self.key,
            seconds=self.profile.wrk_seconds,
        )

    def _direct_rate(self) -> dict[str, Any]:
        return throughput(
            f"{self.fake.url}/api/chat",
            method="POST",
            body=preset("ollama", "chat").body,
            seconds=self.profile.wrk_seconds,
        )

    def bench_throughput(self) -> None:
        """Non-streamed chat at 50 connections, all features on, vs direct."""
        runs: dict[str, list[dict[str, Any]]] = {"gateway": [], "direct": []}
        for _ in range(self.profile.repeats):
            runs["gateway"].append(self._chat_rate(self.main))
            runs["direct"].append(self._direct_rate())
        ratios = [g["rps"] / d["rps"] for g, d in zip(runs["gateway"], runs["direct"], strict=True)]
        self.results["throughput"] = {
            "gateway_rps": spread([r["rps"] for r in runs["gateway"]]),
            "direct_rps": spread([r["rps"] for r in runs["direct"]]),
            "ratio": spread(ratios),
            "gateway_cpu_ms": spread([r["cpu_ms_per_request"] for r in runs["gateway"]]),
            "gateway_p50_ms": spread([r["latency_us"]["p50"] / 1000 for r in runs["gateway"]]),
            "gateway_p99_ms": spread([r["latency_us"]["p99"] / 1000 for r in runs["gateway"]]),
            "direct_p50_ms": spread([r["latency_us"]["p50"] / 1000 for r in runs["direct"]]),
            "codes": [r["codes"] for r in runs["gateway"]],
            "errors": sum(r["errors_total"] for r in runs["gateway"]),
            "generator": runs["gateway"][0]["generator"],
        }

    def bench_unpinned(self) -> None:
        """As `make run` serves it: the gateway unpinned, beside the pinned one and
        the ceiling of the mandated stack (bench/ceiling: a bare adrf viewset
        proxying the same request with the same `ollama` client, unpinned too).

        Chat at 50 connections (rate) and at concurrency 1 (added latency),
        the four targets in turn (ABAB) in every repeat; the ratio is the
        unpinned gateway's rate over the ceiling's, per repeat.
        """
        targets = {
            "pinned": self.main,
            "unpinned": self.gateway("unpinned", pin=False, OLLAMA_HOST=self.fake.url),
            "ceiling": self.gateway(
                "ceiling (bare adrf proxy)",
                pin=False,
                app="bench.ceiling.asgi:application",
                OLLAMA_HOST=self.fake.url,
            ),
        }
        for name in ("unpinned", "ceiling"):
            loadtest(targets[name].url, "gateway", "chat", key=self.key, requests=50)
        rows: dict[str, dict[str, list[float]]] = collections.defaultdict(
            lambda: collections.defaultdict(list)
        )
        n = self.profile.latency_requests
        for _ in range(self.profile.repeats):
            for name, gateway in targets.items():
                result = self._chat_rate(gateway)
                rows[name]["rps"].append(result["rps"])
                rows[name]["cpu_ms"].append(result["cpu_ms_per_request"])
                rows[name]["errors"].append(result["errors_total"])
                c1 = loadtest(gateway.url, "gateway", "chat", key=self.key, requests=n)
                rows[name]["c1_p50_ms"].append(c1["latency"]["median"] * 1000)
                rows[name]["c1_mean_ms"].append(c1["latency"]["avg"] * 1000)
            rows["direct"]["rps"].append(self._direct_rate()["rps"])
            c1 = loadtest(self.fake.url, "ollama", "chat", requests=n)
            rows["direct"]["c1_p50_ms"].append(c1["latency"]["median"] * 1000)
            rows["direct"]["c1_mean_ms"].append(c1["latency"]["avg"] * 1000)
            for name in targets:
                rows[name]["added_c1_mean_ms"].append(
                    rows[name]["c1_mean_ms"][-1] - rows["direct"]["c1_mean_ms"][-1]
                )
            rows["ratios"]["unpinned_of_ceiling"].append(
                rows["unpinned"]["rps"][-1] / rows["ceiling"]["rps"][-1]
            )
            rows["ratios"]["unpinned_of_pinned"].append(
                rows["unpinned"]["rps"][-1] / rows["pinned"]["rps"][-1]
            )
        for name in ("unpinned", "ceiling"):
            targets[name].stop()
        self.results["unpinned"] = {
            name: {figure: spread(values) for figure, values in figures.items()}
            for name, figures in rows.items()
        }

    def bench_speedups(self) -> None:
        """Each speed-up that relies on a library's private API, A/B: the gateway
        as shipped against the same gateway with that one speed-up undone
        (bench/undone.py), all unpinned as `make run` serves them. Chat at 50
        connections, or streamed chat at 50 connections (a 64-token answer,
        zero delay) for the stream speed-ups; gain per repeat = shipped rate /
        undone rate - 1, alternating which runs first."""
        from bench.undone import SPEEDUPS

        fake = self._fake("--tokens", "64")
        env = {"OLLAMA_HOST": fake.url}
        shipped = self.gateway(
            "speed-ups: as shipped", pin=False, app="bench.undone:application", **env
        )
        undone = {
            name: self.gateway(
                f"speed-ups: {name} undone",
                pin=False,
                app="bench.undone:application",
                BENCH_UNDO=name,
                **env,
            )
            for name in SPEEDUPS
        }
        for gateway in (shipped, *undone.values()):
            self.warm(gateway)
        loads = {
            "chat": preset("gateway", "chat").body,
            "stream": preset("gateway", "chat-stream").body,
        }

        def rate(gateway: Gateway, load: str) -> dict[str, Any]:
            return throughput(
                f"{gateway.url}/v1/chat/completions",
                gateway=gateway,
                method="POST",
                body=loads[load],
                key=self.key,
                seconds=self.profile.wrk_seconds,
            )

        per: dict[str, dict[str, list[float]]] = collections.defaultdict(
            lambda: collections.defaultdict(list)
        )
        for repeat in range(self.profile.repeats):
            for name, (_where, _what, load) in SPEEDUPS.items():
                pair = [("shipped", shipped), ("undone", undone[name])]
                for side, gateway in pair if repeat % 2 == 0 else pair[::-1]:
                    result = rate(gateway, load)
                    per[name][f"{side}_rps"].append(result["rps"])
                    per[name][f"{side}_cpu_ms"].append(result["cpu_ms_per_request"])
                    per[name][f"{side}_errors"].append(result["errors_total"])
                per[name]["gain"].append(
                    per[name]["shipped_rps"][-1] / per[name]["undone_rps"][-1] - 1
                )
                per[name]["cpu_saved_ms"].append(
                    per[name]["undone_cpu_ms"][-1] - per[name]["shipped_cpu_ms"][-1]
                )
        for gateway in (shipped, *undone.values()):
            gateway.stop()
        # What the stream speed-ups were made for: memory per held stream
        # (a fifth of the held-streams section's count, one fresh gateway each).
        count = max(1, self.profile.streams // 5)
        held_kb = {
            undo: self._held(
                f"speed-ups: held streams, {undo or 'as shipped'}",
                hold_streams,
                count,
                pin=False,
                app="bench.undone:application",
                **({"BENCH_UNDO": undo} if undo else {}),
            )["kb_each"]
            for undo in ["", *(name for name, spec in SPEEDUPS.items() if spec[2] == "stream")]
        }
        for name in per:
            if name in held_kb:
                per[name]["held_kb_shipped"].append(held_kb[""])
                per[name]["held_kb_undone"].append(held_kb[name])
        self.results["speedups"] = {
            name: {
                "where": SPEEDUPS[name][0],
                "private_api": SPEEDUPS[name][1],
                "load": SPEEDUPS[name][2],
                **{figure: spread(values) for figure, values in figures.items()},
            }
            for name, figures in per.items()
        }

    def bench_features(self) -> None:
        """Each feature in turn, same load: where the cost per request goes."""
        off = {
            "GATEWAY_AUTH_ENABLED": "false",
            "GATEWAY_RATE_LIMITS_ENABLED": "false",
            "GATEWAY_USAGE_ENABLED": "false",
        }
        steps: list[tuple[str, dict[str, str]]] = [
            ("bare proxy", off),
            ("+ auth", {**off, "GATEWAY_AUTH_ENABLED": "true"}),
            (
                "+ rate limit",
                {**off, "GATEWAY_AUTH_ENABLED": "true", "GATEWAY_RATE_LIMITS_ENABLED": "true"},
            ),
            ("+ usage records", {}),
        ]
        url = redis_url(13)
        if url:
            steps.append(("+ Redis store", {"REDIS_URL": url}))
        else:
            self.results["features_note"] = "Redis not reachable on 127.0.0.1:6379: no Redis step."
        gateways = [
            self.gateway(f"features: {name}", OLLAMA_HOST=self.fake.url, **env)
            for name, env in steps
        ]
        for gateway in gateways:
            self.warm(gateway)
        runs: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        direct: list[float] = []
        for _ in range(self.profile.repeats):
            for (name, _env), gateway in zip(steps, gateways, strict=True):
                runs[name].append(self._chat_rate(gateway))
            direct.append(self._direct_rate()["rps"])
        for gateway in gateways:
            gateway.stop()
        self.results["features"] = {
            name: {
                "rps": spread([r["rps"] for r in rows]),
                "cpu_ms": spread([r["cpu_ms_per_request"] for r in rows]),
                "codes": rows[-1]["codes"],
            }
            for name, rows in runs.items()
        }
        self.results["features_direct_rps"] = spread(direct)

    def bench_servers(self) -> None:
        """daphne, uvicorn and granian: chat rate at 50, latency at 1, idle memory."""
        servers = ["daphne", "uvicorn"]
        if (BIN / "granian").exists():
            servers.append("granian")
        gateways = {}
        for server in servers:
            if server == self.server:
                gateways[server] = self.main
                continue
            gateways[server] = self.gateway(f"server: {server}", server, OLLAMA_HOST=self.fake.url)
            self.warm(gateways[server])
            self.results["idle_rss_kb"][server] = gateways[server].rss_kb()
        rows: dict[str, dict[str, list[float]]] = collections.defaultdict(
            lambda: collections.defaultdict(list)
        )
        for _ in range(self.profile.repeats):
            for server, gateway in gateways.items():
                result = self._chat_rate(gateway)
                rows[server]["rps"].append(result["rps"])
                rows[server]["cpu_ms"].append(result["cpu_ms_per_request"])
                c1 = loadtest(
                    gateway.url,
                    "gateway",
                    "chat",
                    key=self.key,
                    requests=self.profile.latency_requests,
                )
                rows[server]["c1_p50_ms"].append(c1["latency"]["median"] * 1000)
                rows[server]["c1_p99_ms"].append(c1["latency"]["p99"] * 1000)
        for gateway in gateways.values():
            if gateway is not self.main:
                gateway.stop()
        self.results["servers"] = {
            server: {name: spread(values) for name, values in figures.items()}
            for server, figures in rows.items()
        }

    def bench_streaming(self) -> None:
        """Time to first token at 16 streams, and the gap between relayed chunks.

        Two backends: the paced fake (a token every 10 ms, 40 tokens: 100
        tokens/s, faster than a 14B model on this machine, so the gateway
        relays more chunks per second than it would for real users) gives the
        user-facing figures; the zero-delay fake answers as fast as it can, so
        16 streams keep the worker at 100 % CPU: the saturated pure-overhead case.
        """
        gateway = self.gateway("paced", OLLAMA_HOST=self.paced_fake.url)
        self.warm(gateway)
        per: dict[str, list[float]] = collections.defaultdict(list)
        zero_gw = self.main
        for _ in range(self.profile.repeats):
            # Zero-delay backend: what the gateway adds to the first token when saturated.
            gw = loadtest(
                zero_gw.url,
                "gateway",
                "chat-stream",
                key=self.key,
                requests=50 * 16,
                concurrency=16,
            )
            direct = loadtest(
                self.fake.url, "ollama", "chat-stream", requests=50 * 16, concurrency=16
            )
            per["ttft_c16_gateway_p99"].append(gw["ttft"]["p99"] * 1000)
            per["ttft_c16_direct_p99"].append(direct["ttft"]["p99"] * 1000)
            per["ttft_c16_added_p99"].append((gw["ttft"]["p99"] - direct["ttft"]["p99"]) * 1000)
            # Paced backend (10 ms between tokens), the first token as users see it:
            # 16 streams open on average, users arriving spread out (an open loop at
            # 16 streams per stream length). A closed loop of 16 workers would start
            # all 16 together every 0.4 s (equal stream lengths), a burst real users
            # do not make, and its p99 would be the last of each burst.
            rate = 16 / PACED_STREAM_SECONDS
            gw = loadtest(
                gateway.url, "gateway", "chat-stream", key=self.key, requests=240,
                concurrency=64, rate=rate,
            )  # fmt: skip
            direct = loadtest(
                self.paced_fake.url, "ollama", "chat-stream", requests=240, concurrency=64,
                rate=rate,
            )  # fmt: skip
            per["ttft_c16_paced_gateway_p99"].append(gw["ttft"]["p99"] * 1000)
            per["ttft_c16_paced_direct_p99"].append(direct["ttft"]["p99"] * 1000)
            per["ttft_c16_paced_added_p99"].append(
                (gw["ttft"]["p99"] - direct["ttft"]["p99"]) * 1000
            )
            per["ttft_c16_paced_failed"].append(gw["failed"])
            # The same backend, 16 streams at once: is anything buffered on the way?
            gw = loadtest(
                gateway.url, "gateway", "chat-stream", key=self.key, requests=64, concurrency=16
            )
            direct = loadtest(
                self.paced_fake.url, "ollama", "chat-stream", requests=64, concurrency=16
            )
            per["gap_gateway_p50"].append(gw["chunk_gap"]["median"] * 1000)
            per["gap_gateway_p99"].append(gw["chunk_gap"]["p99"] * 1000)
            per["gap_direct_p50"].append(direct["chunk_gap"]["median"] * 1000)
            per["gap_direct_p99"].append(direct["chunk_gap"]["p99"] * 1000)
            per["gap_added_p99"].append(
                (gw["chunk_gap"]["p99"] - direct["chunk_gap"]["p99"]) * 1000
            )
            per["failed"].append(gw["failed"])
        gateway.stop()
        self.results["streaming"] = {name: spread(values) for name, values in per.items()}

    def bench_rejections(self) -> None:
        """401 (revoked key: one database lookup) and 429 rates vs the proxied rate."""
        rows: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        # Spend the limited key's one request.
        loadtest(self.main.url, "gateway", "chat", key=self.limited_key, requests=1)
        for _ in range(self.profile.repeats):
            rows["proxied"].append(self._chat_rate(self.main))
            rows["401"].append(self._chat_rate(self.main, key=self.revoked_key))
            rows["429"].append(self._chat_rate(self.main, key=self.limited_key))
        proxied = [r["rps"] for r in rows["proxied"]]
        self.results["rejections"] = {
            name: {
                "rps": spread([r["rps"] for r in runs]),
                "ratio": spread([r["rps"] / p for r, p in zip(runs, proxied, strict=True)]),
                "codes": runs[-1]["codes"],
            }
            for name, runs in rows.items()
        }

    def bench_overload(self) -> None:
        """Twice the sustainable rate, open loop: answers keep coming, 429/503 quickly."""
        sustained = (self.results.get("throughput") or {}).get("gateway_rps") or {}
        rate = 2 * (sustained.get("median") or 300.0)
        seconds = self.profile.overload_seconds
        # The key admits a quarter of what is offered; the rest must be refused fast.
        admitted = max(1, int(rate * seconds / 4))
        key = create_key(self.db_env, "bench-overload", admitted)
        cases = {}
        report = loadtest(
            self.main.url, "gateway", "chat", key=key, duration=seconds, concurrency=4000, rate=rate
        )
        cases["rate limit (429)"] = report
        # The same, with load shedding on the event loop's lateness.
        admitted_key = create_key(self.db_env, "bench-overload-shed", admitted)
        shedding = self.gateway("shedding", OLLAMA_HOST=self.fake.url, GATEWAY_SHED_LAG_MS="250")
        self.warm(shedding)
        report = loadtest(
            shedding.url,
            "gateway",
            "chat",
            key=admitted_key,
            duration=seconds,
            concurrency=4000,
            rate=rate,
        )
        cases["rate limit (429), GATEWAY_SHED_LAG_MS=250"] = report
        shedding.stop()
        busy = self.gateway("busy backend", OLLAMA_HOST=self.busy_fake.url)
        self.warm(busy)
        report = loadtest(
            busy.url, "gateway", "chat", key=self.key, duration=seconds, concurrency=4000, rate=rate
        )
        cases["backend queue full (503)"] = report
        direct = loadtest(
            self.busy_fake.url, "ollama", "chat", duration=seconds, concurrency=4000, rate=rate
        )
        cases["direct, backend queue full"] = direct
        busy.stop()
        healthz = loadtest(self.main.url, "gateway", "models", key=self.key, requests=50)
        self.results["overload"] = {
            "offered_rps": rate,
            "seconds": seconds,
            "cases": {
                name: {
                    "total": r["total"],
                    "codes": r["status_codes"],
                    "errors": r["errors"],
                    "answered_rps": r["requests_per_second"],
                    "p50_ms": r["latency"]["median"] * 1000 if r["latency"] else None,
                    "p99_ms": r["latency"]["p99"] * 1000 if r["latency"] else None,
                    "start_lag_p99_ms": (r["start_lag"] or {}).get("p99", 0) * 1000,
                    "rejected_p99_ms": self._rejected_p99(r),
                }
                for name, r in cases.items()
            },
            "after_models_p99_ms": healthz["latency"]["p99"] * 1000,
            "after_failed": healthz["failed"],
        }

    @staticmethod
    def _rejected_p99(report: dict[str, Any]) -> float | None:
        rejected = report.get("latency_non_2xx")
        return rejected["p99"] * 1000 if rejected else None

    def bench_held(self) -> None:
        """Open streams and idle WebSockets held at once, memory per connection."""
        streams = self._held("held", hold_streams, self.profile.streams)
        # The streams' gateway is stopped (their connections closed) before this one.
        sockets = self._held("held-ws", hold_websockets, self.profile.websockets)
        sockets.pop("_rss", None)
        self.results["held"] = {"streams": streams, "websockets": sockets}

    def _held(self, name: str, hold: Any, count: int, **options: Any) -> dict[str, Any]:
        """`hold(url, key, count)` against a fresh gateway: what it held, RSS before and at peak."""
        gateway = self.gateway(name, OLLAMA_HOST=self.slow_fake.url, WS_IDLE_TIMEOUT="0", **options)
        self.warm_models(gateway)
        base = gateway.rss_kb()
        held = asyncio.run(hold(gateway.url, self.key, count))
        time.sleep(1.0)
        peak = gateway.rss_kb()
        gateway.stop()
        held["rss_before_kb"], held["rss_held_kb"] = base, peak
        held["kb_each"] = (peak - base) / max(1, held["open"])
        return held

    def warm_models(self, gateway: Gateway) -> None:
        # Models only: behind the slow fake a whole chat answer takes minutes.
        loadtest(gateway.url, "gateway", "models", key=self.key, requests=20, concurrency=2)

    def bench_disconnect(self) -> None:
        """Client closes a stream: how long until the backend's request is closed."""
        from tests.fake_ollama import FakeOllama, numbered_reply

        fake = FakeOllama(record=True, token_delay=0.02, reply=numbered_reply(2000)).start()
        try:
            gateway = self.gateway("disconnect", OLLAMA_HOST=fake.url)
            # Warm up without chat: a whole answer here takes 40 s.
            loadtest(gateway.url, "gateway", "models", key=self.key, requests=20, concurrency=2)
            times: dict[str, list[float]] = {"gateway": [], "direct": []}
            for _ in range(self.profile.disconnects):
                for name in ("gateway", "direct"):
                    times[name].append(
                        asyncio.run(
                            disconnect_once(
                                fake,
                                gateway.url if name == "gateway" else fake.url,
                                "gateway" if name == "gateway" else "ollama",
                                self.key,
                            )
                        )
                    )
            gateway.stop()
        finally:
            fake.stop()
        self.results["disconnect"] = {
            name: {
                "median_ms": statistics.median(values),
                "p95_ms": percentile(values, 95),
                "max_ms": max(values),
                "n": len(values),
            }
            for name, values in times.items()
        }

    def bench_engine(self) -> None:
        """The embedded engine (bench/engine.py): tokens/s and time to first token
        through an unpinned gateway against llama.cpp called directly, ABAB; the
        server's memory with both models loaded."""
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            self.results["engine"] = {"note": "not measured: the engine is not installed"}
            return
        from bench import engine

        with unpinned():
            self.results["engine"] = engine.measure(
                rounds=max(5, 3 * self.profile.repeats), max_tokens=128
            )

    def bench_flood(self) -> None:
        """The fair scheduler's flood (bench/flood.py), unpinned: B's latency with the
        scheduler, without it, and over two processes on Redis; the slot's busy share."""
        from bench import flood

        redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
        try:
            import redis

            redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
        except Exception:
            redis_url = ""
        with unpinned():
            self.results["flood"] = flood.run(
                200 if self.profile is not SMOKE else 40, redis_url or None
            )

    def bench_coalesce(self) -> None:
        """Embedding coalescing (bench/coalesce.py), unpinned: 64 concurrent single-input
        requests against one slot costing more per call than per input, on and off."""
        from bench import coalesce

        with unpinned():
            self.results["coalesce"] = coalesce.run(
                1 if self.profile is SMOKE else self.profile.repeats, 40.0, 1.0
            )

    def bench_routing(self) -> None:
        """The routing cost per request (bench/routing.py): one backend against three."""
        from bench import routing

        self.results["routing"] = routing.measure()

    def bench_profile(self) -> None:
        """py-spy over the main gateway during the chat throughput load."""
        spy = BIN / "py-spy"
        if not spy.exists():
            self.results["profile"] = {"note": "py-spy not installed (requirements-dev.txt)"}
            return
        raw = self.tmp / "profile.txt"
        seconds = max(4.0, self.profile.wrk_seconds)
        with subprocess.Popen(
            [
                str(spy),
                "record",
                "-p",
                str(self.main.worker_pid),
                "-d",
                f"{seconds - 1:g}",
                "-r",
                "250",
                "--gil",
                "-f",
                "raw",
                "-o",
                str(raw),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ) as spy_process:
            throughput(
                f"{self.main.url}/v1/chat/completions",
                gateway=self.main,
                method="POST",
                body=preset("gateway", "chat").body,
                key=self.key,
                seconds=seconds,
            )
            spy_process.wait(timeout=60)
        self.results["profile"] = summarize_profile(raw)


# --- held connections, disconnects -----------------------------------------------------


async def hold_streams(base: str, key: str, count: int) -> dict[str, Any]:
    """Open `count` chat streams, each until its first chunk; keep them all open."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
    body = {**(preset("gateway", "chat-stream").body or {}), "max_tokens": 200}
    opened = 0
    failures: collections.Counter[str] = collections.Counter()
    responses: list[aiohttp.ClientResponse] = []
    gate = asyncio.Semaphore(200)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> None:
            nonlocal opened
            async with gate:
                try:
                    response = await session.post(
                        f"{base}/v1/chat/completions",
                        json=body,
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    if response.status != 200:
                        failures[str(response.status)] += 1
                        response.release()
                        return
                    line = await response.content.readline()
                    if not line.startswith(b"data:"):
                        failures["no first event"] += 1
                        response.close()
                        return
                    responses.append(response)
                    opened += 1
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    failures[type(exc).__name__] += 1

        await asyncio.gather(*(one() for _ in range(count)))
        open_seconds = time.perf_counter() - started
        # Still streaming? Read the next event of a sample of them (at once).
        sample = responses[:: max(1, len(responses) // 50)]

        async def next_event(response: aiohttp.ClientResponse) -> bool:
            with contextlib.suppress(Exception):
                return bool(await asyncio.wait_for(response.content.readline(), 10))
            return False

        alive = sum(await asyncio.gather(*(next_event(r) for r in sample)))
        result = {
            "requested": count,
            "open": opened,
            "failures": dict(failures),
            "seconds_to_open": open_seconds,
            "sample_still_streaming": alive,
            "sample_size": len(sample),
        }
        for response in responses:
            response.close()
    return result


async def hold_websockets(base: str, key: str, count: int) -> dict[str, Any]:
    """Open `count` idle chat WebSockets (key in the Authorization header)."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    failures: collections.Counter[str] = collections.Counter()
    gate = asyncio.Semaphore(100)
    ws_base = base.replace("http://", "ws://")
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            async with gate:
                try:
                    ws = await session.ws_connect(
                        f"{ws_base}/ws/chat/{uuid.uuid4()}",
                        headers={"Authorization": f"Bearer {key}"},
                        autoping=True,
                        heartbeat=None,
                        timeout=aiohttp.ClientWSTimeout(ws_close=5),
                    )
                    sockets.append(ws)
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    failures[type(exc).__name__] += 1

        await asyncio.gather(*(one() for _ in range(count)))
        open_seconds = time.perf_counter() - started
        await asyncio.sleep(2.0)
        still_open = sum(1 for ws in sockets if not ws.closed)
        result = {
            "requested": count,
            "open": still_open,
            "failures": dict(failures),
            "seconds_to_open": open_seconds,
        }
        # Drop them (the session closes their sockets): a closing handshake for
        # each of thousands would take the server minutes.
    return result


async def disconnect_once(fake: Any, base: str, api: str, key: str) -> float:
    """Read three chunks of a stream, drop the connection; ms until the fake saw it end.

    The fake runs in this process: its records' times are this process's
    monotonic clock.
    """
    chosen = preset(api, "chat-stream", max_tokens=2000)
    headers = {"Authorization": f"Bearer {key}"} if api == "gateway" else {}
    index = len(fake.streams)
    async with aiohttp.ClientSession() as session:
        response = await session.post(base + chosen.path, json=chosen.body, headers=headers)
        for _ in range(3):
            await response.content.readline()
        record = fake.streams[index]
        assert record.outcome is None, "the stream ended before the client closed it"
        closed_at = time.monotonic()
        response.close()
        await asyncio.to_thread(fake.wait_until, lambda f: record.outcome is not None, 10.0)
    assert record.ended_at is not None and record.outcome == "client_disconnected"
    return (record.ended_at - closed_at) * 1000


def summarize_profile(raw: Path, top: int = 18) -> dict[str, Any]:
    """Inclusive and self shares of a py-spy raw (collapsed stacks) file."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    if not total:
        return {"note": "py-spy recorded no samples"}
    interesting = [
        (frame, n)
        for frame, n in inclusive.most_common()
        if not frame.startswith(
            (
                "<module>",
                "Thread.",
                "BaseEventLoop.",
                "Handle._run",
                "Runner.run",
                "run (",
                "_worker",
                "Server.",
                "Command.",
                "Context.invoke",
                "main (",
                "asyncio_run",
            )
        )
    ]
    return {
        "samples": total,
        "inclusive": [(frame, round(100 * n / total, 1)) for frame, n in interesting[:top]],
        "self": [(frame, round(100 * n / total, 1)) for frame, n in own.most_common(top)],
    }


def _frame(frame: str) -> str:
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").split(":")[0]
    parts = path.split("/")
    if "site-packages" in parts:
        path = "/".join(parts[parts.index("site-packages") + 1 :][:2])
    elif "main" in parts:
        path = "/".join(parts[parts.index("main") + 1 :])
    else:
        path = parts[-1]
    return f"{name} ({path})"


# --- main --------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError), open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "memory": memory, "os": platform.platform()}


def versions() -> dict[str, str]:
    names = [
        "Django",
        "djangorestframework",
        "adrf",
        "channels",
        "daphne",
        "uvicorn",
        "uvloop",
        "httptools",
        "granian",
        "ollama",
        "httpx",
        "httpx-aiohttp",
        "aiohttp",
        "limits",
        "redis",
        "py-spy",
    ]
    found = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    if shutil.which("wrk"):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
        found["wrk"] = (out.stdout + out.stderr).split()[1] if (out.stdout + out.stderr) else "?"
    return found


@contextlib.contextmanager
def unpinned() -> Any:
    """This driver (and what it starts) on every core for a while, as users run things."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    commit = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    return commit + (" + uncommitted changes" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--long", action="store_true", help="more repeats, longer runs")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="one short repeat, to check the suite runs (figures meaningless; use with --out)",
    )
    parser.add_argument(
        "--server",
        choices=("daphne", "uvicorn", "granian"),
        default="uvicorn",
        help="the gateway server for every figure but the server comparison",
    )
    parser.add_argument("--only", default="", help=f"comma-separated sections of {SECTIONS}")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument(
        "--render",
        type=Path,
        help="only re-render the Markdown from a results JSON this suite wrote "
        "(e.g. after editing bench/analysis.md); measures nothing",
    )
    args = parser.parse_args(argv)
    if args.render:
        from bench.report import render

        saved = json.loads(args.render.read_text())
        analysis = (ROOT / "bench" / "analysis.md").read_text()
        args.out.write_text(render(saved["figures"], saved["meta"], analysis))
        log(f"re-rendered {args.out} from {args.render}")
        return 0
    profile = LONG if args.long else SMOKE if args.smoke else QUICK
    raise_fd_limit()
    pinning = "none (fewer than 2 cores or no taskset)"
    if pinned(LOAD_CORE):
        os.sched_setaffinity(0, {int(LOAD_CORE)})
        pinning = (
            f"`taskset`: the gateway on core {GATEWAY_CORE}; the fake Ollama, wrk and "
            f"the driver with its loadtest clients on core {LOAD_CORE}. The direct path "
            "keeps the same placement (the fake on core 1)."
        )
    started = time.monotonic()
    command = "make bench-long" if args.long else "make bench"
    if args.smoke:
        command = "python -m bench.run --smoke"
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if only:
        command = f"python -m bench.run --only {','.join(sorted(only))}"
    with tempfile.TemporaryDirectory(prefix="localai-bench-") as tmp:
        bench = Bench(profile=profile, server=args.server, only=only, tmp=Path(tmp))
        try:
            bench.run()
        finally:
            bench.teardown()
    bench.results["server"] = args.server
    meta = {
        "command": command,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "python": platform.python_version(),
        "packages": versions(),
        "pinning": pinning,
        "repeats": profile.repeats,
        "latency_requests": profile.latency_requests,
        "wall_seconds": round(time.monotonic() - started),
        "errors": bench.errors,
        **machine(),
    }
    from bench.report import write

    analysis = (ROOT / "bench" / "analysis.md").read_text()
    write(bench.results, meta, analysis, args.out, args.json)
    log(f"wrote {args.out} and {args.json} in {meta['wall_seconds']} s")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
