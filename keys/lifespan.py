"""ASGI lifespan: drain on SIGTERM; write the buffered usage records at shutdown.

At startup, SIGTERM is made to drain the process first (`gateway.drain`: readiness
503, new requests refused, live work given GATEWAY_DRAIN_SECONDS, the rest
interrupted with an error event), to write the usage records, and only then
to reach uvicorn's own graceful shutdown.

uvicorn re-raises SIGTERM after its graceful shutdown, so `atexit` handlers
never run there; the lifespan shutdown event is the last moment it offers.
(daphne has no lifespan: no drain; it exits normally and the `atexit` flush runs.)
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from gateway.drain import sigterm_drain_install
from keys.usage import usage_flush


async def _usage_flush() -> None:
    await sync_to_async(usage_flush, thread_sensitive=False)()


async def lifespan_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            sigterm_drain_install(window=settings.GATEWAY_DRAIN_SECONDS, before_exit=_usage_flush)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await _usage_flush()
            await send({"type": "lifespan.shutdown.complete"})
            return
