"""Usage records, written in batches off the request path.

Each API request served by the ASGI server appends one `PendingUsage` to an
in-process buffer (no I/O on the request path). A flusher thread writes the
buffer in ONE transaction (a bulk insert plus one atomic `F()` increment per
key) at most `USAGE_FLUSH_INTERVAL` seconds after a record arrives, sooner
when `USAGE_FLUSH_BATCH_SIZE` records wait; the process writes what is left
when it exits; `usage_flush()` writes it on demand. Requests from the test
client, WSGI and scripts are written at once. Nothing is read and written
back: counters move with `F()` expressions.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import DateTimeField, F, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from keys.models import ApiKey, UsageRecord

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class PendingUsage:
    """A usage record not yet written."""

    api_key_id: int
    endpoint: str
    model: str
    status: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    error_code: str | None = None
    queued_ms: int = 0
    backend: str = ""
    created_at: datetime = field(default_factory=timezone.now)


_pending: list[PendingUsage] = []
_pending_lock = threading.Lock()
# One writer per process at a time: keeps SQLite (and per-key row locks) calm.
_flush_lock = threading.Lock()


def usage_write(records: Iterable[PendingUsage]) -> int:
    """Write records and bump their keys' counters in one transaction.

    Records of keys deleted meanwhile are dropped (their history went with
    them). Returns the number written.
    """
    records = list(records)
    if not records:
        return 0
    with transaction.atomic():
        key_ids = {record.api_key_id for record in records}
        existing = set(ApiKey.objects.filter(pk__in=key_ids).values_list("pk", flat=True))
        records = [record for record in records if record.api_key_id in existing]
        UsageRecord.objects.bulk_create(
            [
                UsageRecord(
                    api_key_id=r.api_key_id,
                    endpoint=r.endpoint[:200],
                    model=r.model[:200],
                    status=r.status,
                    prompt_tokens=r.prompt_tokens,
                    completion_tokens=r.completion_tokens,
                    latency_ms=r.latency_ms,
                    queued_ms=r.queued_ms,
                    backend=r.backend[:64],
                    error_code=(r.error_code or "")[:64],
                    created_at=r.created_at,
                )
                for r in records
            ],
            batch_size=500,
        )
        per_key: dict[int, list[int | datetime]] = defaultdict(lambda: [0, records[0].created_at])
        for record in records:
            counts = per_key[record.api_key_id]
            counts[0] = int(counts[0]) + 1
            counts[1] = max(counts[1], record.created_at)  # type: ignore[type-var]
        # Sorted, so two processes flushing at once lock rows in the same order.
        for key_id in sorted(per_key):
            count, last = per_key[key_id]
            last_value = Value(last, output_field=DateTimeField())
            ApiKey.objects.filter(pk=key_id).update(
                usage_count=F("usage_count") + count,
                last_used_at=Greatest(
                    Coalesce("last_used_at", last_value), last_value, output_field=DateTimeField()
                ),
            )
    return len(records)


def usage_flush() -> int:
    """Write every buffered record now. Returns how many were written.

    On a database error the records go back into the buffer for the next
    flush (the buffer is capped at `USAGE_BUFFER_MAX`; beyond it the oldest
    are dropped with an error in the log).
    """
    with _flush_lock:
        with _pending_lock:
            batch = _pending[:]
            _pending.clear()
        if not batch:
            return 0
        try:
            return usage_write(batch)
        except Exception:
            logger.exception("Writing %d usage records failed; keeping them for retry", len(batch))
            with _pending_lock:
                _pending[:0] = batch
                overflow = len(_pending) - settings.USAGE_BUFFER_MAX
                if overflow > 0:
                    logger.error("Usage buffer full: dropping %d oldest records", overflow)
                    del _pending[:overflow]
            return 0


def usage_pending() -> int:
    """How many records wait in this process's buffer."""
    with _pending_lock:
        return len(_pending)


def usage_discard() -> None:
    """Drop the buffer without writing it (tests, between test databases).

    Waits for a flush in progress, so nothing it re-queues survives.
    """
    with _flush_lock, _pending_lock:
        _pending.clear()


def usage_enqueue(record: PendingUsage, *, defer: bool = True) -> None:
    """Buffer one record for the flusher thread; with `defer=False`, write it now.

    Deferring is for requests a server answers (the write then costs the
    request nothing); the test client, WSGI and scripts write at once, inside
    their own transaction, so what they do is visible to them right away.
    """
    with _pending_lock:
        _pending.append(record)
        size = len(_pending)
    if not defer or settings.USAGE_FLUSH_INTERVAL <= 0:
        usage_flush()
        return
    _ensure_flusher()
    _wake.set()
    if size >= settings.USAGE_FLUSH_BATCH_SIZE:
        _full.set()


# Set when records wait; `_full` cuts the interval short when a batch is full.
_wake = threading.Event()
_full = threading.Event()
_flusher: threading.Thread | None = None
_flusher_lock = threading.Lock()


def _ensure_flusher() -> None:
    global _flusher
    if _flusher is not None and _flusher.is_alive():
        return
    with _flusher_lock:
        if _flusher is None or not _flusher.is_alive():
            _flusher = threading.Thread(target=_flusher_loop, name="usage-flusher", daemon=True)
            _flusher.start()


def _flusher_loop() -> None:
    """Write the buffer at most USAGE_FLUSH_INTERVAL seconds after a record arrives."""
    while True:
        _wake.wait()
        _full.wait(timeout=settings.USAGE_FLUSH_INTERVAL)
        _wake.clear()
        _full.clear()
        try:
            # This thread outlives requests: drop a connection the database
            # closed (which can fail too, e.g. while the database is down).
            close_old_connections()
            usage_flush()
        except Exception:  # never let the flusher die; usage_flush logs and re-queues
            logger.exception("Usage flusher failed")


_exit_flush_installed = False


def _flush_at_exit() -> None:
    try:
        written = usage_flush()
    except Exception:  # the database may be gone already; say so, don't crash exit
        logger.exception("Usage records could not be written at exit")
        return
    if written:
        logger.info("Wrote %d buffered usage records at exit", written)


def install_exit_flush() -> None:
    """Write the buffer when the interpreter exits (graceful shutdown)."""
    global _exit_flush_installed
    if not _exit_flush_installed:
        atexit.register(_flush_at_exit)
        _exit_flush_installed = True
