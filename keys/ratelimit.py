"""Rate limits per key and endpoint group, shared by every server process.

Built on the `limits` library: a sliding-window counter (two integers per
key and window, so memory per key is constant) for requests, a fixed window
for tokens. The store is process memory by default and Redis when
`REDIS_URL` is set; Redis updates run as Lua scripts, so several processes
enforce ONE limit atomically.

Windows: in Redis a key's window starts at its first request; in memory the
windows are aligned to the clock minute. A sliding-window counter
approximates a rolling minute by weighting the previous window, so a burst
that straddles a window boundary may get one request more than the limit.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter, SlidingWindowCounterRateLimiter

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """The budget left after a request, as the `x-ratelimit-*` headers tell it."""

    limit: int
    remaining: int
    reset_seconds: float
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset_seconds: float | None = None

    def headers(self) -> dict[str, str]:
        """OpenAI's header names; reset as a duration (`"17s"`)."""
        headers = {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": _duration(self.reset_seconds),
        }
        if self.tokens_limit is not None:
            headers["x-ratelimit-limit-tokens"] = str(self.tokens_limit)
            headers["x-ratelimit-remaining-tokens"] = str(self.tokens_remaining or 0)
            headers["x-ratelimit-reset-tokens"] = _duration(self.tokens_reset_seconds or 0.0)
        return headers


def _duration(seconds: float) -> str:
    return f"{max(0, math.ceil(seconds))}s"


class _Limiters:
    """The store and the two strategies over it."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.requests = SlidingWindowCounterRateLimiter(storage)
        self.tokens = FixedWindowRateLimiter(storage)


_limiters: _Limiters | None = None
_limiters_url: str | None = None
_limiters_lock = threading.Lock()


def limiters() -> _Limiters:
    """The process's limiters, built on first use from `REDIS_URL`."""
    global _limiters, _limiters_url
    url = settings.REDIS_URL
    if _limiters is None or _limiters_url != url:
        with _limiters_lock:
            if _limiters is None or _limiters_url != url:
                if url:
                    storage = storage_from_string(
                        url,
                        key_prefix=f"{_cache_key_prefix()}:limits",
                        wrap_exceptions=True,
                    )
                else:
                    storage = MemoryStorage()
                _limiters, _limiters_url = _Limiters(storage), url
    return _limiters


def _cache_key_prefix() -> str:
    """The cache's KEY_PREFIX (CACHE_KEY_PREFIX), so one Redis serves several deployments."""
    return str(settings.CACHES["default"].get("KEY_PREFIX") or "localai")


def rate_limits_reset() -> None:
    """Forget every counter of this store (tests, and operators after a config change)."""
    limiters().storage.reset()


def group_limit(group: str) -> int:
    """The default requests per minute of an endpoint group."""
    return int(settings.RATE_LIMITS.get(group, settings.RATE_LIMIT_DEFAULT))


def requests_hit(
    *, identity: tuple[str, ...], limit: int, cost: int = 1
) -> tuple[bool, RateLimitStatus]:
    """Count `cost` requests against `identity`; False (none counted) when over `limit`.

    A store that cannot be reached lets the request through (and logs): the
    limits protect fairness, and an outage of Redis should not become an
    outage of the API. `/readyz` reports the store as failing meanwhile.
    """
    item = RateLimitItemPerMinute(limit)
    state = limiters()
    try:
        allowed = state.requests.hit(item, *identity, cost=cost)
        stats = state.requests.get_window_stats(item, *identity)
    except StorageError as exc:
        logger.warning("Rate-limit store unavailable, not limiting: %s", exc.storage_error)
        return True, RateLimitStatus(limit=limit, remaining=limit, reset_seconds=0.0)
    reset = stats.reset_time - time.time()
    if reset <= 0:
        # The limiter reports "now" for a window that has just started (in
        # Redis its counter's TTL is still the whole window, and the window
        # modulo itself is 0): that window ends a whole window from now.
        reset = float(item.get_expiry())
    return allowed, RateLimitStatus(limit=limit, remaining=stats.remaining, reset_seconds=reset)


def tokens_window(*, identity: tuple[str, ...], limit: int) -> tuple[int, float]:
    """Tokens left in the current minute for `identity`, and seconds until it resets."""
    item = RateLimitItemPerMinute(limit)
    try:
        stats = limiters().tokens.get_window_stats(item, *identity)
    except StorageError as exc:
        logger.warning("Rate-limit store unavailable, not limiting tokens: %s", exc.storage_error)
        return limit, 0.0
    return stats.remaining, max(0.0, stats.reset_time - time.time())


def tokens_add(*, identity: tuple[str, ...], limit: int, tokens: int) -> None:
    """Charge `tokens` (all of them, even past the limit: they were spent)."""
    if tokens <= 0:
        return
    try:
        limiters().tokens.hit(RateLimitItemPerMinute(limit), *identity, cost=tokens)
    except StorageError as exc:
        logger.warning("Rate-limit store unavailable, tokens not charged: %s", exc.storage_error)
