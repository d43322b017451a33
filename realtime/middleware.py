"""ASGI middleware of the WebSocket surface: Origin check and authentication.

Stack (localai_site/asgi.py):
    OriginValidator(AuthMiddlewareStack(ChatAuthMiddleware(URLRouter(...))))
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

from gateway.errors import APIError
from realtime import auth


class OriginValidator:
    """Accept a browser only from this site's own origin; accept clients sending no `Origin`.

    The `Origin` must be the origin the connection was made to (scheme, host
    and port: `http://<Host header>`, `https://` over TLS or behind a proxy
    that says so through SECURE_PROXY_SSL_HEADER), with that host in
    ALLOWED_HOSTS, or one of CSRF_TRUSTED_ORIGINS: the rule Django's CSRF
    check applies to a form POST. Comparing host names only, as channels'
    validator does, let any port or scheme on an allowed host (another local
    app at `http://localhost:9999`) drive a signed-in user's session.
    Browsers always send `Origin` on a WebSocket handshake, so a missing one
    means a script or server-side client, which cross-site request forgery
    cannot involve. A refused handshake gets HTTP 403.
    """

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = dict(scope.get("headers", []))
        origin = headers.get(b"origin")
        if origin is None or origin_allowed(scope, origin.decode("latin-1")):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)


def _secure(scope: dict[str, Any], headers: dict[bytes, bytes]) -> bool:
    if scope.get("scheme") == "wss":
        return True
    proxy_header = settings.SECURE_PROXY_SSL_HEADER
    if not proxy_header:
        return False
    meta_name, expected = proxy_header
    name = meta_name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin-1")
    value = headers.get(name, b"").decode("latin-1").split(",")[0].strip()
    return value == expected


def origin_allowed(scope: dict[str, Any], origin: str) -> bool:
    """Whether a WebSocket handshake's `Origin` is this site's own or a trusted one."""
    headers = dict(scope.get("headers", []))
    host = headers.get(b"host", b"").decode("latin-1")
    allowed_hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
    domain, _ = split_domain_port(host)
    if domain and validate_host(domain, allowed_hosts):
        scheme = "https" if _secure(scope, headers) else "http"
        if origin == f"{scheme}://{host}":
            return True
    parsed = urlsplit(origin)
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        if origin == trusted:
            return True
        if "*" in trusted:
            pattern = urlsplit(trusted)
            if parsed.scheme == pattern.scheme and is_same_domain(
                parsed.netloc, pattern.netloc.replace("*", "")
            ):
                return True
    return False


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
