"""uvicorn's protocols with the timeouts and answers a public server needs.

`make run` starts uvicorn with these (`--http localai_site.server:HttpProtocol
--ws localai_site.server:WebSocketProtocol`); each is uvicorn's own
implementation plus one guard:

- `HttpProtocol` (httptools): a connection must finish sending a request's
  headers within GATEWAY_HEADER_TIMEOUT seconds of opening or of starting the
  request, else it gets `408` and is closed. uvicorn has no such timeout: a
  client trickling header bytes held its connection for as long as it liked.
  (The body has its own deadline, GATEWAY_BODY_TIMEOUT, in the ASGI handler:
  localai_site/handlers.py. Idle keep-alive connections are closed after
  uvicorn's --timeout-keep-alive.)
- `WebSocketProtocol` (websockets' sans-I/O): a handshake websockets refuses to
  parse (a header line over 8 KiB: 431; too many headers, malformed: 400) is
  answered and closed. uvicorn's implementation left it open, unanswered.

Both subclass uvicorn's classes and use their attributes (`transport`,
`conn`, `handshake_complete`), which are not a public API: uvicorn is pinned
(requirements.txt) and tests/test_slow_clients.py fails if they change.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 45\r\n"
    b"connection: close\r\n\r\n"
    b"The request headers did not arrive in time.\r\n"
)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline for each request's headers."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def _arm_header_timer(self) -> None:
        timeout = settings.GATEWAY_HEADER_TIMEOUT
        if timeout and self._header_timer is None:
            self._header_timer = self.loop.call_later(timeout, self._headers_too_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_late(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(_REQUEST_TIMEOUT)
            self.transport.close()


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, answering a handshake it cannot parse."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        refused = self.conn.handshake_exc
        if refused is None or self.handshake_complete or self.transport.is_closing():
            return
        # websockets has written its refusal (400, or 431 for oversized
        # headers); uvicorn's implementation never sends it.
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()
