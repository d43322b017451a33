"""Backend health and in-flight counts shared between gateway processes through Redis.

With REDIS_URL every process's pool publishes, on its poller's tick (never
on a request's path), how many requests it has in flight on each backend,
and which backends it found down (a key that expires with the cooldown);
each reads the others', so all processes route alike. A process that dies
stops refreshing its counts and they expire.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class DownMark:
    """A backend another process (or this one) found down."""

    problem: str
    since: float  # epoch seconds
    seconds_left: float  # until its next probe


@dataclass(slots=True)
class SharedView:
    down: dict[str, DownMark] = field(default_factory=dict)
    others_in_flight: dict[str, int] = field(default_factory=dict)


class RedisPoolState:
    """The pool's shared state in Redis, under `prefix`."""

    def __init__(self, url: str, *, prefix: str, ttl: float) -> None:
        import redis.asyncio as aioredis

        self._url = url
        self._aioredis = aioredis
        self.prefix = prefix
        self.ttl = ttl  # seconds a process's counts live without a refresh
        self.process = uuid.uuid4().hex
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._aioredis.Redis.from_url(self._url)
        return client

    def _down_key(self, name: str) -> str:
        return f"{self.prefix}down:{name}"

    def _counts_key(self, process: str) -> str:
        return f"{self.prefix}in_flight:{process}"

    async def publish_down(self, name: str, *, problem: str, since: float, seconds: float) -> None:
        value = json.dumps({"problem": problem, "since": since})
        await self._client().set(self._down_key(name), value, px=max(1, int(seconds * 1000)))

    async def publish_up(self, name: str) -> None:
        await self._client().delete(self._down_key(name))

    async def sync(self, in_flight: dict[str, int]) -> SharedView:
        """Publish this process's counts; read the down marks and the other processes' counts."""
        client, now = self._client(), time.time()
        processes = f"{self.prefix}processes"
        mine = self._counts_key(self.process)
        names = list(in_flight)
        async with client.pipeline(transaction=False) as pipe:
            pipe.hset(mine, mapping={name: count for name, count in in_flight.items()})
            pipe.expire(mine, max(1, int(self.ttl)))
            pipe.zadd(processes, {self.process: now})
            pipe.zremrangebyscore(processes, "-inf", now - self.ttl)
            pipe.zrange(processes, 0, -1)
            for name in names:
                pipe.get(self._down_key(name))
                pipe.pttl(self._down_key(name))
            results = await pipe.execute()
        others = [p.decode() for p in results[4] if p.decode() != self.process]
        view = SharedView()
        for index, name in enumerate(names):
            raw, pttl = results[5 + 2 * index], results[6 + 2 * index]
            if raw is not None:
                mark = json.loads(raw)
                view.down[name] = DownMark(mark["problem"], mark["since"], max(0, pttl) / 1000)
        if others:
            async with client.pipeline(transaction=False) as pipe:
                for process in others:
                    pipe.hgetall(self._counts_key(process))
                counts = await pipe.execute()
            for process_counts in counts:
                for name, count in process_counts.items():
                    key = name.decode()
                    view.others_in_flight[key] = view.others_in_flight.get(key, 0) + int(count)
        return view
