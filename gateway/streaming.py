"""Helpers for answers, streamed ones above all: prime the first chunk, encode
events (once per stream where they do not change), frame SSE events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any, TypeVar

from django.http import StreamingHttpResponse

T = TypeVar("T")


async def stream_primed(chunks: AsyncIterator[T]) -> AsyncIterator[T]:
    """Wait for the first chunk now, then stream it and the rest.

    Ollama sends its status line with the first token, so errors before it
    (unknown model, busy, down) raise here, while the view can still answer
    with a real status code instead of a 200 stream holding an error event.
    The returned iterator closes `chunks` (and so the backend request) when it
    is closed, cancelled or exhausted.
    """
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        return _empty()
    except BaseException:
        await chunks.aclose()  # type: ignore[attr-defined]
        raise
    return _Primed(first, chunks)


async def _empty() -> AsyncIterator[Any]:
    return
    yield  # pragma: no cover - makes this an async generator


_TAKEN: Any = object()


class _Primed(AsyncIterator[T]):
    """The first chunk, then `rest`'s own steps, handed out as they are.

    Not a generator: after the first chunk each `__anext__` IS `rest`'s, so
    a chunk takes no extra step and an open stream holds no extra frame.
    Closing, cancelling or exhausting it is closing, cancelling or exhausting
    `rest` (cancellation reaches `rest`, which is the one awaiting).
    """

    __slots__ = ("_first", "_rest")

    def __init__(self, first: T, rest: AsyncIterator[T]) -> None:
        self._first = first
        self._rest = rest

    def __aiter__(self) -> _Primed[T]:
        return self

    def __anext__(self) -> Awaitable[T]:  # type: ignore[override]
        first = self._first
        if first is _TAKEN:
            return self._rest.__anext__()
        self._first = _TAKEN
        ready: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        ready.set_result(first)
        return ready

    async def aclose(self) -> None:
        self._first = _TAKEN
        await self._rest.aclose()  # type: ignore[attr-defined]


# `json.dumps(payload, separators=(",", ":"))` builds a new encoder on every
# call; one encoder, made once, writes the same text.
compact_json = json.JSONEncoder(separators=(",", ":")).encode

# A str as its JSON literal, quotes included, exactly as `json.dumps` writes it
# (C, ASCII-escaped). The streamed relays put each token's text into an event
# whose constant part was encoded once per stream.
json_string = encode_basestring_ascii


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC written with `Z` (as DRF's DateTimeField and Ollama write it)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def json_object_head(fields: dict[str, Any]) -> str:
    """`{"a":1,"b":2` (no closing brace): the constant start of each event of a stream."""
    return compact_json(fields)[:-1]


def sse_queued(notice: Any) -> bytes:
    """An SSE comment saying a stream waits for a backend slot (clients ignore comments)."""
    return f": queued, position {notice.position}\n\n".encode()


def sse_event(payload: dict[str, Any] | str) -> bytes:
    """One Server-Sent Events `data:` event."""
    data = payload if isinstance(payload, str) else compact_json(payload)
    return f"data: {data}\n\n".encode()


class ByteStreamResponse(StreamingHttpResponse):
    """A streamed response whose async iterator yields bytes, relayed as is.

    Django's StreamingHttpResponse wraps an async iterator in a new async
    generator each time `streaming_content` is read (to turn str into bytes),
    and its `__aiter__` is one more: with the usage middleware re-wrapping the
    content, three generator steps per chunk, and three generators held per
    open stream, for bytes that are already bytes.
    """

    @property
    def streaming_content(self) -> Any:
        if self.is_async:
            return self._iterator
        return StreamingHttpResponse.streaming_content.fget(self)  # type: ignore[attr-defined]

    @streaming_content.setter
    def streaming_content(self, value: Any) -> None:
        self._set_streaming_content(value)

    def __aiter__(self) -> Any:
        if self.is_async:
            return self._iterator
        return super().__aiter__()


def stream_response(chunks: AsyncIterator[bytes], content_type: str) -> ByteStreamResponse:
    """A streamed response that proxies must not buffer."""
    response = ByteStreamResponse(chunks, content_type=content_type)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def sse_response(events: AsyncIterator[bytes]) -> StreamingHttpResponse:
    """A `text/event-stream` response that proxies must not buffer."""
    return stream_response(events, "text/event-stream")
