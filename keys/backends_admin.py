"""The admin's read-only Backends page: each backend's state and the scheduler's queues.

For operators (staff): is each backend up, since when, what it has loaded,
what this process has in flight there, its last errors, and the fair
scheduler's slots in use and requests waiting per caller.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from gateway import service
from gateway.backends.pool import BackendHealth
from gateway.scheduler import LocalScheduler, QueueStats, RedisScheduler


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _backend_row(backend: BackendHealth) -> dict[str, Any]:
    return {
        "name": backend.name,
        "up": backend.problem is None,
        "problem": backend.problem,
        "since": _when(backend.since),
        "version": backend.version,
        "weight": backend.weight,
        "models": backend.models,
        "loaded": backend.loaded,
        "in_flight": backend.in_flight,
        "errors": [(_when(at), message) for at, message in reversed(backend.errors)],
    }


async def _page_facts() -> tuple[list[BackendHealth], list[QueueStats]]:
    backends = await service.backends_health()
    scheduler = service.scheduler_get()
    if isinstance(scheduler, RedisScheduler):
        queues = await scheduler.stats_async()
    elif isinstance(scheduler, LocalScheduler):
        queues = scheduler.stats()
    else:
        queues = []
    return backends, queues


def backends_view(request: HttpRequest) -> HttpResponse:
    """`/admin/backends/`: staff only (wrapped in `admin.site.admin_view`)."""
    backends, queues = async_to_sync(_page_facts)()
    context = {
        **admin.site.each_context(request),
        "title": "Backends",
        "backends": [_backend_row(backend) for backend in backends],
        "queues": queues,
        "scheduler": type(service.scheduler_get()).__name__,
    }
    return TemplateResponse(request, "admin/keys/backends.html", context)


backends_admin_view = admin.site.admin_view(backends_view)
