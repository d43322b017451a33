"""The fair scheduler: who gets the backend's slot next, caps, timeouts, cancels."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from gateway.errors import BackendBusyError
from gateway.scheduler import CallerQueueFullError, LocalScheduler, SchedulerSettings

pytestmark = pytest.mark.asyncio


@dataclass(frozen=True)
class Who:
    id: str
    weight: int = 1
    max_concurrent: int = 1000
    max_queued: int = 1000


A, B, C = Who("a"), Who("b"), Who("c")


async def _queued(scheduler: LocalScheduler, count: int) -> None:
    """Wait until `count` requests wait in the queue (tasks reach it when the loop runs them)."""
    while sum(sum(s.waiting.values()) for s in scheduler.stats()) < count:  # noqa: ASYNC110
        await asyncio.sleep(0)


async def _served_order(
    scheduler: LocalScheduler, arrivals: list[Who], slots: int = 1
) -> list[str]:
    """Queue `arrivals` (in order) behind one held slot, then serve them one by one."""
    order: list[str] = []
    holder = await scheduler.acquire(resource="r", slots=slots, caller=Who("first"))

    async def request(caller: Who) -> None:
        lease = await scheduler.acquire(resource="r", slots=slots, caller=caller)
        order.append(caller.id)
        await lease.release()

    tasks = []
    for count, caller in enumerate(arrivals, start=1):
        tasks.append(asyncio.create_task(request(caller)))
        await _queued(scheduler, count)  # arrival order is the test's input
    await holder.release()
    await asyncio.gather(*tasks)
    return order


async def test_it_serves_a_caller_with_one_request_before_anothers_backlog() -> None:
    order = await _served_order(LocalScheduler(), [A] * 50 + [B])

    assert order.index("b") <= 1  # next, or right after the one A request already chosen


async def test_it_alternates_between_callers_with_backlogs() -> None:
    order = await _served_order(LocalScheduler(), [A] * 4 + [B] * 4)

    assert order == ["a", "b"] * 4


async def test_it_gives_a_heavier_caller_its_share() -> None:
    heavy = Who("heavy", weight=3)
    order = await _served_order(LocalScheduler(), [A] * 8 + [heavy] * 8)

    assert order[:8].count("heavy") == 6


async def test_a_caller_over_its_concurrency_cap_waits_while_others_are_served() -> None:
    capped = Who("capped", max_concurrent=1)
    scheduler = LocalScheduler()
    held = await scheduler.acquire(resource="r", slots=2, caller=capped)
    waiting = asyncio.create_task(scheduler.acquire(resource="r", slots=2, caller=capped))
    await _queued(scheduler, 1)

    other = await asyncio.wait_for(scheduler.acquire(resource="r", slots=2, caller=B), 1)

    assert not waiting.done()
    await held.release()
    second = await asyncio.wait_for(waiting, 1)
    await second.release()
    await other.release()


async def test_a_caller_over_its_queue_cap_is_refused_with_429() -> None:
    small = Who("small", max_queued=2)
    scheduler = LocalScheduler()
    held = await scheduler.acquire(resource="r", slots=1, caller=A)
    queued = [asyncio.create_task(scheduler.acquire(resource="r", slots=1, caller=small))]
    queued.append(asyncio.create_task(scheduler.acquire(resource="r", slots=1, caller=small)))
    await _queued(scheduler, 2)

    with pytest.raises(CallerQueueFullError) as refused:
        await scheduler.acquire(resource="r", slots=1, caller=small)

    assert refused.value.status == 429
    assert int(refused.value.headers["Retry-After"]) >= 1
    for task in queued:
        task.cancel()
    await held.release()


async def test_a_full_queue_and_a_long_wait_are_503_with_retry_after() -> None:
    scheduler = LocalScheduler(SchedulerSettings(max_queue=1, queue_timeout=0.05))
    held = await scheduler.acquire(resource="r", slots=1, caller=A)
    first = asyncio.create_task(scheduler.acquire(resource="r", slots=1, caller=B))
    await _queued(scheduler, 1)

    with pytest.raises(BackendBusyError) as full:
        await scheduler.acquire(resource="r", slots=1, caller=C)
    with pytest.raises(BackendBusyError) as timed_out:
        await first

    assert full.value.status == timed_out.value.status == 503
    assert "within" in timed_out.value.message
    assert scheduler.stats()[0].waiting == {}
    await held.release()


async def test_a_cancelled_waiter_leaves_the_queue_at_once_and_never_gets_a_slot() -> None:
    scheduler = LocalScheduler()
    held = await scheduler.acquire(resource="r", slots=1, caller=A)
    waiters = [
        asyncio.create_task(scheduler.acquire(resource="r", slots=1, caller=Who(f"w{i}")))
        for i in range(50)
    ]
    await _queued(scheduler, 50)

    for task in waiters:
        task.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)

    assert scheduler.stats()[0].waiting == {}
    await held.release()
    assert scheduler.stats()[0].in_use == 0
    # The slot is free for the next caller at once.
    lease = await asyncio.wait_for(scheduler.acquire(resource="r", slots=1, caller=B), 1)
    await lease.release()


async def test_a_lease_is_released_once_whatever_happens() -> None:
    scheduler = LocalScheduler()
    lease = await scheduler.acquire(resource="r", slots=1, caller=A)

    await lease.release()
    await lease.release()

    assert scheduler.stats()[0].in_use == 0


async def test_a_handed_over_slot_lets_the_next_request_reach_its_backend_first() -> None:
    scheduler = LocalScheduler()
    holder = await scheduler.acquire(resource="r", slots=1, caller=A)
    events: list[str] = []

    async def next_request() -> None:
        await scheduler.acquire(resource="r", slots=1, caller=B)
        events.append("next request resumed")
        await asyncio.sleep(0)  # aiohttp's body writer: one loop step later
        events.append("next request on the wire")

    waiting = asyncio.create_task(next_request())
    await _queued(scheduler, 1)
    await holder.release()
    events.append("the releasing request goes on")
    await waiting

    assert holder.handed_over
    assert events == [
        "next request resumed",
        "next request on the wire",
        "the releasing request goes on",
    ]


async def test_a_slot_nobody_waits_for_is_given_back_without_yielding() -> None:
    scheduler = LocalScheduler()
    lease = await scheduler.acquire(resource="r", slots=1, caller=A)
    events: list[str] = []

    async def other() -> None:
        events.append("other work")

    task = asyncio.create_task(other())
    await lease.release()
    events.append("the releasing request goes on")
    await task

    assert not lease.handed_over
    assert events == ["the releasing request goes on", "other work"]
