"""Who a chat connection acts for: the WebSocket side of `keys.policy`.

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

from keys import policy
from keys.policy import Caller
from realtime.protocol import BEARER_SUBPROTOCOL_PREFIX, offered_subprotocols

ENDPOINT_GROUP = "chat"
USAGE_ENDPOINT = "ws_chat"


def presented_key(scope: dict[str, Any]) -> str | None:
    """The raw key a connection presents: Authorization header first, then subprotocol.

    Returns `""` for a header or subprotocol that is present but empty (so it is
    refused as an invalid key rather than silently ignored), `None` for none.
    """
    for name, value in scope.get("headers") or []:
        if name.lower() == b"authorization":
            return policy.parse_bearer(value.decode("latin1"))
    for protocol in offered_subprotocols(scope):
        if protocol.startswith(BEARER_SUBPROTOCOL_PREFIX):
            return protocol[len(BEARER_SUBPROTOCOL_PREFIX) :]
    return None


def chat_caller_authenticate(
    *, raw_key: str | None, user: Any, client_addr: str | None = None
) -> Caller:
    """The caller of a new connection; raises `AuthenticationError` (-> 4401).

    `PermissionDeniedError` (-> 4403) when the key may not use the chat;
    `RateLimitedError` (-> 4429) once the address has failed too often.
    """
    # A conversation needs an owner: the chat takes keys even when the REST
    # surfaces are switched to anonymous use (GATEWAY_AUTH_ENABLED=false).
    caller = policy.caller_authenticate(
        raw_key=raw_key, client_addr=client_addr, user=user, anonymous_allowed=False
    )
    policy.caller_authorize(caller=caller, endpoint_group=ENDPOINT_GROUP)
    return caller
