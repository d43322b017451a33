"""ASGI lifespan: write the buffered usage records when the server shuts down.

uvicorn re-raises SIGTERM after its graceful shutdown, so `atexit` handlers
never run there; the lifespan shutdown event is the last moment it offers.
(daphne has no lifespan; it exits normally and the `atexit` flush runs.)
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async

from keys.usage import usage_flush


async def lifespan_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await sync_to_async(usage_flush, thread_sensitive=False)()
            await send({"type": "lifespan.shutdown.complete"})
            return
