"""Embedding coalescing: requests that wait for the same slot share one backend call.

A GPU embeds 64 short texts in about the time it embeds one: the cost is the
call, not the input. So embedding requests for the same backend, model and
options (`BatchKey`) that are waiting for a slot together are merged into one
backend call of at most `max_inputs` inputs, and each request gets back
exactly its own vectors, in its own order.

How a batch forms and leaves:

- A request that finds no batch waiting opens one, and the batch asks the
  scheduler for a slot in that first request's fair turn (its caller's queue).
- Requests that arrive while it waits join it (they *ride along*: they take
  no place in the scheduler's queues), until it holds `max_inputs` inputs;
  then it is sealed (it keeps its place) and the next request opens a new one.
- As soon as the slot is granted the batch leaves: no timer, unless a
  `window` is configured (then it may wait that long for company, never
  longer, and not at all once full). A request that finds the slot free is
  therefore sent at once, alone.
- A request that leaves while its batch waits (the client went away) is
  taken out: its inputs are never sent. A batch everyone left leaves the
  scheduler's queue; the backend never sees it.
- A rider counts against its caller's caps: a caller may have at most
  `min(max_queued, max_concurrent)` requests riding in waiting batches; past
  that `submit` answers None and the request waits in the scheduler alone,
  where its caps apply as to any request.

The service supplies `serve(batch)`, which takes the slot, calls the backend
and hands each member its outcome (`Batch.launch`, `Batch.deliver`); this
module owns only the grouping and the split of one result into shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field, replace

from gateway.backends.base import EmbedResult
from gateway.errors import APIError, BackendError
from gateway.scheduler import SchedulingCaller


@dataclass(frozen=True, slots=True)
class BatchKey:
    """What must be equal for requests to share a call: everything that changes the result."""

    backend: str
    model: str  # normalised (`llama3.2` and `llama3.2:latest` share)
    dimensions: int | None = None
    truncate: bool | None = None
    normalize: bool = True
    keep_alive: Hashable = None
    extra: Hashable = None  # backend options, frozen (see `frozen`)


def frozen(value: object) -> Hashable:
    """A hashable, order-insensitive form of a JSON-like value (options, keep_alive)."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(frozen(v) for v in value)
    return value if isinstance(value, Hashable) else repr(value)


@dataclass(slots=True)
class Share:
    """One request's part of a batched call: its own result and where it was served."""

    result: EmbedResult
    backend: str
    queued_seconds: float  # from its arrival to the batch leaving for the backend
    batch_inputs: int  # inputs in the call it rode in (1 request alone: its own)


@dataclass(eq=False, slots=True)
class Member:
    inputs: list[str]
    caller: SchedulingCaller
    future: asyncio.Future[Share]
    arrived: float = field(default_factory=time.monotonic)

    @property
    def here(self) -> bool:
        """Still waiting for its answer (not gone, not answered)."""
        return not self.future.done()


class Batch:
    """Requests that will share one backend call (see the module docstring)."""

    def __init__(self, key: BatchKey, coalescer: Coalescer) -> None:
        self.key = key
        self.members: list[Member] = []
        self.inputs = 0
        self.sealed = False  # no one joins any more (full, or launched)
        self.launched_at: float | None = None
        self.task: asyncio.Task[None] | None = None
        self._coalescer = coalescer
        self._full = asyncio.Event()

    def fits(self, count: int) -> bool:
        return not self.sealed and self.inputs + count <= self._coalescer.max_inputs

    def leader(self) -> Member | None:
        """The first member still here: the batch waits in its caller's turn."""
        return next((m for m in self.members if m.here), None)

    def add(self, member: Member) -> None:
        self.members.append(member)
        self.inputs += len(member.inputs)
        if self.inputs >= self._coalescer.max_inputs:
            self.seal()

    def remove(self, member: Member) -> None:
        """A member left before the batch did: its inputs will not be sent."""
        if self.launched_at is None and member in self.members:
            self.members.remove(member)
            self.inputs -= len(member.inputs)
            self._coalescer._ride_done(member)

    def seal(self) -> None:
        if not self.sealed:
            self.sealed = True
            self._full.set()
            self._coalescer._closed(self)

    async def gathered(self, window: float) -> None:
        """Wait up to `window` seconds for more members (not at all when 0, or full)."""
        if window > 0 and not self.sealed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), window)

    def launch(self) -> list[Member]:
        """Seal the batch and return the members still here: their inputs go now."""
        self.seal()
        if self.launched_at is None:
            self.launched_at = time.monotonic()
            for member in self.members:
                self._coalescer._ride_done(member)
        return [m for m in self.members if m.here]

    def deliver(
        self, members: list[Member], outcomes: list[EmbedResult | APIError], *, backend: str
    ) -> None:
        """Each member's own result (or error), as `serve` computed them."""
        launched = self.launched_at or time.monotonic()
        batch_inputs = sum(len(m.inputs) for m in members)
        for member, outcome in zip(members, outcomes, strict=True):
            if not member.here:
                continue
            if isinstance(outcome, APIError):
                member.future.set_exception(copy.copy(outcome))
            else:
                member.future.set_result(
                    Share(outcome, backend, launched - member.arrived, batch_inputs)
                )

    def fail(self, members: list[Member], error: Exception) -> None:
        """These members (those still here) get `error`."""
        for member in members:
            if member.here:
                member.future.set_exception(copy.copy(error))


def shares_of(result: EmbedResult, members: list[Member]) -> list[EmbedResult]:
    """Split one call's result into each member's own, in member order.

    Vectors: each member's slice, in its input order. Tokens: the backend's
    per-input counts when it gives them (exact); else its total split in
    proportion to each member's characters, in whole tokens that add up to
    the total exactly (the records of a batch sum to what the backend counted).
    """
    sizes = [len(m.inputs) for m in members]
    if len(result.embeddings) != sum(sizes):
        raise BackendError(
            f"The backend returned {len(result.embeddings)} vectors for {sum(sizes)} inputs."
        )
    if result.input_tokens is not None and len(result.input_tokens) == sum(sizes):
        counts = result.input_tokens
        tokens, start = [], 0
        for size in sizes:
            tokens.append(sum(counts[start : start + size]))
            start += size
    else:
        tokens = split_total(result.prompt_tokens, [sum(map(len, m.inputs)) for m in members])
    shares, start = [], 0
    for size, count in zip(sizes, tokens, strict=True):
        own = result.input_tokens[start : start + size] if result.input_tokens else None
        shares.append(
            replace(
                result,
                embeddings=result.embeddings[start : start + size],
                prompt_tokens=count,
                input_tokens=own,
            )
        )
        start += size
    return shares


def split_total(total: int, weights: list[int]) -> list[int]:
    """`total` in whole parts proportional to `weights`, summing to `total` exactly.

    Largest remainders, ties to the earlier part; all-zero weights split evenly.
    """
    if not weights:
        return []
    if sum(weights) <= 0:
        weights = [1] * len(weights)
    whole = sum(weights)
    exact = [total * weight for weight in weights]
    parts = [value // whole for value in exact]
    left = total - sum(parts)
    for index in sorted(range(len(parts)), key=lambda i: (-(exact[i] % whole), i))[:left]:
        parts[index] += 1
    return parts


Serve = Callable[["Batch"], Awaitable[None]]


class Coalescer:
    """The batches waiting for a slot in this process (see the module docstring)."""

    def __init__(self, *, max_inputs: int, window: float) -> None:
        self.max_inputs = max(1, max_inputs)
        self.window = max(0.0, window)
        # (event loop, key) -> the batch others may still join.
        self._open: dict[tuple[asyncio.AbstractEventLoop, BatchKey], Batch] = {}
        self._riding: dict[str, int] = {}  # caller id -> members of batches not yet launched
        self._tasks: set[asyncio.Task[None]] = set()

    def waiting(self) -> int:
        """Requests in batches that have not left for the backend yet (operators, tests)."""
        return sum(self._riding.values())

    async def submit(
        self, *, key: BatchKey, inputs: list[str], caller: SchedulingCaller, serve: Serve
    ) -> Share | None:
        """This request's share of a batched call; None: it must go alone (its
        caller already rides in batches as much as its caps allow).

        Errors are the batch's: those of taking a slot or of the backend call
        (see `serve`). Cancelling the caller's task takes it out of its batch.
        """
        loop = asyncio.get_running_loop()
        batch = self._open.get((loop, key))
        if batch is not None and not batch.fits(len(inputs)):
            batch.seal()  # it keeps its place; this request opens the next one
            batch = None
        riding = self._riding.get(caller.id, 0)
        if batch is not None and riding >= min(caller.max_queued, caller.max_concurrent):
            return None
        member = Member(list(inputs), caller, loop.create_future())
        self._riding[caller.id] = riding + 1
        if batch is None:
            batch = Batch(key, self)
            self._open[(loop, key)] = batch
            batch.add(member)
            batch.task = loop.create_task(self._run(batch, serve))
            self._tasks.add(batch.task)
            batch.task.add_done_callback(self._tasks.discard)
        else:
            batch.add(member)
        try:
            return await member.future
        except asyncio.CancelledError:
            batch.remove(member)
            if batch.leader() is None and batch.task is not None:
                batch.task.cancel()  # leaves the scheduler's queue, or ends the call
            raise

    def _closed(self, batch: Batch) -> None:
        for slot, open_batch in list(self._open.items()):
            if open_batch is batch:
                del self._open[slot]

    def _ride_done(self, member: Member) -> None:
        count = self._riding.get(member.caller.id, 0) - 1
        if count > 0:
            self._riding[member.caller.id] = count
        else:
            self._riding.pop(member.caller.id, None)

    async def _run(self, batch: Batch, serve: Serve) -> None:
        try:
            await serve(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every member still here hears it
            batch.fail(batch.members, exc)
        finally:
            batch.launch()  # nobody counts as waiting any more
            # `serve` answers every member it launched: anyone else hears this.
            batch.fail(batch.members, BackendError("The batched embedding call ended early."))
