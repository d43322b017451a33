"""Django's ASGI handler, with API requests sharing one sync thread and a cap
on the API requests a worker has not started answering.

Django runs each HTTP request in its own `ThreadSensitiveContext`: the first
bit of sync code a request needs (Django's own request signals, DRF's
authentication, the ORM) starts a new thread for that request, and the
thread lives until the response ends. For an API call that is a thread
start per request (and a new database connection, since connections belong
to threads), and for a stream that is a thread parked for the whole answer:
5,000 open streams were 5,000 threads, about 230 KB each, and under overload
thousands of threads competing for the GIL.

The API's sync work is short (at most one indexed query for the key, none
when the process keeps it: keys/keycache.py; a rate-limit counter), so API
requests skip the per-request context: their sync calls run
on asgiref's one shared sync thread, as Channels' WebSocket consumers already
do. Every other request (the admin, the chat page, the key-management API)
keeps Django's thread per request, so a slow admin page never holds up the API.

Overload: a worker answers API requests one CPU slice at a time, so beyond
its capacity every request slows down together. GATEWAY_MAX_PENDING_REQUESTS
caps the API requests this worker has accepted but not started answering
(a stream counts until its first byte); past it, a request gets
`503 backend_busy` with `Retry-After` at once, before Django parses it, which
costs a small fraction of answering it. That bounds how many wait, not how
long: while the admitted requests keep the CPU busy, new ones (refusals
included) wait for the event loop too. GATEWAY_SHED_LAG_MS adds the other
guard: while the event loop runs late by more than that, new API requests are
refused at once, until it has caught up.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

from apis.errors import BackendBusyError, error_body

# The JSON APIs and the probes: sync work is a key lookup and a counter.
API_PATH_PREFIXES = ("/v1/", "/openai/", "/ollama/", "/healthz", "/readyz")
# How often the event loop's lateness is measured (GATEWAY_SHED_LAG_MS).
LAG_INTERVAL = 0.025


class GatewayASGIHandler(ASGIHandler):
    """`ASGIHandler` without a thread per API request, and with a cap on pending ones."""

    def __init__(self) -> None:
        super().__init__()
        # API requests accepted and not answered yet (this worker, this loop).
        self.pending = 0
        # How late the event loop ran its last timer, seconds.
        self.lag = 0.0
        self._watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PATH_PREFIXES):
            await super().__call__(scope, receive, send)
            return
        limit = settings.GATEWAY_MAX_PENDING_REQUESTS
        if limit and self.pending >= limit:
            await _busy(
                send,
                f"{limit} requests are already waiting in this worker "
                "(GATEWAY_MAX_PENDING_REQUESTS)",
            )
            return
        shed_after = settings.GATEWAY_SHED_LAG_MS / 1000
        if shed_after:
            self._watch_lag()
            if self.lag > shed_after:
                await _busy(
                    send, f"its event loop runs {self.lag * 1000:.0f} ms late (GATEWAY_SHED_LAG_MS)"
                )
                return
        self.pending += 1
        started = False

        async def send_counted(message: dict[str, Any]) -> None:
            nonlocal started
            if not started and message["type"] == "http.response.start":
                started = True
                self.pending -= 1
            await send(message)

        try:
            await self.handle(scope, receive, send_counted)
        finally:
            if not started:
                self.pending -= 1

    def _watch_lag(self) -> None:
        loop = asyncio.get_running_loop()
        if loop not in self._watchers:
            self._watchers[loop] = loop.create_task(self._measure_lag(loop))

    async def _measure_lag(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            due = loop.time() + LAG_INTERVAL
            await asyncio.sleep(LAG_INTERVAL)
            self.lag = max(0.0, loop.time() - due)


async def _busy(send: Any, reason: str) -> None:
    error = BackendBusyError(1, f"The gateway is overloaded: {reason}. Retry shortly.")
    body = json.dumps(error_body(error)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in error.headers.items()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
