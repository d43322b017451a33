"""Drain on shutdown: finish what is running, refuse what is new, then exit.

On SIGTERM (installed by the ASGI lifespan, so under uvicorn) this process:

1. drains at once: `/readyz` answers 503, new requests and new WebSocket chats
   are refused with `503 server_shutting_down` and `Retry-After`, while the
   server keeps its listener open so that probes still get an answer;
2. gives the work in flight (HTTP requests, WebSocket generations) up to the
   drain window (GATEWAY_DRAIN_SECONDS) to finish;
3. then interrupts what is still waiting on the backend: the stream or call
   raises `ServerShuttingDownError`, which every surface already turns into
   its terminal error event (SSE error event, Ollama's `{"error"}` line, the
   WebSocket `error` frame), never into a success terminator;
4. then hands the signal to the server's own handler, which closes the
   listener and the connections and runs the lifespan shutdown.

The state is per process (one event loop). Interrupting is cancelling the
task that awaits the backend and turning that one cancellation into the
error, so the surfaces need no drain code of their own.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from gateway.errors import ServerShuttingDownError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# After the window, how long the interrupted work gets to send its error
# events and write its usage before the server takes over.
INTERRUPT_GRACE_SECONDS = 2.0

INTERRUPTED_MESSAGE = (
    "This server is shutting down and stopped before the answer was complete. "
    "Retry the request; another one will answer."
)


class _State:
    """What this process's drain knows: is it on, how much work is in flight."""

    def __init__(self) -> None:
        self.draining = False
        # The window is over: whatever still awaits the backend is interrupted.
        self.interrupting = False
        # A second SIGTERM: end the window now.
        self.hurry = False
        # HTTP requests and WebSocket generations in flight.
        self.work = 0
        # Set when `work` drops to 0 or the drain should hurry (on the drain's loop).
        self.wake: asyncio.Event | None = None
        # Backend streams and calls in flight, to interrupt after the window.
        self.interruptible: weakref.WeakSet[_Interruptible] = weakref.WeakSet()
        self.task: asyncio.Task[None] | None = None


_state = _State()


def draining() -> bool:
    """True once this process has started to drain: take on no new work."""
    return _state.draining


def admit() -> None:
    """Raise `ServerShuttingDownError` when the process drains (new work is refused)."""
    if _state.draining:
        raise ServerShuttingDownError()


def work_begin() -> None:
    """Count one piece of work in flight (the drain waits for it)."""
    _state.work += 1


def work_end() -> None:
    """The piece of work counted by `work_begin` is over."""
    _state.work -= 1
    if _state.work == 0 and _state.wake is not None:
        _state.wake.set()


def task_track(task: asyncio.Task[Any]) -> None:
    """Count `task` as work in flight until it is done (a WebSocket generation)."""
    work_begin()
    task.add_done_callback(lambda _: work_end())


class _Interruptible:
    """One await on the backend that the end of the window may cut short."""

    __slots__ = ("__weakref__", "interrupted", "task")

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None
        self.interrupted = _state.interrupting
        _state.interruptible.add(self)

    def interrupt(self) -> None:
        self.interrupted = True
        if self.task is not None:
            self.task.cancel()

    def converts(self, task: asyncio.Task[Any] | None) -> bool:
        """Whether the cancellation just caught was this drain's, and only its."""
        return self.interrupted and task is not None and task.uncancel() == 0


class _DrainableStream(_Interruptible):
    """A backend stream, chunk for chunk, that the end of the window interrupts."""

    __slots__ = ("_chunks",)

    def __init__(self, chunks: AsyncIterator[Any]) -> None:
        super().__init__()
        self._chunks = chunks

    def __aiter__(self) -> _DrainableStream:
        return self

    async def __anext__(self) -> Any:
        if self.interrupted:
            await self.aclose()
            raise ServerShuttingDownError(INTERRUPTED_MESSAGE)
        task = self.task = asyncio.current_task()
        try:
            return await self._chunks.__anext__()
        except asyncio.CancelledError:
            if self.converts(task):
                raise ServerShuttingDownError(INTERRUPTED_MESSAGE) from None
            raise
        finally:
            self.task = None

    async def aclose(self) -> None:
        _state.interruptible.discard(self)
        await self._chunks.aclose()  # type: ignore[attr-defined]


def stream_drainable(chunks: AsyncIterator[T]) -> AsyncIterator[T]:
    """`chunks`, except that the end of the drain window ends it with `ServerShuttingDownError`.

    Closing the returned iterator closes `chunks`.
    """
    return _DrainableStream(chunks)


async def call_drainable(call: Awaitable[T]) -> T:
    """Await `call`; at the end of the drain window, raise `ServerShuttingDownError` instead."""
    waiting = _Interruptible()
    if waiting.interrupted:
        if asyncio.iscoroutine(call):
            call.close()
        raise ServerShuttingDownError()
    task = waiting.task = asyncio.current_task()
    try:
        return await call
    except asyncio.CancelledError:
        if waiting.converts(task):
            raise ServerShuttingDownError() from None
        raise
    finally:
        waiting.task = None
        _state.interruptible.discard(waiting)


async def _settled(within: float) -> bool:
    """Wait up to `within` s for the work in flight to end; whether it did."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    wake = _state.wake = asyncio.Event()
    while _state.work > 0 and not _state.hurry:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        wake.clear()
        try:
            await asyncio.wait_for(wake.wait(), remaining)
        except TimeoutError:
            return False
    return _state.work <= 0


async def drain_run(*, window: float) -> None:
    """Drain this process: refuse new work, let live work finish for up to
    `window` seconds, then interrupt what still waits on the backend and give
    it INTERRUPT_GRACE_SECONDS to say so to its client."""
    _state.draining = True
    logger.warning(
        "Shutting down: draining %d requests and generations for up to %g s "
        "(GATEWAY_DRAIN_SECONDS); /readyz and new requests answer 503",
        _state.work,
        window,
    )
    if await _settled(window):
        logger.warning("Drained: nothing left in flight")
        return
    _state.interrupting = True
    live = list(_state.interruptible)
    logger.warning(
        "Drain window over: interrupting %d backend streams and calls (%d requests and "
        "generations in flight)",
        len(live),
        _state.work,
    )
    for waiting in live:
        waiting.interrupt()
    _state.hurry = False
    if not await _settled(INTERRUPT_GRACE_SECONDS):
        logger.warning(
            "%d requests still in flight; the server's own shutdown takes over", _state.work
        )


def _hand_over(signum: int, previous: Any) -> None:
    """Give the signal to whoever handled it before us (uvicorn's graceful shutdown)."""
    loop = asyncio.get_running_loop()
    loop.remove_signal_handler(signum)
    if previous is None:
        previous = signal.SIG_DFL
    signal.signal(signum, previous)
    if callable(previous):
        previous(signum, None)
    elif previous == signal.SIG_DFL:
        signal.raise_signal(signum)


def sigterm_drain_install(
    *, window: float, before_exit: Callable[[], Awaitable[None]] | None = None
) -> bool:
    """Make SIGTERM drain this process first (`drain_run`), run `before_exit`,
    then reach the handler that was installed before (the server's own).

    A second SIGTERM ends the window at once. Call from the event loop of the
    main thread (the ASGI lifespan startup); returns False where signals cannot
    be handled there (another thread, no signal support).
    """
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)

    async def drain_then_exit() -> None:
        try:
            await drain_run(window=window)
            if before_exit is not None:
                await before_exit()
        except Exception:  # whatever happens, the server must still shut down
            logger.exception("Draining failed")
        finally:
            _hand_over(signal.SIGTERM, previous)

    def on_sigterm() -> None:
        if _state.task is not None:
            _state.hurry = True
            if _state.wake is not None:
                _state.wake.set()
            return
        _state.task = loop.create_task(drain_then_exit(), name="drain")

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (RuntimeError, ValueError, NotImplementedError) as exc:
        logger.warning("No drain on SIGTERM in this process: %s", exc)
        return False
    return True


def drain_reset() -> None:
    """Forget any drain (tests)."""
    global _state
    _state = _State()
