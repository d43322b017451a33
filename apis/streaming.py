"""Helpers for answers that stream: prime the first chunk, frame SSE events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
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
    return _chain(first, chunks)


async def _empty() -> AsyncIterator[Any]:
    return
    yield  # pragma: no cover - makes this an async generator


async def _chain(first: T, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    try:
        yield first
        async for item in rest:
            yield item
    finally:
        await rest.aclose()  # type: ignore[attr-defined]


# `json.dumps(payload, separators=(",", ":"))` builds a new encoder on every
# call; one encoder, made once, writes the same text.
compact_json = json.JSONEncoder(separators=(",", ":")).encode

# A str as its JSON literal, quotes included, exactly as `json.dumps` writes it
# (C, ASCII-escaped). The streamed relays put each token's text into an event
# whose constant part was encoded once per stream.
json_string = encode_basestring_ascii


def json_object_head(fields: dict[str, Any]) -> str:
    """`{"a":1,"b":2` (no closing brace): the constant start of each event of a stream."""
    return compact_json(fields)[:-1]


def sse_event(payload: dict[str, Any] | str) -> bytes:
    """One Server-Sent Events `data:` event."""
    data = payload if isinstance(payload, str) else compact_json(payload)
    return f"data: {data}\n\n".encode()


def sse_response(events: AsyncIterator[bytes]) -> StreamingHttpResponse:
    """A `text/event-stream` response that proxies must not buffer."""
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
