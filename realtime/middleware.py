"""ASGI middleware of the WebSocket surface: Origin check and authentication.

Stack (localai_site/asgi.py):
    OriginValidator(AuthMiddlewareStack(ChatAuthMiddleware(URLRouter(...))))
"""

from __future__ import annotations

from typing import Any
from urllib.parse import ParseResult

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import OriginValidator as ChannelsOriginValidator
from django.conf import settings

from gateway.errors import APIError
from realtime import auth


class OriginValidator(ChannelsOriginValidator):
    """Refuse browsers whose `Origin` is not in `ALLOWED_HOSTS`; accept clients with none.

    Browsers always send `Origin` on a WebSocket handshake, so a missing one
    means a script or server-side client, which cross-site request forgery
    cannot involve (channels' own validator refuses those; scripts must work).
    `ALLOWED_HOSTS` is read per connection, so settings changes apply.
    A refused handshake gets HTTP 403.
    """

    def __init__(self, application: Any) -> None:
        super().__init__(application, allowed_origins=())

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        if parsed_origin is None:
            return True
        allowed = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not allowed:
            allowed = ["localhost", "127.0.0.1", "[::1]"]
        return any(
            pattern == "*" or self.match_allowed_origin(parsed_origin, pattern)
            for pattern in allowed
        )


class ChatAuthMiddleware(BaseMiddleware):
    """Decide who the connection acts for, before the consumer handles anything.

    Puts `chat_caller` (a `keys.policy.Caller`) or `chat_auth_error` (an `APIError`)
    in the scope, and `chat_raw_key` so the consumer can re-check a key that
    gets revoked while the connection is open. Runs inside
    `AuthMiddlewareStack`, which resolved the session user into `scope["user"]`.
    """

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        scope = dict(scope)
        raw_key = auth.presented_key(scope)
        scope["chat_raw_key"] = raw_key
        try:
            client = scope.get("client")
            scope["chat_caller"] = await database_sync_to_async(auth.chat_caller_authenticate)(
                raw_key=raw_key, user=scope.get("user"), client_addr=client[0] if client else None
            )
        except APIError as exc:
            scope["chat_auth_error"] = exc
        return await super().__call__(scope, receive, send)
