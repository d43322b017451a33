"""DRF authentication and permission for API keys.

`ApiKeyAuthentication` (global, see settings) turns `Authorization: Bearer
<key>` into `request.auth` (the `ApiKey`) and `request.user` (its owner, or
AnonymousUser). Requests without a valid key are rate-limited per client
address before they get their 401, so guessing keys is slow.

`HasApiKey` (global permission) counts the request against the key's limit
for the view's `endpoint_group`, then checks the key's endpoint allow-list.
Counting comes first so that every authenticated answer (403 included)
carries the `x-ratelimit-*` budget and probing allow-lists is limited too.
Both leave what the usage middleware needs on the Django request:
`api_key`, `rate_limit_status`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from apis.errors import AuthenticationError, RateLimitedError
from keys.models import ApiKey
from keys.services import (
    api_key_authenticate,
    api_key_authorize,
    auth_failure_hit,
    rate_limit_hit,
)

DEFAULT_ENDPOINT_GROUP = "default"


def bearer_token(request: HttpRequest | Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; "" when malformed."""
    header = get_authorization_header(request)
    if not header:
        return None
    scheme, _, token = header.decode("latin-1").strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip()


def client_address(request: HttpRequest | Request) -> str:
    return request.META.get("REMOTE_ADDR") or "unknown"


def endpoint_group_of(view: Any) -> str:
    return getattr(view, "endpoint_group", None) or DEFAULT_ENDPOINT_GROUP


def _django_request(request: HttpRequest | Request) -> HttpRequest:
    return getattr(request, "_request", request)


def _count(
    request: Request,
    *,
    api_key: ApiKey | None,
    group: str,
    failure: AuthenticationError | None = None,
) -> None:
    """Count the request (a failed authentication: `failure`); leave the budget for the headers."""
    if not settings.GATEWAY_RATE_LIMITS_ENABLED:
        return
    django_request = _django_request(request)
    try:
        if failure is not None:
            status = auth_failure_hit(
                error=failure, group=group, client_addr=client_address(request)
            )
        else:
            status = rate_limit_hit(
                api_key=api_key, group=group, client_addr=client_address(request)
            )
    except RateLimitedError as exc:
        django_request.rate_limit_status = exc.rate_limit_status  # type: ignore[attr-defined]
        raise
    django_request.rate_limit_status = status  # type: ignore[attr-defined]


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <key>`; every failure is a 401 `invalid_api_key`."""

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        if not settings.GATEWAY_AUTH_ENABLED:
            return None
        try:
            api_key = api_key_authenticate(raw_key=bearer_token(request))
        except AuthenticationError as exc:
            _count(request, api_key=None, group="unauthenticated", failure=exc)
            raise
        _django_request(request).api_key = api_key  # type: ignore[attr-defined]
        return (api_key.owner or AnonymousUser(), api_key)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class HasApiKey(BasePermission):
    """A key authenticated the request, its limit has room, its allow-list has the endpoint."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not settings.GATEWAY_AUTH_ENABLED:
            # No keys: everyone is anonymous, counted per client address.
            _count(request, api_key=None, group="unauthenticated")
            return True
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            _count(request, api_key=None, group="unauthenticated")
            raise AuthenticationError()
        group = endpoint_group_of(view)
        _count(request, api_key=api_key, group=group)
        api_key_authorize(api_key=api_key, endpoint_group=group)
        return True
