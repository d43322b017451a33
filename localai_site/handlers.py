"""Django's ASGI handler, with API requests sharing one sync thread.

Django runs each HTTP request in its own `ThreadSensitiveContext`: the first
bit of sync code a request needs (Django's own request signals, DRF's
authentication, the ORM) starts a new thread for that request, and the
thread lives until the response ends. For an API call that is a thread
start per request (and a new database connection, since connections belong
to threads), and for a stream that is a thread parked for the whole answer:
5,000 open streams were 5,000 threads, about 230 KB each, and under overload
thousands of threads competing for the GIL.

The API's sync work is short (one indexed query for the key, a rate-limit
counter), so API requests skip the per-request context: their sync calls run
on asgiref's one shared sync thread, as Channels' WebSocket consumers already
do, with one persistent database connection. Every other request (the admin,
the chat page, the key-management API) keeps Django's thread per request, so
a slow admin page never holds up the API.
"""

from __future__ import annotations

from typing import Any

from django.core.handlers.asgi import ASGIHandler

# The JSON APIs and the probes: sync work is a key lookup and a counter.
API_PATH_PREFIXES = ("/v1/", "/openai/", "/ollama/", "/healthz", "/readyz")


class GatewayASGIHandler(ASGIHandler):
    """`ASGIHandler` without a thread per request for API paths."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(API_PATH_PREFIXES):
            await self.handle(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
