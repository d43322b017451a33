"""The ASGI side of the drain on shutdown (`gateway.drain`).

Wraps the whole application. While the process drains, a new HTTP request
gets `503 server_shutting_down` with `Retry-After` and `Connection: close` in
its surface's error shape, at once and before Django parses it, and a new
WebSocket gets the `error` frame and close code 1012 (service restart). The
probes pass through (`/readyz` answers 503 itself, `/healthz` stays 200: the
process is alive, restarting it would only cut the drain short). HTTP requests
in flight are counted, so the drain knows when nothing is left.
"""

from __future__ import annotations

import json
from typing import Any

from gateway import drain
from gateway.errors import ServerShuttingDownError, error_body
from realtime.protocol import error_frame

PROBE_PATHS = ("/healthz", "/readyz")
# Ollama's own routes answer errors as Ollama does: {"error": "<message>"}
# (compat.ollama_views); its OpenAI mirror (/ollama/v1/) uses the envelope.
OLLAMA_ROUTES = "/ollama/api/"
# WebSocket close code "Service Restart": reconnect, another server will answer.
CLOSE_SERVICE_RESTART = 1012


class DrainGuard:
    """Refuses new requests while the process drains; counts those in flight."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http" and scope["path"] not in PROBE_PATHS:
            if drain.draining():
                await _refuse_http(scope, send)
                return
            drain.work_begin()
            try:
                await self.app(scope, receive, send)
            finally:
                drain.work_end()
            return
        if kind == "websocket" and drain.draining():
            await _refuse_websocket(receive, send)
            return
        await self.app(scope, receive, send)


async def _refuse_http(scope: dict[str, Any], send: Any) -> None:
    error = ServerShuttingDownError()
    if scope["path"].startswith(OLLAMA_ROUTES):
        payload: dict[str, Any] = {"error": error.message}
    else:
        payload = error_body(error)
    body = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *((name.lower().encode(), value.encode()) for name, value in error.headers.items()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse_websocket(receive: Any, send: Any) -> None:
    # Accept, then close: a close before accepting is an HTTP 403 to the
    # client, which would never see why.
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    frame = error_frame(ServerShuttingDownError())
    await send({"type": "websocket.send", "text": json.dumps(frame, separators=(",", ":"))})
    await send({"type": "websocket.close", "code": CLOSE_SERVICE_RESTART})
