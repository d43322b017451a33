"""WebSocket chats with Redis (the documented scale-out): they stay up.

redis-py 8 times a read out after 5 s by default, and channels_redis waits on
Redis's BZPOPMIN for 5 s at a time: a layer read that lost that race raised
`TimeoutError`, which ended the consumer waiting on it, and the client's
connection died without a close frame, about every 5 s per worker.

Needs the machine's Redis (and PostgreSQL for the server process); skipped
when absent, fails under CI=true.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest
from channels_redis.core import RedisChannelLayer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import ScaleOutStores
from tests.fake_ollama import FakeOllama
from tests.processes import ROOT, migrated_with_key, server_env, start_server

pytestmark = pytest.mark.scaleout

CONNECTIONS = 20
HOLD_SECONDS = 60.0
# Between pings on each held connection: a dead connection shows up within this.
PING_EVERY = 10.0
TIMEOUT = 15.0


def channel_layer_config(redis_url: str) -> dict[str, Any]:
    """CHANNEL_LAYERS["default"]["CONFIG"] as the settings build it with REDIS_URL set."""
    env = server_env(REDIS_URL=redis_url)
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.CHANNEL_LAYERS['default']['CONFIG']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


@pytest.mark.asyncio
async def test_a_channel_layer_receive_outwaits_redis_blocking_pops(
    scaleout_stores: ScaleOutStores,
) -> None:
    """A receive with nothing to read spans several 5 s BZPOPMINs, then gets its message."""
    layer = RedisChannelLayer(**channel_layer_config(scaleout_stores.redis_url))
    channel = await layer.new_channel()
    receiving = asyncio.ensure_future(layer.receive(channel))
    try:
        # Two and a half BZPOPMIN rounds: the receive must still be waiting.
        done, _ = await asyncio.wait({receiving}, timeout=2.5 * RedisChannelLayer.brpop_timeout)
        assert not done, f"the receive ended: {receiving.exception()!r}"
        await layer.send(channel, {"type": "still.here"})
        assert await asyncio.wait_for(receiving, TIMEOUT) == {"type": "still.here"}
    finally:
        receiving.cancel()
        await layer.flush()


async def _held(ws: ClientConnection, deadline: float) -> None:
    """Keep one connection until `deadline`, pinging it; fail as soon as it closes."""
    loop = asyncio.get_running_loop()
    while (remaining := deadline - loop.time()) > 0:
        try:
            frame = await asyncio.wait_for(ws.recv(), min(PING_EVERY, remaining))
        except TimeoutError:
            pass  # nothing said, as expected
        except ConnectionClosed as closed:
            held = HOLD_SECONDS - (deadline - loop.time())
            pytest.fail(f"a WebSocket closed after {held:.1f} s: {closed!r}")
        else:
            pytest.fail(f"unexpected frame on an idle connection: {frame!r}")
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)) == {"type": "pong"}


async def _chat(ws: ClientConnection) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "chat", "message": "still there?"}))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if frame["type"] in ("assistant_end", "error"):
            return frame


@pytest.mark.timeout(HOLD_SECONDS + 90)
def test_20_websockets_stay_open_and_usable_for_60_s_with_redis(
    scaleout_stores: ScaleOutStores,
    scaleout_database: str,
    scaleout_redis_prefix: str,
    fake_ollama: FakeOllama,
) -> None:
    env = server_env(
        DATABASE_URL=scaleout_database,
        REDIS_URL=scaleout_stores.redis_url,
        CACHE_KEY_PREFIX=scaleout_redis_prefix,
        OLLAMA_HOST=fake_ollama.url,
        LOG_LEVEL="WARNING",
    )
    raw_key, _ = migrated_with_key(env, "websockets", rate_limit=1000)
    headers = {"Authorization": f"Bearer {raw_key}"}

    async def scenario(base_url: str) -> list[dict[str, Any]]:
        url = base_url.replace("http://", "ws://", 1)
        sockets = [
            await connect(
                f"{url}/ws/chat/held-{n}",
                additional_headers=headers,
                proxy=None,
                open_timeout=TIMEOUT,
            )
            for n in range(CONNECTIONS)
        ]
        try:
            deadline = asyncio.get_running_loop().time() + HOLD_SECONDS
            await asyncio.gather(*(_held(ws, deadline) for ws in sockets))
            return await asyncio.gather(*(_chat(ws) for ws in sockets))
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))

    with start_server(env=env, server="uvicorn") as base_url:
        ends = asyncio.run(scenario(base_url))

    assert [end["type"] for end in ends] == ["assistant_end"] * CONNECTIONS
    assert {end["full_response"] for end in ends} == {"You said: still there?"}
