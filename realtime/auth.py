"""Who a chat connection acts for, and what it may do: thin calls into `keys.services`.

Rules (README, "WebSocket chat"):
- A connection presenting a key (the `Authorization: Bearer` header, or a
  `bearer.<key>` subprotocol) acts for that key: the key's chat limit, the
  key's allowed endpoints and models, usage recorded against the key, and
  conversations owned by the key. A presented key that is not valid is refused
  even if the browser also has a session: the client asked for that key.
- A connection with no key but a logged-in Django session acts for the user:
  the default chat limit (per minute) counted per user, any model, and
  conversations owned by the user. Usage is recorded with no key.
- Anything else is unauthenticated and closed with 4401.
All functions are sync (ORM, cache); consumers call them via
`database_sync_to_async`.
"""

from __future__ import annotations

from typing import Any

from apis.errors import AuthenticationError, RateLimitedError
from keys import ratelimit
from keys import services as key_services
from realtime.protocol import BEARER_SUBPROTOCOL_PREFIX, offered_subprotocols
from realtime.services import ChatOwner

__all__ = ["ChatOwner"]

ENDPOINT_GROUP = "chat"
USAGE_ENDPOINT = "ws_chat"


def presented_key(scope: dict[str, Any]) -> str | None:
    """The raw key a connection presents: Authorization header first, then subprotocol.

    Returns `""` for a header or subprotocol that is present but empty (so it is
    refused as an invalid key rather than silently ignored), `None` for none.
    """
    for name, value in scope.get("headers") or []:
        if name.lower() == b"authorization":
            return bearer_token(value.decode("latin1"))
    for protocol in offered_subprotocols(scope):
        if protocol.startswith(BEARER_SUBPROTOCOL_PREFIX):
            return protocol[len(BEARER_SUBPROTOCOL_PREFIX) :]
    return None


def bearer_token(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` value; `""` for other schemes."""
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def chat_owner_authenticate(
    *, raw_key: str | None, user: Any, client_addr: str | None = None
) -> ChatOwner:
    """The owner of a new connection; raises `AuthenticationError` (-> 4401).

    `PermissionDeniedError` (-> 4403) when the key may not use the chat.
    Failed attempts count against the client address's limit for requests
    without a valid key (guessing keys is slow), `RateLimitedError` (-> 4429).
    """
    try:
        if raw_key is not None:
            api_key = key_services.api_key_authenticate(raw_key=raw_key)
            key_services.api_key_authorize(api_key=api_key, endpoint_group=ENDPOINT_GROUP)
            return ChatOwner(api_key=api_key)
        if user is not None and getattr(user, "is_authenticated", False) and user.is_active:
            return ChatOwner(user=user)
        # Raises the standard "missing API key" error.
        key_services.api_key_authenticate(raw_key=None)
    except AuthenticationError as exc:
        key_services.auth_failure_hit(error=exc, group=ENDPOINT_GROUP, client_addr=client_addr)
        raise
    raise AssertionError("api_key_authenticate accepted a missing key")  # pragma: no cover


def chat_owner_recheck(*, owner: ChatOwner, raw_key: str | None) -> None:
    """Still allowed? A key revoked or expired since the connect is refused now."""
    if owner.api_key is not None:
        key_services.api_key_authenticate(raw_key=raw_key)


def chat_owner_authorize(*, owner: ChatOwner, model: str) -> None:
    """May the owner chat with `model`? Keys may be restricted; users are not."""
    if owner.api_key is not None:
        key_services.api_key_authorize(
            api_key=owner.api_key, endpoint_group=ENDPOINT_GROUP, model=model
        )


def chat_rate_limit_hit(*, owner: ChatOwner) -> None:
    """Count one chat message against the owner's chat limit; raises `RateLimitedError`.

    Keys: `rate_limit_hit` (the key's own limit, else the chat default, and
    its token budget). Session users: the chat default per user, in the same
    shared store (`rate_limit_hit` only knows keys and client addresses).
    """
    if owner.api_key is not None:
        key_services.rate_limit_hit(api_key=owner.api_key, group=ENDPOINT_GROUP)
        return
    assert owner.user is not None
    limit = ratelimit.group_limit(ENDPOINT_GROUP)
    allowed, status = ratelimit.requests_hit(
        identity=("user", str(owner.user.pk), ENDPOINT_GROUP), limit=limit
    )
    if not allowed:
        error = RateLimitedError(status.reset_seconds)
        error.message = (
            f"Rate limit exceeded: {limit} chat messages per minute. "
            f"Try again in {error.retry_after} s."
        )
        raise error


def chat_usage_record(
    *,
    owner: ChatOwner,
    model: str,
    status: int,
    prompt_tokens: int,
    completion_tokens: int,
    latency_ms: int,
    error_code: str | None = None,
) -> None:
    """Record one generation (endpoint `ws_chat`) against the key.

    Usage records belong to keys; a session user's token counts are kept on
    the stored answer (`ChatMessage.prompt_tokens` / `completion_tokens`).
    """
    if owner.api_key is None:
        return
    key_services.usage_record(
        api_key=owner.api_key,
        endpoint=USAGE_ENDPOINT,
        model=model,
        status=status,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_ms=latency_ms,
        error_code=error_code,
    )
