"""Fair scheduling of the scarce backend slots between callers.

A backend runs a few requests per model at once (Ollama's
`OLLAMA_NUM_PARALLEL`, the embedded engine's one context). The gateway sends
it no more than that; everything else waits here, queued per caller and
served in weighted fair order: the caller with the least service so far
(divided by its weight) goes next, so one caller with 500 waiting requests
and another with 1 alternate, instead of the one waiting behind the 500.

- A *resource* is one backend's slots for one model (`"ollama/qwen2.5:14b"`).
- A caller is anything with `id`, `weight`, `max_concurrent` and
  `max_queued` (`keys.policy.Caller`; the core knows nothing of keys).
- Over its own caps a caller gets `429` (`CallerQueueFullError`); a full
  queue, or a wait longer than the queue timeout, gets `503 backend_busy`,
  with a `Retry-After` estimated from the queue and the recent service time.
- A slot is a `Lease`: released on every path (the `async with` block or
  the stream ends, fails or is cancelled). Across processes (`RedisScheduler`)
  leases expire unless renewed, so a process that dies gives its slots back.

`LocalScheduler` schedules inside one process; `RedisScheduler` (with
`REDIS_URL`) shares slots and queues between processes through atomic Redis
scripts, one round trip to take a slot and one to give it back, none per token.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.errors import BackendBusyError, RateLimitedError


class SchedulingCaller(Protocol):
    """What the scheduler needs to know of a caller."""

    @property
    def id(self) -> str: ...

    @property
    def weight(self) -> int: ...

    @property
    def max_concurrent(self) -> int: ...

    @property
    def max_queued(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Anonymous:
    """A caller for internal work (benchmarks, probes): one share, default caps."""

    id: str = "internal"
    weight: int = 1
    max_concurrent: int = 1_000_000
    max_queued: int = 1_000_000


class CallerQueueFullError(RateLimitedError):
    """429: this caller already has as many requests waiting as it may."""


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    queue_timeout: float = 300.0  # seconds a request may wait for a slot
    max_queue: int = 512  # requests waiting per resource, all callers together
    # How often a waiting stream hears that it waits (SSE comment, WS `queued`).
    notice_interval: float = 5.0
    # Cross-process leases: expire unless renewed (a dead process's slot comes back).
    lease_seconds: float = 15.0


@dataclass(frozen=True, slots=True)
class Queued:
    """A stream waits for a backend slot: `position` 1 is next. Surfaces that
    can say so without breaking their format do (SSE comment, WebSocket frame)."""

    position: int
    done: bool = False


@dataclass(slots=True)
class QueueStats:
    """What an operator sees of one resource."""

    resource: str
    slots: int
    in_use: int
    waiting: dict[str, int]  # caller id -> queued requests


class Lease:
    """One slot held; `release()` gives it back (idempotent), on every path.

    `handed_over`: in one process, whether releasing it gave the slot to a
    waiting request (set by the release).
    """

    __slots__ = ("_release", "handed_over", "queued_seconds", "released")

    def __init__(self, release: Callable[[], Awaitable[None] | None], queued_seconds: float):
        self._release = release
        self.queued_seconds = queued_seconds
        self.released = False
        self.handed_over = False

    async def release(self) -> None:
        """Give the slot back, at once: a cancelled caller still gives it back
        (with Redis, what is left to await is shielded), and in one process a
        waiting request that got the slot goes first (`_handover`)."""
        outcome = self.release_now()
        if outcome is not None:
            await asyncio.shield(outcome)
        else:
            await self._handover()

    async def _handover(self) -> None:
        """After `release_now()` in one process: when a waiting request got the
        slot, let it reach its backend before this request goes on.

        The waiter resumes in the loop's next step, and its request reaches
        the backend's socket in the step after (aiohttp writes a body in a
        task of its own before Python 3.12). The releasing request's own
        answer can wait those two steps; the backend should not wait for that
        answer to be built (traced in the flood benchmark: the backend idle
        6.5 -> 4.9 ms, median, between requests). Without a waiter: at once.
        """
        if self.handed_over:
            await asyncio.sleep(0)
            await asyncio.sleep(0)

    def release_now(self) -> Awaitable[None] | None:
        """Give the slot back now; what is left to await (with Redis), or None.

        In one process the next waiter gets the slot before this returns.
        """
        if self.released:
            return None
        self.released = True
        return self._release()


# --- in one process ------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Waiter:
    caller: SchedulingCaller
    future: asyncio.Future[None]
    enqueued: float


@dataclass(slots=True)
class _Resource:
    slots: int
    in_use: int = 0
    queues: dict[str, deque[_Waiter]] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)  # caller id -> in flight
    # Virtual time: a caller's service so far over its weight. The next slot
    # goes to the eligible caller with the lowest.
    vtime: dict[str, float] = field(default_factory=dict)
    clock: float = 0.0
    service_ewma: float = 0.0  # seconds a slot is held, smoothed
    waiting: int = 0


class LocalScheduler:
    """Weighted fair queueing of one process's requests (see the module docstring)."""

    def __init__(self, settings: SchedulerSettings | None = None) -> None:
        self.settings = settings or SchedulerSettings()
        self._resources: dict[str, _Resource] = {}

    def _resource(self, name: str, slots: int) -> _Resource:
        resource = self._resources.get(name)
        if resource is None:
            resource = self._resources[name] = _Resource(slots=max(1, slots))
        else:
            resource.slots = max(1, slots)
        return resource

    def stats(self) -> list[QueueStats]:
        return [
            QueueStats(
                resource=name,
                slots=r.slots,
                in_use=r.in_use,
                waiting={caller: len(q) for caller, q in r.queues.items() if q},
            )
            for name, r in sorted(self._resources.items())
        ]

    def position(self, resource: str, caller_id: str) -> int:
        """About how many requests are served before this caller's next one (1 = next)."""
        r = self._resources.get(resource)
        if r is None:
            return 0
        mine = r.vtime.get(caller_id, r.clock)
        ahead = sum(1 for c, q in r.queues.items() if q and r.vtime.get(c, r.clock) < mine)
        return ahead + 1

    def retry_after(self, resource: str) -> float:
        """Seconds until the queue has room again, from its length and the service time."""
        r = self._resources.get(resource)
        if r is None:
            return 1.0
        per_slot = (r.waiting + 1) / max(1, r.slots)
        return max(1.0, per_slot * (r.service_ewma or 1.0))

    async def acquire(self, *, resource: str, slots: int, caller: SchedulingCaller) -> Lease:
        """A slot of `resource` (which has `slots`), in fair order; see the module docstring."""
        r = self._resource(resource, slots)
        queued = r.queues.get(caller.id)
        running = r.running.get(caller.id, 0)
        if r.in_use < r.slots and not r.waiting and running < caller.max_concurrent:
            return self._grant(r, resource, caller, queued_seconds=0.0)
        if queued is not None and len(queued) >= caller.max_queued:
            raise _caller_queue_full(caller, self.retry_after(resource))
        if r.waiting >= self.settings.max_queue:
            raise _busy(self.retry_after(resource), "The backend's queue is full.")
        waiter = _Waiter(caller, asyncio.get_running_loop().create_future(), time.monotonic())
        if queued is None:
            queued = r.queues[caller.id] = deque()
        if not queued:
            # A caller that had nothing waiting starts at the current virtual
            # time: idle time earns no credit to burst past the others later.
            r.vtime[caller.id] = max(r.vtime.get(caller.id, 0.0), r.clock)
        queued.append(waiter)
        r.waiting += 1
        # A free slot that the waiters ahead cannot take (over their own
        # concurrency cap) may be this caller's at once.
        self._dispatch(r)
        try:
            # The future itself, awaited directly: a granted slot wakes this
            # task in one step of the loop (a shield inside wait_for took three,
            # and the backend's slot stood idle meanwhile). A cancel cancels the
            # future too, which `_dispatch` then skips.
            async with asyncio.timeout(self.settings.queue_timeout):
                await waiter.future
        except BaseException as exc:
            if waiter.future.done() and not waiter.future.cancelled():
                # Granted just as we gave up: hand the slot on.
                self._release(r, resource, caller, time.monotonic())
            else:
                waiter.future.cancel()
                self._unqueue(r, caller.id, waiter)
            if isinstance(exc, TimeoutError):
                raise _busy(
                    self.retry_after(resource),
                    f"No backend slot became free within {self.settings.queue_timeout:g} s.",
                ) from None
            raise
        return self._lease(r, resource, caller, time.monotonic() - waiter.enqueued)

    def _grant(
        self, r: _Resource, resource: str, caller: SchedulingCaller, *, queued_seconds: float
    ) -> Lease:
        r.in_use += 1
        r.running[caller.id] = r.running.get(caller.id, 0) + 1
        r.vtime[caller.id] = max(r.vtime.get(caller.id, 0.0), r.clock) + 1 / max(1, caller.weight)
        return self._lease(r, resource, caller, queued_seconds)

    def _lease(
        self, r: _Resource, resource: str, caller: SchedulingCaller, queued_seconds: float
    ) -> Lease:
        started = time.monotonic()

        def release() -> None:
            lease.handed_over = self._release(r, resource, caller, started)

        lease = Lease(release, queued_seconds)
        return lease

    def _release(
        self, r: _Resource, resource: str, caller: SchedulingCaller, started: float
    ) -> bool:
        held = time.monotonic() - started
        r.service_ewma = held if not r.service_ewma else 0.8 * r.service_ewma + 0.2 * held
        r.in_use -= 1
        left = r.running.get(caller.id, 1) - 1
        if left:
            r.running[caller.id] = left
        else:
            r.running.pop(caller.id, None)
        return self._dispatch(r)

    def _unqueue(self, r: _Resource, caller_id: str, waiter: _Waiter) -> None:
        queue = r.queues.get(caller_id)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            r.waiting -= 1
            if not queue:
                del r.queues[caller_id]

    def _dispatch(self, r: _Resource) -> bool:
        """Hand free slots to waiting callers, the lowest virtual time first;
        whether any got one."""
        woken = False
        while r.in_use < r.slots and r.waiting:
            eligible = [
                (r.vtime.get(caller_id, r.clock), caller_id)
                for caller_id, queue in r.queues.items()
                if queue and r.running.get(caller_id, 0) < queue[0].caller.max_concurrent
            ]
            if not eligible:
                break
            vtime, caller_id = min(eligible)
            r.clock = max(r.clock, vtime)
            queue = r.queues[caller_id]
            waiter = queue.popleft()
            r.waiting -= 1
            if not queue:
                del r.queues[caller_id]
            if waiter.future.done():  # cancelled meanwhile
                continue
            caller = waiter.caller
            r.in_use += 1
            r.running[caller_id] = r.running.get(caller_id, 0) + 1
            r.vtime[caller_id] = max(vtime, r.clock) + 1 / max(1, caller.weight)
            waiter.future.set_result(None)
            woken = True
        return woken


def _busy(retry_after: float, message: str) -> BackendBusyError:
    return BackendBusyError(retry_after, f"{message} Retry in {math.ceil(retry_after)} s.")


def _caller_queue_full(caller: SchedulingCaller, retry_after: float) -> CallerQueueFullError:
    error = CallerQueueFullError(retry_after)
    error.message = (
        f"Too many requests waiting for this API key ({caller.max_queued} may wait at once). "
        f"Try again in {error.retry_after} s."
    )
    error.code = "too_many_queued"
    return error


@asynccontextmanager
async def slot(
    scheduler: LocalScheduler, *, resource: str, slots: int, caller: SchedulingCaller
) -> AsyncIterator[Lease]:
    """`async with slot(...)`: a lease for the block, released on every path."""
    lease = await scheduler.acquire(resource=resource, slots=slots, caller=caller)
    try:
        yield lease
    finally:
        await lease.release()


_ticket_ids = itertools.count()


def _ticket() -> str:
    return f"{time.time_ns():x}-{next(_ticket_ids)}"


__all__ = [
    "Anonymous",
    "CallerQueueFullError",
    "Lease",
    "LocalScheduler",
    "QueueStats",
    "Queued",
    "SchedulerSettings",
    "SchedulingCaller",
    "slot",
]


# --- across processes (Redis) ------------------------------------------------------

# Every key of one resource shares the prefix KEYS[1]. A ticket is one waiting
# request; once granted, its id is its lease's id. Tickets carry
# "weight|max_concurrent|deadline_ms|alive_ms": a ticket past its deadline
# (queue timeout) or no longer kept alive by its process is skipped.
_DISPATCH_LUA = """
local function purge(p, now)
  local dead = redis.call('ZRANGEBYSCORE', p..':leases', '-inf', now)
  for _, lease in ipairs(dead) do
    local owner = redis.call('HGET', p..':owner', lease)
    if owner then
      if redis.call('HINCRBY', p..':running', owner, -1) <= 0 then
        redis.call('HDEL', p..':running', owner)
      end
    end
    redis.call('HDEL', p..':owner', lease)
    redis.call('HDEL', p..':granted', lease)
    redis.call('ZREM', p..':leases', lease)
  end
end

local function head(p, caller, now)
  while true do
    local ticket = redis.call('LINDEX', p..':q:'..caller, 0)
    if not ticket then return nil end
    local info = redis.call('HGET', p..':tickets', ticket)
    if info then
      local w, maxc, deadline, alive = string.match(info, '([^|]+)|([^|]+)|([^|]+)|([^|]+)')
      if tonumber(deadline) > now and tonumber(alive) > now then
        return ticket, tonumber(w), tonumber(maxc)
      end
    end
    redis.call('LPOP', p..':q:'..caller)
    redis.call('HDEL', p..':tickets', ticket)
    redis.call('DECR', p..':nwait')
  end
end

local function dispatch(p, slots, now, lease_ms)
  purge(p, now)
  local granted = {}
  while redis.call('ZCARD', p..':leases') < slots do
    local callers = redis.call('ZRANGE', p..':callers', 0, -1, 'WITHSCORES')
    local pick, pick_vt, pick_w
    for i = 1, #callers, 2 do
      local caller = callers[i]
      local ticket, w, maxc = head(p, caller, now)
      if not ticket then
        redis.call('ZREM', p..':callers', caller)
      elseif tonumber(redis.call('HGET', p..':running', caller) or '0') < maxc then
        pick, pick_vt, pick_w = caller, tonumber(callers[i + 1]), w
        break
      end
    end
    if not pick then break end
    local ticket = redis.call('LPOP', p..':q:'..pick)
    redis.call('HDEL', p..':tickets', ticket)
    redis.call('DECR', p..':nwait')
    redis.call('ZADD', p..':leases', now + lease_ms, ticket)
    redis.call('HSET', p..':owner', ticket, pick)
    redis.call('HINCRBY', p..':running', pick, 1)
    redis.call('HSET', p..':granted', ticket, '1')
    local clock = math.max(tonumber(redis.call('GET', p..':clock') or '0'), pick_vt)
    redis.call('SET', p..':clock', tostring(clock))
    local vt = clock + 1 / math.max(1, pick_w)
    redis.call('HSET', p..':vt', pick, tostring(vt))
    if redis.call('LLEN', p..':q:'..pick) > 0 then
      redis.call('ZADD', p..':callers', vt, pick)
    else
      redis.call('ZREM', p..':callers', pick)
    end
    table.insert(granted, ticket)
  end
  for _, ticket in ipairs(granted) do
    redis.call('PUBLISH', p..':grants', ticket)
  end
  return granted
end
"""

# ARGV: ticket caller weight max_concurrent max_queued max_queue slots now lease_ms deadline_ms
# -> {1} granted now | {0, position} queued | {-1} caller's queue full | {-2} queue full
_ACQUIRE_LUA = (
    _DISPATCH_LUA
    + """
local p = KEYS[1]
local ticket, caller = ARGV[1], ARGV[2]
local now, lease_ms = tonumber(ARGV[8]), tonumber(ARGV[9])
purge(p, now)
if redis.call('LLEN', p..':q:'..caller) >= tonumber(ARGV[5]) then return {-1} end
if tonumber(redis.call('GET', p..':nwait') or '0') >= tonumber(ARGV[6]) then return {-2} end
if redis.call('LLEN', p..':q:'..caller) == 0 then
  local clock = tonumber(redis.call('GET', p..':clock') or '0')
  local vt = math.max(tonumber(redis.call('HGET', p..':vt', caller) or '0'), clock)
  redis.call('HSET', p..':vt', caller, tostring(vt))
  redis.call('ZADD', p..':callers', vt, caller)
end
redis.call('RPUSH', p..':q:'..caller, ticket)
redis.call('HSET', p..':tickets', ticket,
  ARGV[3]..'|'..ARGV[4]..'|'..ARGV[10]..'|'..tostring(now + lease_ms))
redis.call('INCR', p..':nwait')
dispatch(p, tonumber(ARGV[7]), now, lease_ms)
if redis.call('HGET', p..':granted', ticket) then return {1} end
return {0, redis.call('ZRANK', p..':callers', caller) or 0}
"""
)

# ARGV: lease slots now lease_ms held_ms. Also takes back a ticket that was
# never granted (a waiter that gave up): then it leaves the queue.
_RELEASE_LUA = (
    _DISPATCH_LUA
    + """
local p, lease = KEYS[1], ARGV[1]
local now = tonumber(ARGV[3])
if redis.call('ZREM', p..':leases', lease) == 1 then
  local owner = redis.call('HGET', p..':owner', lease)
  if owner and redis.call('HINCRBY', p..':running', owner, -1) <= 0 then
    redis.call('HDEL', p..':running', owner)
  end
  redis.call('HDEL', p..':owner', lease)
  local held = tonumber(ARGV[5])
  local ewma = tonumber(redis.call('GET', p..':service_ms') or '0')
  if ewma == 0 then ewma = held else ewma = 0.8 * ewma + 0.2 * held end
  redis.call('SET', p..':service_ms', tostring(ewma))
elseif redis.call('HDEL', p..':tickets', lease) == 1 then
  for _, caller in ipairs(redis.call('ZRANGE', p..':callers', 0, -1)) do
    if redis.call('LREM', p..':q:'..caller, 1, lease) == 1 then
      redis.call('DECR', p..':nwait')
      if redis.call('LLEN', p..':q:'..caller) == 0 then
        redis.call('ZREM', p..':callers', caller)
      end
      break
    end
  end
end
redis.call('HDEL', p..':granted', lease)
dispatch(p, tonumber(ARGV[2]), now, tonumber(ARGV[4]))
return 1
"""
)

# ARGV: slots now lease_ms ticket -> 1 when the ticket holds a slot (after a
# dispatch: a lease that expired since the last call frees its slot here).
_POKE_LUA = (
    _DISPATCH_LUA
    + """
local p = KEYS[1]
dispatch(p, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
return redis.call('HEXISTS', p..':granted', ARGV[4])
"""
)

# ARGV: now lease_ms ticket... : leases held and tickets waiting stay alive.
_RENEW_LUA = """
local p = KEYS[1]
local now, lease_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', p..':leases', id) then
    redis.call('ZADD', p..':leases', 'XX', now + lease_ms, id)
  else
    local info = redis.call('HGET', p..':tickets', id)
    if info then
      local w, maxc, deadline = string.match(info, '([^|]+)|([^|]+)|([^|]+)|')
      redis.call('HSET', p..':tickets', id,
        w..'|'..maxc..'|'..deadline..'|'..tostring(now + lease_ms))
    end
  end
end
return 1
"""

# ARGV: slots now lease_ms -> {in_use, service_ms, waiting, caller, count, ...}
_STATS_LUA = (
    _DISPATCH_LUA
    + """
local p = KEYS[1]
local now, lease_ms = tonumber(ARGV[2]), tonumber(ARGV[3])
dispatch(p, tonumber(ARGV[1]), now, lease_ms)
local out = {redis.call('ZCARD', p..':leases'), redis.call('GET', p..':service_ms') or '0',
             redis.call('GET', p..':nwait') or '0'}
for _, caller in ipairs(redis.call('ZRANGE', p..':callers', 0, -1)) do
  table.insert(out, caller)
  table.insert(out, redis.call('LLEN', p..':q:'..caller))
end
return out
"""
)


@dataclass(slots=True)
class _Held:
    resource: str
    slots: int


class RedisScheduler:
    """`LocalScheduler`'s rules, with slots and queues in Redis for every process.

    Taking a slot is one script call (granted at once when one is free); a
    waiter is woken by a published grant, and checks every second in case
    it missed one. Giving a slot back is one call. Leases and waiting tickets
    stay alive only while their process renews them (every third of
    `lease_seconds`), so a process that dies frees its slots within a lease.
    """

    PREFIX = "localai:sched:"

    def __init__(self, url: str, settings: SchedulerSettings | None = None) -> None:
        import redis.asyncio as aioredis

        self.settings = settings or SchedulerSettings()
        self._url = url
        self._aioredis = aioredis
        self._loops: dict[int, _LoopState] = {}
        self._known: dict[str, int] = {}  # resource -> slots, for stats

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._loops.get(id(loop))
        if state is None or state.loop is not loop:
            client = self._aioredis.Redis.from_url(self._url, socket_timeout=None)
            state = self._loops[id(loop)] = _LoopState(
                loop=loop, client=client, lease_seconds=self.settings.lease_seconds
            )
            state.acquire = client.register_script(_ACQUIRE_LUA)
            state.release = client.register_script(_RELEASE_LUA)
            state.renew = client.register_script(_RENEW_LUA)
            state.stats = client.register_script(_STATS_LUA)
            state.poke = client.register_script(_POKE_LUA)
        return state

    def _key(self, resource: str) -> str:
        return self.PREFIX + resource

    async def acquire(self, *, resource: str, slots: int, caller: SchedulingCaller) -> Lease:
        state = self._state()
        self._known[resource] = slots
        key = self._key(resource)
        ticket = _ticket()
        lease_ms = int(self.settings.lease_seconds * 1000)
        now = _now_ms()
        deadline = now + int(self.settings.queue_timeout * 1000)
        granted = state.waiter(key, ticket)
        state.held[ticket] = _Held(resource, slots)
        state.keep_alive()
        started = time.monotonic()
        try:
            await state.listening(key)
            outcome = await state.acquire(
                keys=[key],
                args=[
                    ticket,
                    caller.id,
                    max(1, caller.weight),
                    caller.max_concurrent,
                    caller.max_queued,
                    self.settings.max_queue,
                    slots,
                    now,
                    lease_ms,
                    deadline,
                ],
            )
            code = int(outcome[0])
            if code == -1:
                raise _caller_queue_full(caller, await self.retry_after(resource))
            if code == -2:
                raise _busy(await self.retry_after(resource), "The backend's queue is full.")
            if code == 0:
                await self._wait(state, key, ticket, granted, deadline, slots)
        except BaseException as exc:
            state.forget(key, ticket)
            # Gives back a slot granted meanwhile, or leaves the queue.
            await self._give_back(state, resource, ticket, slots, started)
            if isinstance(exc, TimeoutError):
                raise _busy(
                    await self.retry_after(resource),
                    f"No backend slot became free within {self.settings.queue_timeout:g} s.",
                ) from None
            raise
        state.forget_waiter(key, ticket)
        queued = time.monotonic() - started
        held_from = time.monotonic()

        async def release() -> None:
            await self._give_back(self._state(), resource, ticket, slots, held_from)

        return Lease(release, queued)

    async def _wait(
        self,
        state: _LoopState,
        key: str,
        ticket: str,
        granted: asyncio.Event,
        deadline: int,
        slots: int,
    ) -> None:
        lease_ms = int(self.settings.lease_seconds * 1000)
        while True:
            remaining = (deadline - _now_ms()) / 1000
            if remaining <= 0:
                raise TimeoutError
            try:
                await asyncio.wait_for(granted.wait(), min(1.0, remaining))
                return
            except TimeoutError:
                # No grant heard for a second: a missed message, or a slot
                # whose holder died (its lease expires); ask, dispatching.
                if await state.poke(keys=[key], args=[slots, _now_ms(), lease_ms, ticket]):
                    return

    async def _give_back(
        self, state: _LoopState, resource: str, ticket: str, slots: int, since: float
    ) -> None:
        state.held.pop(ticket, None)
        held_ms = int((time.monotonic() - since) * 1000)
        lease_ms = int(self.settings.lease_seconds * 1000)
        await asyncio.shield(
            state.release(
                keys=[self._key(resource)], args=[ticket, slots, _now_ms(), lease_ms, held_ms]
            )
        )

    async def retry_after(self, resource: str) -> float:
        stats = await self._raw_stats(resource, self._known.get(resource, 1))
        waiting, service_ms, slots = stats[2], stats[1], max(1, self._known.get(resource, 1))
        return max(1.0, (int(waiting) + 1) / slots * (float(service_ms) / 1000 or 1.0))

    async def _raw_stats(self, resource: str, slots: int) -> list[Any]:
        state = self._state()
        lease_ms = int(self.settings.lease_seconds * 1000)
        return await state.stats(keys=[self._key(resource)], args=[slots, _now_ms(), lease_ms])

    async def stats_async(self) -> list[QueueStats]:
        out = []
        for resource, slots in sorted(self._known.items()):
            raw = await self._raw_stats(resource, slots)
            pairs = raw[3:]
            out.append(
                QueueStats(
                    resource=resource,
                    slots=slots,
                    in_use=int(raw[0]),
                    waiting={_text(pairs[i]): int(pairs[i + 1]) for i in range(0, len(pairs), 2)},
                )
            )
        return out

    async def reset(self) -> None:
        """Forget every resource's state (tests)."""
        client = self._state().client
        async for key in client.scan_iter(match=self.PREFIX + "*"):
            await client.delete(key)


@dataclass(eq=False)
class _LoopState:
    """One event loop's Redis client, grant listener and renewal task."""

    loop: asyncio.AbstractEventLoop
    client: Any
    acquire: Any = None
    release: Any = None
    renew: Any = None
    stats: Any = None
    poke: Any = None
    held: dict[str, _Held] = field(default_factory=dict)  # ticket -> resource (held or waiting)
    events: dict[str, asyncio.Event] = field(default_factory=dict)
    channels: set[str] = field(default_factory=set)
    pubsub: Any = None
    listener: asyncio.Task[None] | None = None
    renewer: asyncio.Task[None] | None = None
    lease_seconds: float = 15.0

    def waiter(self, key: str, ticket: str) -> asyncio.Event:
        event = self.events[ticket] = asyncio.Event()
        return event

    def forget_waiter(self, key: str, ticket: str) -> None:
        self.events.pop(ticket, None)

    def forget(self, key: str, ticket: str) -> None:
        self.events.pop(ticket, None)

    async def listening(self, key: str) -> None:
        channel = key + ":grants"
        if channel in self.channels:
            return
        if self.pubsub is None:
            self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        await self.pubsub.subscribe(channel)
        self.channels.add(channel)
        if self.listener is None or self.listener.done():
            self.listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        while True:
            try:
                message = await self.pubsub.get_message(timeout=1.0)
            except Exception:  # a dropped connection: waiters fall back to asking
                await asyncio.sleep(1.0)
                continue
            if message and message.get("type") == "message":
                event = self.events.get(_text(message["data"]))
                if event is not None:
                    event.set()

    def keep_alive(self) -> None:
        if self.renewer is None or self.renewer.done():
            self.renewer = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        while self.held:
            await asyncio.sleep(self.lease_seconds / 3)
            by_resource: dict[str, list[str]] = {}
            for ticket, held in list(self.held.items()):
                by_resource.setdefault(RedisScheduler.PREFIX + held.resource, []).append(ticket)
            for key, tickets in by_resource.items():
                try:
                    await self.renew(
                        keys=[key], args=[_now_ms(), int(self.lease_seconds * 1000), *tickets]
                    )
                except Exception:  # renew again next time; a lease outlives two misses
                    continue


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
