"""Liveness and readiness probes for orchestrators and load balancers."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from gateway import drain, service
from gateway.backends.pool import BackendHealth
from gateway.errors import (
    APIError,
    BackendUnavailableError,
    ServerShuttingDownError,
    error_body,
    error_response,
)

logger = logging.getLogger(__name__)

# A readiness probe must answer fast even when a dependency hangs.
CHECK_TIMEOUT_SECONDS = 3.0

# What the last probe of this process found failing ("" = ready): an
# orchestrator polls every few seconds, so only changes are logged.
_last_failure = ""


def _log_change(failure: str) -> None:
    global _last_failure
    if failure == _last_failure:
        return
    if failure:
        logger.warning("%s", failure)
    else:
        logger.info("Ready again: database, cache and backend answer")
    _last_failure = failure


# Exempt from CSRF so that any other method gets its 405 (with Allow), not a CSRF page.
@csrf_exempt
@require_http_methods(["GET", "HEAD"])
async def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive. No I/O."""
    return JsonResponse({"status": "ok"})


def _database_check() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def _cache_check() -> None:
    key = f"readyz:{uuid.uuid4().hex}"
    await cache.aset(key, "1", timeout=5)
    if await cache.aget(key) != "1":
        raise RuntimeError("value written was not read back")
    await cache.adelete(key)


async def _run(name: str, check) -> tuple[str, str | None]:  # type: ignore[no-untyped-def]
    try:
        await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return name, f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
    except APIError as exc:
        return name, exc.message
    except Exception as exc:  # any failure means not ready; say which
        return name, f"{type(exc).__name__}: {exc}"
    return name, None


def backend_facts(backend: BackendHealth) -> dict[str, Any]:
    """One backend's state as /readyz shows it (several backends only)."""
    facts: dict[str, Any] = {"state": "ok" if backend.problem is None else "failing"}
    if backend.problem is not None:
        facts["problem"] = backend.problem
    facts.update(
        version=backend.version,
        since=datetime.fromtimestamp(backend.since, UTC).isoformat(),
        models_loaded=list(backend.loaded),
        in_flight=backend.in_flight,
    )
    return facts


def not_ready_body(failing: list[tuple[str, str]], checks: dict[str, str]) -> dict[str, Any]:
    """The 503 answer: the error envelope naming what failed, and the state of every check."""
    message = "Not ready: " + "; ".join(f"{name}: {problem}" for name, problem in failing)
    error = APIError(
        message,
        code="not_ready",
        details=[{"check": name, "problem": problem} for name, problem in failing],
    )
    error.type = "service_unavailable_error"
    return {**error_body(error), "checks": checks}


@csrf_exempt
@require_http_methods(["GET", "HEAD"])
async def readyz(request: HttpRequest) -> JsonResponse:
    """Database, cache and backend reachable: 200; otherwise 503 naming what failed.

    A process that drains before it exits is not ready, whatever its checks say.
    """
    if drain.draining():
        # Expected while draining: not an ERROR line per poll (gateway.logfilters).
        return error_response(ServerShuttingDownError("Not ready: this server is shutting down."))
    backends: list[BackendHealth] = []

    async def backend_check() -> None:
        # Ready while one backend answers; each one's state is in `backends`.
        backends.extend(await service.backends_health())
        if all(backend.problem is not None for backend in backends):
            if len(backends) == 1:
                raise BackendUnavailableError(backends[0].problem)
            raise BackendUnavailableError("; ".join(f"{b.name}: {b.problem}" for b in backends))

    results = await asyncio.gather(
        _run("database", sync_to_async(_database_check)),
        _run("cache", _cache_check),
        _run("backend", backend_check),
    )
    checks = {name: ("ok" if problem is None else "failing") for name, problem in results}
    failing = [(name, problem) for name, problem in results if problem is not None]
    extra: dict[str, Any] = {}
    if len(backends) > 1:
        extra["backends"] = {b.name: backend_facts(b) for b in backends}
    if not failing:
        _log_change("")
        return JsonResponse({"status": "ok", "checks": checks, **extra})
    body = not_ready_body(failing, checks)
    body.update(extra)
    _log_change(body["error"]["message"])
    # An expected answer, logged above once per change: django.request's
    # "Service Unavailable" ERROR line on every poll is filtered out
    # (gateway.logfilters, settings.LOGGING).
    return JsonResponse(body, status=503)
