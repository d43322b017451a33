"""The routing cost per request: `python -m bench.routing` (part of `make bench`).

Routes the same model through a pool of one backend (the direct path: no
routing) and through a pool of three (model-aware routing over state the
poller would keep), alternately in one run, and prints the median cost per
request of each and the difference. Goal: at most 0.1 ms per request.
No backend is called: the pools' state is filled in as the poller would.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from gateway.backends.base import ModelInfo, normalize_model_name
from gateway.backends.ollama import OllamaBackend
from gateway.backends.pool import BackendPool

CALLS, REPEATS = 20_000, 5
MODEL = "llama3.2"


def _pool(names: list[str]) -> BackendPool:
    members = [
        (
            name,
            OllamaBackend(
                host=f"http://{name}:11434", connect_timeout=1, read_timeout=1, busy_retry_after=1
            ),
        )
        for name in names
    ]
    pool = BackendPool(members)
    pool.close()  # no poller: the state below stays as set
    for index, state in enumerate(pool.states.values()):
        models = [f"model{index}-{n}:latest" for n in range(20)] + ["llama3.2:latest"]
        state.models = {normalize_model_name(m): ModelInfo(id=m) for m in models}
        state.loaded = frozenset({"llama3.2:latest"} if index == 2 else set())
        state.listed = True
    pool._polled_at = time.monotonic()
    return pool


async def _per_call_us(pool: BackendPool) -> float:
    start = time.perf_counter()
    for _ in range(CALLS):
        name, _member = await pool.route(MODEL)
        pool.started(name)  # as the service counts in-flight requests
        pool.finished(name)
    return (time.perf_counter() - start) / CALLS * 1e6


async def _run() -> tuple[list[float], list[float]]:
    single, several = _pool(["one"]), _pool(["a", "b", "c"])
    singles, severals = [], []
    for _ in range(REPEATS):  # alternate, so machine noise hits both alike
        singles.append(await _per_call_us(single))
        severals.append(await _per_call_us(several))
    return singles, severals


def measure() -> dict[str, float]:
    """Median µs per request through one backend and through three, and the difference."""
    singles, severals = asyncio.run(_run())
    one, three = statistics.median(singles), statistics.median(severals)
    return {"one_us": one, "three_us": three, "added_us": three - one}


def main() -> None:
    figures = measure()
    one, three = figures["one_us"], figures["three_us"]
    print(f"routing, 1 backend:  {one:7.2f} µs per request (median of {REPEATS} runs of {CALLS})")
    print(f"routing, 3 backends: {three:7.2f} µs per request")
    verdict = "met" if three - one <= 100 else "NOT met"
    print(f"routing cost: {three - one:.2f} µs per request (goal ≤ 100 µs): {verdict}")


if __name__ == "__main__":
    main()
