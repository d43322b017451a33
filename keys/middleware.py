"""Rate-limit headers on every API response and one usage record per request.

Outermost middleware: it sees the final response of every request, error
responses included. The DRF authentication and throttle classes leave
`request.caller` and `request.rate_limit_status`; views (and streams, at
their final chunk) fill `gateway.metering.meter_for(request)`. A usage record is
taken when the response is complete: for a streamed answer when its stream
ends, is cancelled by a client disconnect, or fails.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponseBase

from gateway.metering import meter_for
from gateway.observability import response_error_code
from keys import policy
from keys.policy import Caller

# nginx's code for "the client closed the request before the answer": no
# response was sent, but the call is on record.
CLIENT_CLOSED_REQUEST = 499


def _record(
    request: HttpRequest, caller: Caller, status: int, started: float, error_code: str | None
) -> None:
    policy.usage_record(
        caller=caller,
        endpoint=request.path,
        meter=meter_for(request),
        status=status,
        latency_ms=max(0, round((time.perf_counter() - started) * 1000)),
        error_code=error_code,
        # Served by the ASGI server: the flusher thread writes it. The test
        # client (a WSGIRequest) writes at once, inside the test's transaction.
        defer=isinstance(request, ASGIRequest),
    )


async def _metered_async(
    content: AsyncIterator[bytes], request: HttpRequest, caller: Caller, status: int, started: float
) -> AsyncIterator[bytes]:
    finished = False
    try:
        async for chunk in content:
            yield chunk
        finished = True
    finally:
        # A stream that did not run to its end was cut: say so in the record.
        meter = meter_for(request)
        if not finished and meter.error_code is None:
            meter.error_code = "client_disconnected"
        _record(request, caller, status, started, None)


def _metered_sync(
    content: Iterator[bytes], request: HttpRequest, caller: Caller, status: int, started: float
) -> Iterator[bytes]:
    finished = False
    try:
        yield from content
        finished = True
    finally:
        meter = meter_for(request)
        if not finished and meter.error_code is None:
            meter.error_code = "client_disconnected"
        _record(request, caller, status, started, None)


def _finish(request: HttpRequest, response: HttpResponseBase, started: float) -> HttpResponseBase:
    status = getattr(request, "rate_limit_status", None)
    if status is not None:
        for name, value in status.headers().items():
            response[name] = value
    caller: Caller | None = getattr(request, "caller", None)
    if caller is None or caller.api_key is None:
        return response
    if not (settings.GATEWAY_USAGE_ENABLED or settings.GATEWAY_RATE_LIMITS_ENABLED):
        return response
    if response.streaming:
        content = response.streaming_content  # type: ignore[attr-defined]
        if response.is_async:  # type: ignore[attr-defined]
            metered: Any = _metered_async(content, request, caller, response.status_code, started)
        else:
            metered = _metered_sync(content, request, caller, response.status_code, started)
        response.streaming_content = metered  # type: ignore[attr-defined]
    else:
        _record(request, caller, response.status_code, started, response_error_code(response))
    return response


def _abandoned(request: HttpRequest, started: float) -> None:
    """The client left before the answer started: the call still leaves its record.

    The backend may have done the work (a whole answer being generated, a
    stream waiting for its first token), so the one usage record of the
    request says so: status 499 (the client closed the request), with
    whatever the meter knows (the model, tokens when a stream had begun).
    """
    caller: Caller | None = getattr(request, "caller", None)
    if caller is None or caller.api_key is None:
        return
    meter = meter_for(request)
    if meter.error_code is None:
        meter.error_code = "client_disconnected"
    _record(request, caller, CLIENT_CLOSED_REQUEST, started, None)


class ApiUsageMiddleware:
    """Adds `x-ratelimit-*` headers and records usage of key-authenticated requests."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self.__acall__(request)
        started = time.perf_counter()
        return _finish(request, self.get_response(request), started)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        try:
            response = await self.get_response(request)
        except asyncio.CancelledError:
            # Django cancels the view when the client disconnects first.
            _abandoned(request, started)
            raise
        return _finish(request, response, started)
