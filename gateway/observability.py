"""Request ids, one log line per request, and the request metrics.

`RequestObservationMiddleware` (outermost) gives every HTTP request an id (an
incoming `X-Request-ID`, if it is a sane token, else a new one), returns it in
the `X-Request-ID` header, and makes it the current request id, which
`gateway.errors.error_body` puts in every error envelope. When the answer has
ended (for a stream: when the stream ends or is cut) `request_finish` writes
the request's metrics and its one log line (logger `localai.requests`); the
WebSocket consumer calls `request_finish` for each generation.

The core knows a caller only by the small protocol it needs: `key_prefix`
(never the key).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from gateway import metrics
from gateway.errors import request_id_var
from gateway.metering import UsageMeter, meter_for

logger = logging.getLogger("localai.requests")

REQUEST_ID_HEADER = "X-Request-ID"
# What a client may choose as its request id (anything else is replaced).
_REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")


# Status of a request whose client left before the answer started (nginx's 499).
CLIENT_CLOSED_REQUEST = 499

# Path prefix -> surface; the first match wins.
_SURFACES = (
    ("/v1/", "native"),
    ("/openai/", "openai"),
    ("/ollama/v1/", "openai"),
    ("/ollama/", "ollama"),
    ("/admin/", "admin"),
)


def request_id_new(incoming: str | None = None) -> str:
    """`incoming` when it is a sane token (1-128 of `A-Za-z0-9._:-`), else a fresh id."""
    if incoming and _REQUEST_ID_PATTERN.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def request_id_current() -> str | None:
    """The id of the request being handled, if any."""
    return request_id_var.get()


def surface_of(path: str) -> str:
    """The surface a path belongs to (`native`, `openai`, `ollama`, `admin`, or `site`)."""
    for prefix, surface in _SURFACES:
        if path.startswith(prefix):
            return surface
    return "site"


def endpoint_of(request: HttpRequest) -> str:
    """The route pattern that matched (bounded, unlike the path), or `unmatched`."""
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return "unmatched"
    return "/" + match.route.lstrip("^").rstrip("$")


def request_finish(
    *,
    request_id: str,
    surface: str,
    endpoint: str,
    method: str,
    status: int,
    seconds: float,
    meter: UsageMeter,
    first_token_seconds: float | None,
    key_prefix: str,
) -> None:
    """Metrics and the one log line of an answered request or generation.

    Token and first-token metrics are labelled with the model only when a
    backend answered (it serves that model): a client cannot grow the label
    set by naming models that do not exist.
    """
    metrics.request_observe(surface=surface, endpoint=endpoint, status=status, seconds=seconds)
    answered = meter.model and (meter.total_tokens > 0 or first_token_seconds is not None)
    if answered:
        metrics.tokens_add(
            model=meter.model, prompt=meter.prompt_tokens, completion=meter.completion_tokens
        )
        if first_token_seconds is not None:
            metrics.first_token_observe(
                surface=surface, model=meter.model, seconds=first_token_seconds
            )
    ttft_ms = None if first_token_seconds is None else round(first_token_seconds * 1000)
    logger.info(
        "%s %s %s %s %d %dms model=%s tokens=%d+%d ttft_ms=%s key=%s",
        request_id,
        surface,
        method,
        endpoint,
        status,
        round(seconds * 1000),
        meter.model or "-",
        meter.prompt_tokens,
        meter.completion_tokens,
        "-" if ttft_ms is None else ttft_ms,
        key_prefix or "-",
        extra={
            "request_id": request_id,
            "surface": surface,
            "endpoint": endpoint,
            "method": method,
            "model": meter.model or None,
            "status": status,
            "error_code": meter.error_code,
            "prompt_tokens": meter.prompt_tokens,
            "completion_tokens": meter.completion_tokens,
            "latency_ms": round(seconds * 1000),
            "ttft_ms": ttft_ms,
            "key_prefix": key_prefix or None,
        },
    )


_ERROR_BODY_LIMIT = 64 * 1024


def response_error_code(response: HttpResponseBase) -> str | None:
    """The envelope's `error.code` of an error response, if it has one."""
    if response.status_code < 400 or response.streaming:
        return None
    data: Any = getattr(response, "data", None)
    if data is None:
        content = getattr(response, "content", b"")
        if not content or len(content) > _ERROR_BODY_LIMIT:
            return None
        try:
            data = json.loads(content)
        except ValueError:
            return None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        code = data["error"].get("code")
        return str(code) if code else None
    return None


def first_token_seconds(meter: UsageMeter, started: float) -> float | None:
    """Seconds from `started` (time.monotonic) to the meter's first relayed token."""
    if meter.first_token_at is None:
        return None
    return max(0.0, meter.first_token_at - started)


class _Observed:
    """What the middleware knows of one request until its answer has ended."""

    __slots__ = ("request", "request_id", "started")

    def __init__(self, request: HttpRequest, request_id: str) -> None:
        self.request = request
        self.request_id = request_id
        self.started = time.monotonic()

    def finish(self, status: int, error_code: str | None = None) -> None:
        request = self.request
        meter = meter_for(request)
        if error_code and meter.error_code is None:
            meter.error_code = error_code
        caller = getattr(request, "caller", None)
        request_finish(
            request_id=self.request_id,
            surface=surface_of(request.path),
            endpoint=endpoint_of(request),
            method=request.method or "",
            status=status,
            seconds=time.monotonic() - self.started,
            meter=meter,
            first_token_seconds=first_token_seconds(meter, self.started),
            key_prefix=getattr(caller, "key_prefix", "") or "",
        )

    def finish_quietly(self, status: int, error_code: str | None = None) -> None:
        try:
            self.finish(status, error_code)
        except Exception:  # observing must never break an answer
            logger.exception("Could not record request %s", self.request_id)


async def _observed_async(
    content: AsyncIterator[bytes], observed: _Observed, status: int
) -> AsyncIterator[bytes]:
    finished = False
    try:
        async for chunk in content:
            yield chunk
        finished = True
    finally:
        observed.finish_quietly(status, None if finished else "client_disconnected")


def _observed_sync(content: Iterator[bytes], observed: _Observed, status: int) -> Iterator[bytes]:
    finished = False
    try:
        yield from content
        finished = True
    finally:
        observed.finish_quietly(status, None if finished else "client_disconnected")


class RequestObservationMiddleware:
    """Request ids in and out, and one observation (metrics, log line) per request."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def _begin(self, request: HttpRequest) -> _Observed:
        request_id = request_id_new(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        request_id_var.set(request_id)
        return _Observed(request, request_id)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self.__acall__(request)
        observed = self._begin(request)
        return self._end(observed, self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        observed = self._begin(request)
        try:
            response = await self.get_response(request)
        except asyncio.CancelledError:
            observed.finish_quietly(CLIENT_CLOSED_REQUEST, "client_disconnected")
            raise
        return self._end(observed, response)

    def _end(self, observed: _Observed, response: HttpResponseBase) -> HttpResponseBase:
        response[REQUEST_ID_HEADER] = observed.request_id
        if not response.streaming:
            observed.finish_quietly(response.status_code, response_error_code(response))
            return response
        content = response.streaming_content  # type: ignore[attr-defined]
        if response.is_async:  # type: ignore[attr-defined]
            wrapped: Any = _observed_async(content, observed, response.status_code)
        else:
            wrapped = _observed_sync(content, observed, response.status_code)
        response.streaming_content = wrapped  # type: ignore[attr-defined]
        return response
