"""What the admin dashboard shows: the last hour of usage records and the live counters.

It reads only the gateway's own data: `keys.UsageRecord` (one per key-
authenticated call, HTTP and WebSocket) aggregated in the database, and the
process-wide metrics (`gateway.metrics`: in flight, queued, backends up).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Case, CharField, Count, Q, QuerySet, Sum, Value, When
from django.db.models.functions import TruncMinute
from django.utils import timezone

from gateway import metrics
from keys.models import UsageRecord

WINDOW_MINUTES = 60
TOP_KEYS = 5

# Usage records keep the path; the surface is its prefix (first match wins),
# as gateway.observability names surfaces.
_SURFACE_PREFIXES = (
    ("/v1/", "native"),
    ("/openai/", "openai"),
    ("/ollama/v1/", "openai"),
    ("/ollama/", "ollama"),
    ("ws_", "websocket"),
)


def _surface_expression() -> Case:
    return Case(
        *(
            When(endpoint__startswith=prefix, then=Value(name))
            for prefix, name in _SURFACE_PREFIXES
        ),
        default=Value("other"),
        output_field=CharField(),
    )


@dataclass
class GroupStats:
    name: str
    requests: int
    errors: int
    p50_ms: int | None
    p95_ms: int | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass
class Snapshot:
    """One look at the last hour (per minute, oldest first) and at the live counters."""

    since: datetime
    minutes: list[datetime]
    requests_per_minute: list[int]
    errors_per_minute: list[int]
    tokens_per_minute: list[int]
    requests: int
    errors: int
    tokens: int
    p50_ms: int | None
    p95_ms: int | None
    by_surface: list[GroupStats]
    by_model: list[GroupStats]
    top_keys_by_requests: list[dict[str, Any]]
    top_keys_by_tokens: list[dict[str, Any]]
    backends: list[dict[str, Any]] = field(default_factory=list)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def _percentile(records: QuerySet[UsageRecord], count: int, fraction: float) -> int | None:
    """The latency at `fraction` (nearest rank), read by the database's ordering."""
    if count == 0:
        return None
    rank = min(count - 1, max(0, round(fraction * count + 0.5) - 1))
    return records.order_by("latency_ms").values_list("latency_ms", flat=True)[rank]


def _groups(records: QuerySet[UsageRecord], key: str) -> list[GroupStats]:
    rows = (
        records.values(key)
        .annotate(requests=Count("id"), errors=Count("id", filter=Q(status__gte=400)))
        .order_by("-requests")
    )
    stats = []
    for row in rows:
        name = row[key]
        subset = records.filter(**{key: name})
        stats.append(
            GroupStats(
                name=name or "(none)",
                requests=row["requests"],
                errors=row["errors"],
                p50_ms=_percentile(subset, row["requests"], 0.50),
                p95_ms=_percentile(subset, row["requests"], 0.95),
            )
        )
    return stats


def _top_keys(records: QuerySet[UsageRecord], order: str) -> list[dict[str, Any]]:
    rows = (
        records.values("api_key__prefix", "api_key__name")
        .annotate(
            requests=Count("id"),
            tokens=Sum("prompt_tokens") + Sum("completion_tokens"),
        )
        .order_by(f"-{order}", "api_key__prefix")[:TOP_KEYS]
    )
    return [
        {
            "prefix": row["api_key__prefix"],
            "name": row["api_key__name"],
            "requests": row["requests"],
            "tokens": row["tokens"] or 0,
        }
        for row in rows
    ]


def dashboard_snapshot(*, now: datetime | None = None) -> Snapshot:
    """The last hour of usage records, aggregated in the database, plus the live counters."""
    now = now or timezone.now()
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    since = end - timedelta(minutes=WINDOW_MINUTES)
    records = UsageRecord.objects.filter(created_at__gte=since, created_at__lt=end).annotate(
        surface=_surface_expression()
    )
    per_minute = {
        row["minute"]: row
        for row in records.annotate(minute=TruncMinute("created_at"))
        .values("minute")
        .annotate(
            requests=Count("id"),
            errors=Count("id", filter=Q(status__gte=400)),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
        )
        .order_by("minute")
    }
    minutes = [since + timedelta(minutes=i) for i in range(WINDOW_MINUTES)]
    empty: dict[str, Any] = {}
    rows = [per_minute.get(minute, empty) for minute in minutes]
    requests_series = [row.get("requests", 0) for row in rows]
    errors_series = [row.get("errors", 0) for row in rows]
    tokens_series = [(row.get("prompt") or 0) + (row.get("completion") or 0) for row in rows]
    total = sum(requests_series)
    return Snapshot(
        since=since,
        minutes=minutes,
        requests_per_minute=requests_series,
        errors_per_minute=errors_series,
        tokens_per_minute=tokens_series,
        requests=total,
        errors=sum(errors_series),
        tokens=sum(tokens_series),
        p50_ms=_percentile(records, total, 0.50),
        p95_ms=_percentile(records, total, 0.95),
        by_surface=_groups(records, "surface"),
        by_model=_groups(records, "model"),
        top_keys_by_requests=_top_keys(records, "requests"),
        top_keys_by_tokens=_top_keys(records, "tokens"),
        backends=backends_live(),
    )


def backends_live() -> list[dict[str, Any]]:
    """Per backend: up (as last checked), in flight and queued (all worker processes)."""
    up = metrics.sample_values("localai_backend_up", "backend")
    in_flight = metrics.sample_values("localai_in_flight", "backend")
    queued = metrics.sample_values("localai_queue_depth", "backend")
    names = sorted(set(up) | set(in_flight) | set(queued))
    return [
        {
            "name": name,
            "up": up.get(name),
            "in_flight": int(in_flight.get(name, 0)),
            "queued": int(queued.get(name, 0)),
        }
        for name in names
    ]
