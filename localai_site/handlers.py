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
requests skip the per-request context: their sync calls run on asgiref's one
shared sync thread, as Channels' WebSocket consumers already do. Every other
request (the admin, the chat page, the key-management API) keeps Django's
thread per request, so a slow admin page never holds up the API.

Slow clients: every HTTP request must finish sending its body within
GATEWAY_BODY_TIMEOUT seconds of its headers, else it gets `408` and its
connection is closed (the server's protocol does the same for headers:
localai_site/server.py). An API request's body is read whole before the
request counts against GATEWAY_MAX_PENDING_REQUESTS, so connections that
announce a body and trickle it never fill the cap; the probes (`/healthz`,
`/readyz`) are never refused by the load guards, so a worker that has work
is never restarted for having it.

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
import collections
import json
import weakref
from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

from gateway.errors import APIError, BackendBusyError, error_body

# The JSON APIs and the probes: sync work is a key lookup and a counter.
API_PATH_PREFIXES = ("/v1/", "/openai/", "/ollama/", "/healthz", "/readyz")
# Never refused by the load guards: an orchestrator restarts a worker whose
# liveness probe fails, which would turn an overload into an outage.
PROBE_PATHS = ("/healthz", "/readyz")
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
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        body = _RequestBody(receive, settings.GATEWAY_BODY_TIMEOUT)
        try:
            if not scope["path"].startswith(API_PATH_PREFIXES):
                await super().__call__(scope, body.receive, send)
                return
            await body.preload(settings.MAX_REQUEST_BYTES)
        except BodyTimeoutError:
            await _refuse(send, RequestTimeoutError())
            return
        if not scope["path"].startswith(PROBE_PATHS) and await self._refused(send):
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
            await self.handle(scope, body.receive, send_counted)
        finally:
            if not started:
                self.pending -= 1

    async def _refused(self, send: Any) -> bool:
        """Refuse the request (503) when this worker is past a load guard."""
        limit = settings.GATEWAY_MAX_PENDING_REQUESTS
        if limit and self.pending >= limit:
            await _busy(
                send,
                f"{limit} requests are already waiting in this worker "
                "(GATEWAY_MAX_PENDING_REQUESTS)",
            )
            return True
        shed_after = settings.GATEWAY_SHED_LAG_MS / 1000
        if shed_after:
            self._watch_lag()
            if self.lag > shed_after:
                await _busy(
                    send, f"its event loop runs {self.lag * 1000:.0f} ms late (GATEWAY_SHED_LAG_MS)"
                )
                return True
        return False

    def _watch_lag(self) -> None:
        loop = asyncio.get_running_loop()
        if loop not in self._watchers:
            self._watchers[loop] = loop.create_task(self._measure_lag(loop))

    async def _measure_lag(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            due = loop.time() + LAG_INTERVAL
            await asyncio.sleep(LAG_INTERVAL)
            self.lag = max(0.0, loop.time() - due)


class RequestTimeoutError(APIError):
    status, type, code = 408, "invalid_request_error", "request_timeout"
    default_message = (
        "The request body did not arrive in time (GATEWAY_BODY_TIMEOUT); the connection is closed."
    )

    def __init__(self) -> None:
        super().__init__(headers={"Connection": "close"})


class BodyTimeoutError(Exception):
    """The client did not send the request's body within GATEWAY_BODY_TIMEOUT."""


class _RequestBody:
    """The ASGI `receive` of one request, with a deadline for its body.

    `preload` reads the body ahead (up to a size) so the request is counted
    only once it has arrived; `receive` hands out what was read ahead, then
    what follows. Once the body is complete, `receive` is the server's own
    (Django waits on it for the client's disconnect, with no deadline).
    """

    def __init__(self, receive: Any, timeout: float) -> None:
        self._receive = receive
        self._ahead: collections.deque[dict[str, Any]] = collections.deque()
        self._complete = False
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + timeout if timeout else None

    async def _next(self) -> dict[str, Any]:
        if self._complete or self._deadline is None:
            return await self._receive()
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            raise BodyTimeoutError from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._complete = True
        return message

    async def preload(self, limit: int) -> None:
        """Read the body ahead, up to `limit` bytes (Django refuses larger ones: 413)."""
        size = 0
        while not self._complete and size <= limit:
            message = await self._next()
            self._ahead.append(message)
            size += len(message.get("body", b""))

    async def receive(self) -> dict[str, Any]:
        if self._ahead:
            return self._ahead.popleft()
        return await self._next()


async def _busy(send: Any, reason: str) -> None:
    error = BackendBusyError(1, f"The gateway is overloaded: {reason}. Retry shortly.")
    # The x-ratelimit-* headers a client backs off by: nothing left in this
    # worker until Retry-After (the key's own budget is not looked up here:
    # refusing must cost far less than answering).
    limit = settings.GATEWAY_MAX_PENDING_REQUESTS
    error.headers.update(
        {
            "x-ratelimit-limit-requests": str(limit),
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{error.retry_after}s",
        }
    )
    await _refuse(send, error)


async def _refuse(send: Any, error: APIError) -> None:
    body = json.dumps(error_body(error)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in error.headers.items()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
