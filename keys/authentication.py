"""DRF authentication, permission and throttle: the HTTP side of `keys.policy`.

`ApiKeyAuthentication` (global, see settings) turns `Authorization: Bearer
<key>` into a `Caller`: `request.auth` (and the Django request's `caller`,
which the usage middleware reads), `request.user` the key's owner or
AnonymousUser. Requests without a valid key are counted per client address
before they get their 401, so guessing keys is slow.

`CallerAdmitted` has the policy admit the request for the view's
`endpoint_group` (counted, then the key's endpoint allow-list) and leaves the
budget on the Django request for the `x-ratelimit-*` headers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any, TypeVar

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from gateway.errors import AuthenticationError, PermissionDeniedError, RateLimitedError
from gateway.metering import UsageMeter, meter_for
from keys import policy
from keys.ratelimit import RateLimitStatus

DEFAULT_ENDPOINT_GROUP = "default"
T = TypeVar("T")


def client_address(request: HttpRequest | Request) -> str:
    return request.META.get("REMOTE_ADDR") or "unknown"


def endpoint_group_of(view: Any) -> str:
    return getattr(view, "endpoint_group", None) or DEFAULT_ENDPOINT_GROUP


def limit_group(caller: policy.Caller, endpoint_group: str) -> str:
    """The limit group a request counts in: its endpoint group for a key."""
    return endpoint_group if caller.api_key is not None else "unauthenticated"


def django_request(request: HttpRequest | Request) -> HttpRequest:
    return getattr(request, "_request", request)


def request_caller(request: HttpRequest | Request) -> policy.Caller:
    """The caller `ApiKeyAuthentication` found for this request."""
    caller = getattr(django_request(request), "caller", None)
    if caller is None:
        raise AuthenticationError()
    return caller


def _keep_status(request: HttpRequest | Request, status: RateLimitStatus | None) -> None:
    """Leave the caller's budget on the Django request for the `x-ratelimit-*` headers."""
    django_request(request).rate_limit_status = status  # type: ignore[attr-defined]


def count_request(request: HttpRequest | Request, *, caller: policy.Caller, group: str) -> None:
    """Count the request (the policy's `request_count`); leave the budget for the headers."""
    try:
        _keep_status(request, policy.request_count(caller=caller, group=group))
    except RateLimitedError as exc:
        _keep_status(request, exc.rate_limit_status)  # type: ignore[attr-defined]
        raise


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <key>`, or `x-api-key: <key>` (how Anthropic's SDKs
    send it); every failure is a 401 `invalid_api_key`."""

    def authenticate(self, request: Request) -> tuple[Any, policy.Caller]:
        header = get_authorization_header(request)
        raw_key = policy.parse_bearer(header.decode("latin-1") if header else None)
        if raw_key is None:
            raw_key = request.META.get("HTTP_X_API_KEY")
        target = django_request(request)
        try:
            caller = policy.caller_authenticate(
                raw_key=raw_key, client_addr=client_address(request)
            )
        except (AuthenticationError, RateLimitedError) as exc:
            _keep_status(request, getattr(exc, "rate_limit_status", None))
            raise
        target.caller = caller  # type: ignore[attr-defined]
        owner = caller.api_key.owner if caller.api_key is not None else None
        return (owner or AnonymousUser(), caller)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class CallerAdmitted(BasePermission):
    """The policy admits the request: counted against the caller's limit for the
    view's endpoint group (the one call site of HTTP counting), then allowed by
    the key's endpoint allow-list. The budget is left for the headers."""

    def has_permission(self, request: Request, view: Any) -> bool:
        caller = getattr(django_request(request), "caller", None)
        if caller is None:  # a view with its own authentication (staff API, docs)
            return True
        group = limit_group(caller, endpoint_group_of(view))
        try:
            _keep_status(request, policy.request_admit(caller=caller, endpoint_group=group))
        except (RateLimitedError, PermissionDeniedError) as exc:
            _keep_status(request, getattr(exc, "rate_limit_status", None))
            raise
        return True


def model_authorize(
    request: Request, *, endpoint_group: str, model: str, choices: int = 1
) -> UsageMeter:
    """The policy's model check for an HTTP request; returns its usage meter.

    The model is only known once the body is read, so every HTTP surface
    calls this after validating it; the meter names the model first, so a
    refused call's usage record still says which model was asked for.
    `choices`: the request asks for n generations (OpenAI's `n`); the n - 1
    beyond the one `CallerAdmitted` counted are counted now (429 when over).
    """
    meter = meter_for(request)
    caller = request_caller(request)
    policy.caller_authorize(caller=caller, endpoint_group=endpoint_group, model=model, meter=meter)
    if choices > 1:
        group = limit_group(caller, endpoint_group)
        try:
            status = policy.choices_count(caller=caller, group=group, n=choices)
        except RateLimitedError as exc:
            _keep_status(request, exc.rate_limit_status)  # type: ignore[attr-defined]
            raise
        if status is not None:
            _keep_status(request, status)
    return meter


def models_visible(
    request: Request, models: Iterable[T], model_id: Callable[[T], str] = attrgetter("id")
) -> list[T]:
    """The entries of a model list the request's caller may use (every surface's lists)."""
    return policy.models_visible(caller=request_caller(request), models=models, model_id=model_id)
