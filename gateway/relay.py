"""The one stream relay: backend chunks in, a surface's frames out.

Every streamed answer of every surface (native SSE, OpenAI SSE, Ollama
NDJSON, WebSocket frames, Ollama's model-management progress) goes through
`relay`. A surface supplies only its `StreamEncoder`; the relay does the rest,
the same way everywhere:

- the meter is charged with the backend's counts on the final chunk, and
  counts the pieces relayed before it, so a stream cut early (client gone,
  backend failed, shutdown) is charged for what it delivered;
- a backend failure after the stream began ends it with the surface's
  terminal error event, never with its success terminator; so does a token
  stream that ends without its final chunk;
- a client that goes away (the iterator closed or cancelled) closes the
  backend stream, so the backend stops generating (or the request leaves the
  scheduler's queue), and the meter says `client_disconnected`;
- while a stream waits for a backend slot, the encoder may say so
  (`queued`: an SSE comment, a WebSocket frame; nothing where the format
  has no such thing);
- a request for `n` choices is ONE stream of n interleaved generations
  (`gateway.service` marks each chunk with its choice's `index`): it is
  complete once every choice has sent its final chunk, each charged as it
  arrives; a failure of any ends them all with the one error event.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from typing import Any, Generic, Protocol, TypeVar

from gateway.errors import APIError, BackendError, error_body
from gateway.metering import UsageMeter
from gateway.scheduler import Queued
from gateway.streaming import sse_event, sse_queued

C = TypeVar("C", contravariant=True)
F = TypeVar("F")


class StreamEncoder(Protocol[C, F]):
    """How one surface writes a stream. Only `piece` runs once per token: keep it cheap."""

    def opening(self) -> Iterable[F]:
        """Frames before the first chunk (OpenAI's role delta); usually none."""
        ...

    def piece(self, chunk: C) -> F | None:
        """The frame of a chunk that is not the last (None: nothing to send)."""
        ...

    def closing(self, chunk: C) -> Iterable[F]:
        """The frames of the final chunk, which carries the backend's counts
        (with `n` choices: once per choice, in the order they finish)."""
        ...

    def failure(self, error: APIError) -> F:
        """The terminal error event."""
        ...

    def success(self) -> F | None:
        """The success terminator (`data: [DONE]`), sent only after a complete stream."""
        ...

    def queued(self, notice: Queued) -> F | None:
        """While the stream waits for a backend slot (None: the format has no way to say so)."""
        ...


class BaseEncoder(Generic[C, F]):
    """Defaults: nothing before, nothing special at the end, no terminator."""

    __slots__ = ()

    def opening(self) -> Iterable[F]:
        return ()

    def closing(self, chunk: C) -> Iterable[F]:
        frame = self.piece(chunk)
        return () if frame is None else (frame,)

    def piece(self, chunk: C) -> F | None:  # pragma: no cover - every encoder has one
        raise NotImplementedError

    def failure(self, error: APIError) -> F:  # pragma: no cover - every encoder has one
        raise NotImplementedError

    def success(self) -> F | None:
        return None

    def queued(self, notice: Queued) -> F | None:
        return None


class SSEEncoder(BaseEncoder[C, bytes]):
    """Server-Sent Events: an error event on failure, `data: [DONE]` after a
    complete stream, and a comment while waiting for a backend slot."""

    __slots__ = ()

    def failure(self, error: APIError) -> bytes:
        return sse_event(error_body(error))

    def success(self) -> bytes:
        return sse_event("[DONE]")

    def queued(self, notice: Queued) -> bytes:
        return sse_queued(notice)


INCOMPLETE = "The backend ended the answer before it was complete."


async def relay(
    chunks: AsyncIterator[Any],
    encoder: StreamEncoder[Any, F],
    meter: UsageMeter,
    *,
    tokens: bool = True,
    choices: int = 1,
) -> AsyncIterator[F]:
    """The surface's frames for `chunks`, charging `meter` (see the module docstring).

    `tokens=False` relays a stream that has no final chunk and no token
    counts (Ollama's pull/push/create progress). `choices`: how many final
    chunks make the stream complete (one per choice of a request's `n`).
    """
    complete = not tokens
    unfinished = choices
    failed = False
    try:
        for frame in encoder.opening():
            yield frame
        async for chunk in chunks:
            if chunk.__class__ is Queued:
                frame = encoder.queued(chunk)
                if frame is not None:
                    yield frame
                continue
            if tokens and meter.first_token_at is None:
                meter.first_token_at = time.monotonic()  # the time to first token
            if tokens and chunk.done:
                unfinished -= 1
                complete = unfinished <= 0
                meter.charge(
                    prompt_tokens=chunk.prompt_tokens, completion_tokens=chunk.completion_tokens
                )
                for frame in encoder.closing(chunk):
                    yield frame
                continue
            if tokens:
                meter.relayed_tokens += 1
            frame = encoder.piece(chunk)
            if frame is not None:
                yield frame
        if not complete:
            raise BackendError(INCOMPLETE)
    except APIError as exc:
        failed = True
        meter.cut(error_code=exc.code)
        yield encoder.failure(exc)
    finally:
        if not (complete or failed):
            meter.cut(error_code="client_disconnected")
        await chunks.aclose()  # type: ignore[attr-defined]
    if not failed:
        terminator = encoder.success()
        if terminator is not None:
            yield terminator
