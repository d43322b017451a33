"""The fair scheduler across processes, on the machine's real Redis."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import pytest

from gateway.errors import BackendBusyError
from gateway.scheduler import CallerQueueFullError, RedisScheduler, SchedulerSettings
from tests.processes import ROOT

pytestmark = [pytest.mark.scaleout, pytest.mark.asyncio]


@dataclass(frozen=True)
class Who:
    id: str
    weight: int = 1
    max_concurrent: int = 1000
    max_queued: int = 1000


@pytest.fixture
def redis_url(scaleout_stores) -> str:
    return scaleout_stores.redis_url


@pytest.fixture
def resource() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


async def _waiting(scheduler: RedisScheduler, resource: str, count: int) -> None:
    """Wait until `count` requests wait for `resource` in Redis."""
    deadline = time.monotonic() + 30
    while True:
        stats = {s.resource: s for s in await scheduler.stats_async()}
        if resource in stats and sum(stats[resource].waiting.values()) >= count:
            return
        assert time.monotonic() < deadline, "requests never reached the queue"
        await asyncio.sleep(0.01)


async def test_two_processes_share_one_slot_fairly(redis_url: str, resource: str) -> None:
    # Two schedulers with their own connections stand for two gateway processes.
    first, second = RedisScheduler(redis_url), RedisScheduler(redis_url)
    order: list[str] = []
    in_use = 0
    most = 0
    holder = await first.acquire(resource=resource, slots=1, caller=Who("first"))

    async def request(scheduler: RedisScheduler, caller: Who) -> None:
        nonlocal in_use, most
        lease = await scheduler.acquire(resource=resource, slots=1, caller=caller)
        in_use += 1
        most = max(most, in_use)
        order.append(caller.id)
        await asyncio.sleep(0)  # hold the slot across a loop turn
        in_use -= 1
        await lease.release()

    tasks = [asyncio.create_task(request(first, Who("a"))) for _ in range(10)]
    await _waiting(first, resource, 10)
    tasks.append(asyncio.create_task(request(second, Who("b"))))
    await _waiting(first, resource, 11)
    await holder.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 60)

    assert most == 1
    assert order.index("b") <= 1
    assert len(order) == 11


async def test_caps_and_a_full_queue_answer_429_and_503(redis_url: str, resource: str) -> None:
    scheduler = RedisScheduler(redis_url, SchedulerSettings(max_queue=3))
    small = Who("small", max_queued=2)
    holder = await scheduler.acquire(resource=resource, slots=1, caller=Who("x"))
    queued = [
        asyncio.create_task(scheduler.acquire(resource=resource, slots=1, caller=small))
        for _ in range(2)
    ]
    await _waiting(scheduler, resource, 2)

    with pytest.raises(CallerQueueFullError):
        await scheduler.acquire(resource=resource, slots=1, caller=small)
    queued.append(
        asyncio.create_task(scheduler.acquire(resource=resource, slots=1, caller=Who("y")))
    )
    await _waiting(scheduler, resource, 3)
    with pytest.raises(BackendBusyError) as full:
        await scheduler.acquire(resource=resource, slots=1, caller=Who("z"))

    assert int(full.value.headers["Retry-After"]) >= 1
    for task in queued:
        task.cancel()
    await asyncio.gather(*queued, return_exceptions=True)
    await holder.release()


async def test_fifty_cancelled_waiters_leave_the_queue_at_once(
    redis_url: str, resource: str
) -> None:
    scheduler = RedisScheduler(redis_url)
    holder = await scheduler.acquire(resource=resource, slots=1, caller=Who("x"))
    waiters = [
        asyncio.create_task(scheduler.acquire(resource=resource, slots=1, caller=Who(f"w{i}")))
        for i in range(50)
    ]
    await _waiting(scheduler, resource, 50)

    for task in waiters:
        task.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)

    (stats,) = [s for s in await scheduler.stats_async() if s.resource == resource]
    assert stats.waiting == {}
    await holder.release()
    lease = await asyncio.wait_for(
        scheduler.acquire(resource=resource, slots=1, caller=Who("b")), 5
    )
    await lease.release()


async def test_a_slot_held_by_a_process_that_died_comes_back_within_its_lease(
    redis_url: str, resource: str
) -> None:
    script = (
        "import asyncio, os, sys\n"
        "from gateway.scheduler import RedisScheduler, SchedulerSettings, Anonymous\n"
        "async def main():\n"
        f"    s = RedisScheduler({redis_url!r}, SchedulerSettings(lease_seconds=2))\n"
        f"    await s.acquire(resource={resource!r}, slots=1, caller=Anonymous())\n"
        "    print('held', flush=True)\n"
        "    os._exit(9)\n"
        "asyncio.run(main())\n"
    )
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "held", done.stderr
    scheduler = RedisScheduler(redis_url, SchedulerSettings(lease_seconds=2, queue_timeout=30))

    started = time.monotonic()
    lease = await scheduler.acquire(resource=resource, slots=1, caller=Who("survivor"))
    waited = time.monotonic() - started

    assert waited < 2 + 4  # the dead process's lease, plus check intervals on a busy machine
    await lease.release()
