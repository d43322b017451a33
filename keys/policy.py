"""The one policy: who a caller is, what it may use, how much is left, what it used.

Every surface (native `/v1/`, OpenAI, Ollama, the WebSocket chat, the chat
page's model list) goes through these functions, the same way:

1. `caller_authenticate` turns what a request presents (a raw key, else a
   signed-in user for the browser surfaces) into a `Caller`; a failure is
   counted against the client address first, so guessing keys is slow.
2. `caller_authorize` checks an endpoint group and, once the body names one,
   a model (naming it on the request's usage meter first, so a refused call's
   record still says which model was asked for).
3. `request_admit` counts one request against the caller's limit and token
   budget (`request_count`: the one place a request is counted), then
   authorizes it; HTTP calls it from one DRF permission, the WebSocket once
   per chat message. A request for `n` choices counts n (`choices_count`).
4. `models_visible` filters every model list down to what the caller may use.
5. `usage_record` writes the one usage record of a call and charges its
   tokens to the caller's budget: the one place usage is recorded (HTTP:
   `keys.middleware`, WebSocket: `realtime.consumers`).

This module is the only code that touches `keys.ratelimit` and the usage
storage (`keys.usage`). The core (`gateway/`) knows a caller only by the
small protocol it needs (`id`, `weight`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings

from gateway import metrics
from gateway.backends.base import normalize_model_name
from gateway.errors import AuthenticationError, PermissionDeniedError, RateLimitedError
from gateway.metering import UsageMeter
from keys import ratelimit, usage
from keys.models import EXPLICIT_ONLY_GROUPS, ApiKey
from keys.ratelimit import RateLimitStatus
from keys.services import KeyNotUsableError, api_key_authenticate

T = TypeVar("T")

# The limit group of requests made without a valid key (per client address).
UNAUTHENTICATED_GROUP = "unauthenticated"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes a request: an API key, a signed-in user, or (keys switched
    off, `GATEWAY_AUTH_ENABLED=false`) nobody but a client address."""

    api_key: ApiKey | None = None
    user: Any = None
    client_addr: str = "unknown"

    @property
    def id(self) -> str:
        """A stable, non-secret name: `key:<pk>`, `user:<pk>` or `addr:<address>`."""
        if self.api_key is not None:
            return f"key:{self.api_key.pk}"
        if self.user is not None:
            return f"user:{self.user.pk}"
        return f"addr:{self.client_addr}"

    @property
    def weight(self) -> int:
        """Share of the scarce backend slots while requests wait (a key's priority)."""
        return max(1, self.api_key.priority) if self.api_key is not None else 1

    @property
    def max_concurrent(self) -> int:
        """Requests of this caller a backend runs at once (more wait their turn)."""
        cap = self.api_key.max_concurrent if self.api_key is not None else None
        cap = cap or settings.KEY_MAX_CONCURRENT_DEFAULT
        return cap if cap > 0 else 1_000_000

    @property
    def max_queued(self) -> int:
        """Requests of this caller that may wait for a slot (more get 429)."""
        cap = self.api_key.max_queued if self.api_key is not None else None
        return cap or settings.KEY_MAX_QUEUED_DEFAULT

    @property
    def key_prefix(self) -> str:
        """The key's prefix for logs ("" for callers without a key)."""
        return self.api_key.prefix if self.api_key is not None else ""


def parse_bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value, for HTTP and WebSocket.

    `None` when there is no header; `""` for another scheme or an empty
    token, so it is refused as an invalid key rather than silently ignored.
    """
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


# --- who ----------------------------------------------------------------------


def caller_authenticate(
    *,
    raw_key: str | None,
    client_addr: str | None,
    user: Any = None,
    anonymous_allowed: bool | None = None,
) -> Caller:
    """The caller a request presents: its key, else a signed-in `user` (browser
    surfaces only pass one), else `AuthenticationError`.

    `anonymous_allowed` (default: keys switched off, `GATEWAY_AUTH_ENABLED`
    false) makes every request an anonymous caller of its address, whatever
    it presents. A failed attempt counts against the address's limit for
    requests without a valid key (`RateLimitedError` once it is spent).
    """
    addr = client_addr or "unknown"
    if anonymous_allowed is None:
        anonymous_allowed = not settings.GATEWAY_AUTH_ENABLED
    if anonymous_allowed:
        return Caller(client_addr=addr)
    try:
        if raw_key is not None or user is None or not _signed_in(user):
            return Caller(api_key=api_key_authenticate(raw_key=raw_key), client_addr=addr)
    except AuthenticationError as exc:
        # The refusal carries the address's budget (`x-ratelimit-*` headers).
        exc.rate_limit_status = auth_failure_count(  # type: ignore[attr-defined]
            error=exc, client_addr=addr
        )
        raise
    return Caller(user=user, client_addr=addr)


def auth_failure_count(*, error: AuthenticationError, client_addr: str) -> RateLimitStatus | None:
    """Count a failed authentication against the client address (RATE_LIMIT_UNAUTHENTICATED).

    Past the limit, guesses get `RateLimitedError` (429) whatever they were,
    so throttled guessing learns nothing. One answer wins over the 429: a
    key whose whole secret matched but that is revoked, expired or whose
    owner is deactivated keeps its 401 (the limit is still counted). Its
    holder learns nothing new (it needs the real key to get that answer),
    and a 429 would tell a client to retry (SDKs do so on their own) a key
    that will never work again; a 401 tells it to stop.
    """
    try:
        return request_count(caller=Caller(client_addr=client_addr), group=UNAUTHENTICATED_GROUP)
    except RateLimitedError as limited:
        if isinstance(error, KeyNotUsableError):
            return limited.rate_limit_status  # type: ignore[attr-defined]
        raise


def caller_recheck(*, caller: Caller, raw_key: str | None) -> None:
    """Still allowed? A key revoked or expired since a connection opened is refused now."""
    if caller.api_key is not None:
        api_key_authenticate(raw_key=raw_key)


def _signed_in(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.is_active)


# --- what ---------------------------------------------------------------------


def caller_allows_model(*, caller: Caller, model: str) -> bool:
    """Whether the caller may use `model`: a key's allow-list (empty = all); users may."""
    api_key = caller.api_key
    if api_key is None or not api_key.allowed_models:
        return True
    return normalize_model_name(model) in api_key.allowed_models


def caller_authorize(
    *,
    caller: Caller,
    endpoint_group: str,
    model: str | None = None,
    meter: UsageMeter | None = None,
) -> None:
    """`PermissionDeniedError` unless the caller may call `endpoint_group` (with `model`).

    `meter`: the request's usage meter, which is given the model first, so
    a refused call's usage record names the model it asked for. No I/O:
    the allow-lists came with the key. Signed-in users and anonymous callers
    (keys switched off) have no allow-lists.
    """
    if meter is not None and model is not None:
        meter.model = model
    api_key = caller.api_key
    if api_key is None:
        return
    allowed = api_key.allowed_endpoints
    if endpoint_group in EXPLICIT_ONLY_GROUPS and endpoint_group not in allowed:
        raise PermissionDeniedError(
            f"This API key may not call the '{endpoint_group}' endpoints: an administrator "
            f"must add '{endpoint_group}' to its allowed endpoints.",
            code="endpoint_not_allowed",
        )
    if allowed and endpoint_group not in allowed:
        raise PermissionDeniedError(
            f"This API key may not call the '{endpoint_group}' endpoints "
            f"(allowed: {', '.join(allowed)}).",
            code="endpoint_not_allowed",
        )
    if model is not None and not caller_allows_model(caller=caller, model=model):
        raise PermissionDeniedError(
            f"This API key may not use the model '{model}'.",
            code="model_not_allowed",
            param="model",
        )


def models_visible(*, caller: Caller, models: Iterable[T], model_id: Callable[[T], str]) -> list[T]:
    """The entries of a model list the caller may use, in order (every surface's lists)."""
    return [m for m in models if caller_allows_model(caller=caller, model=model_id(m))]


# --- how much -----------------------------------------------------------------


def request_count(*, caller: Caller, group: str, cost: int = 1) -> RateLimitStatus | None:
    """Count one request (`cost` requests); `RateLimitedError` (with `Retry-After`)
    when over the limit, and then none is counted.

    Keys: the key's `rate_limit`, else the group's default (chat 60,
    embeddings 120, others 100 per minute), per key and group; a key with
    `tokens_per_minute` is also refused while its token budget for the minute
    is spent. Signed-in users: the group's default per user. Anyone else:
    per client address (`RATE_LIMIT_UNAUTHENTICATED`). Returns the budget for
    the `x-ratelimit-*` headers (the raised error carries them too); `None`
    when limits are switched off (`GATEWAY_RATE_LIMITS_ENABLED`).
    """
    if not settings.GATEWAY_RATE_LIMITS_ENABLED:
        return None
    api_key = caller.api_key
    if api_key is not None:
        limit = api_key.rate_limit or ratelimit.group_limit(group)
        identity: tuple[str, ...] = ("key", str(api_key.pk), group)
        what = f"requests per minute for '{group}'."
    elif caller.user is not None:
        limit = ratelimit.group_limit(group)
        identity = ("user", str(caller.user.pk), group)
        what = f"requests per minute for '{group}'."
    else:
        limit = settings.RATE_LIMIT_UNAUTHENTICATED
        identity = ("addr", caller.client_addr)
        what = "requests per minute without a valid API key."
    allowed, status = ratelimit.requests_hit(identity=identity, limit=limit, cost=cost)
    if not allowed:
        metrics.rate_limited(limit="requests")
        raise _limited(status, status.reset_seconds, f"Rate limit exceeded: {limit} {what}")
    if api_key is not None and api_key.tokens_per_minute:
        remaining, reset = ratelimit.tokens_window(
            identity=("tokens", str(api_key.pk)), limit=api_key.tokens_per_minute
        )
        status = RateLimitStatus(
            limit=status.limit,
            remaining=status.remaining,
            reset_seconds=status.reset_seconds,
            tokens_limit=api_key.tokens_per_minute,
            tokens_remaining=remaining,
            tokens_reset_seconds=reset,
        )
        if remaining <= 0:
            metrics.rate_limited(limit="tokens")
            raise _limited(
                status,
                reset,
                f"Token rate limit exceeded: {api_key.tokens_per_minute} tokens per minute.",
            )
    return status


def _limited(status: RateLimitStatus, retry_after: float, message: str) -> RateLimitedError:
    error = RateLimitedError(retry_after)
    error.message = f"{message} Try again in {error.retry_after} s."
    error.headers.update(status.headers())
    error.rate_limit_status = status  # type: ignore[attr-defined]
    return error


def request_admit(
    *,
    caller: Caller,
    endpoint_group: str,
    model: str | None = None,
    meter: UsageMeter | None = None,
) -> RateLimitStatus | None:
    """Count one request (`request_count`), then authorize it (`caller_authorize`).

    Counting comes first so that every answer to a known caller, a 403
    included, carries its budget, and probing allow-lists is limited too.
    """
    status = request_count(caller=caller, group=endpoint_group)
    try:
        caller_authorize(caller=caller, endpoint_group=endpoint_group, model=model, meter=meter)
    except PermissionDeniedError as exc:
        exc.rate_limit_status = status  # type: ignore[attr-defined]
        raise
    return status


def choices_count(*, caller: Caller, group: str, n: int) -> RateLimitStatus | None:
    """Count the further n - 1 generations of a request asking for `n` choices.

    `request_admit` counted the request itself; each further choice is a
    generation like a request's, so it counts as one, before any is made:
    over the limit, the call is refused (429) and nothing is generated. The
    token budget is checked again with it (the tokens of all n are charged
    to it afterwards, in `usage_record`).
    """
    if n <= 1:
        return None
    return request_count(caller=caller, group=group, cost=n - 1)


# --- what it used -------------------------------------------------------------


def usage_record(
    *,
    caller: Caller,
    endpoint: str,
    meter: UsageMeter,
    status: int,
    latency_ms: int,
    error_code: str | None = None,
    defer: bool = False,
) -> None:
    """The one usage record of a call, and its tokens charged to the caller's budget.

    Records belong to keys: a signed-in user's tokens are kept on the stored
    answer instead, an anonymous caller's nowhere. `defer=True` leaves the
    write to the process's flusher (HTTP requests, many per second); else it
    is written now (one transaction, no read-modify-write). The meter's own
    error code (a stream that failed or was cut) wins over the response's.
    """
    api_key = caller.api_key
    if api_key is None:
        return
    tokens = meter.total_tokens
    if settings.GATEWAY_RATE_LIMITS_ENABLED and api_key.tokens_per_minute and tokens > 0:
        ratelimit.tokens_add(
            identity=("tokens", str(api_key.pk)), limit=api_key.tokens_per_minute, tokens=tokens
        )
    if not settings.GATEWAY_USAGE_ENABLED:
        return
    usage.usage_enqueue(
        usage.PendingUsage(
            api_key_id=api_key.pk,
            endpoint=endpoint,
            model=meter.model,
            status=status,
            prompt_tokens=meter.prompt_tokens,
            completion_tokens=meter.completion_tokens,
            latency_ms=latency_ms,
            error_code=meter.error_code or error_code,
            queued_ms=meter.queued_ms,
            backend=meter.backend,
        ),
        defer=defer,
    )


def usage_flush() -> int:
    """Write the usage records this process has buffered. Returns how many."""
    return usage.usage_flush()
