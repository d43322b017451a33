"""The key-management API for operators' scripts (`/admin/api-keys`).

Staff users only, by HTTP basic auth or an admin session (with its CSRF
token). Failed authentication is rate-limited per client address like a
failed API key. Every change lands in the admin history (LogEntry).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.utils import timezone
from rest_framework import exceptions as drf_exceptions
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from keys import docs, policy
from keys.authentication import client_address, count_request
from keys.lockout import login_locked_out_error
from keys.models import ApiKey
from keys.serializers import (
    ApiKeyCreateInputSerializer,
    ApiKeyOutputSerializer,
)
from keys.services import api_key_create, api_key_revoke

ONCE_NOTE = "This key will only appear once"


def _challenge(request: Request) -> str:
    """The 401's `WWW-Authenticate`: Basic, except to a script in a browser.

    A browser answers `Basic` with its own password prompt, even to a page's
    `fetch()` (Swagger's "Try it out"). Browsers mark such requests
    `Sec-Fetch-Dest: empty`; they get a scheme the browser does not prompt
    for, and the page shows the 401 itself. curl, SDKs and scripts send no
    such header and get `Basic`.
    """
    if request.headers.get("Sec-Fetch-Dest") == "empty":
        return 'StaffBasic realm="admin"'
    return 'Basic realm="admin"'


def _staff_login_required(request: Request) -> AuthenticationError:
    return AuthenticationError(
        "Staff credentials required: HTTP basic auth or a logged-in admin session.",
        code="not_authenticated",
        headers={"WWW-Authenticate": _challenge(request)},
    )


def _count_failure(request: Request) -> None:
    """A failed staff login counts against the address, like a failed API key."""
    caller = policy.Caller(client_addr=client_address(request))
    count_request(request, caller=caller, group=policy.UNAUTHENTICATED_GROUP)


class StaffBasicAuthentication(BasicAuthentication):
    """Basic auth whose failures are 401s in the envelope, rate-limited per address."""

    def authenticate(self, request: Request) -> Any:
        try:
            return super().authenticate(request)
        except drf_exceptions.AuthenticationFailed:
            # axes refused the attempt unchecked: say so, whatever the password was.
            if getattr(request, "axes_locked_out", False):
                raise login_locked_out_error() from None
            _count_failure(request)
            raise _staff_login_required(request) from None

    def authenticate_header(self, request: Request) -> str:
        return _challenge(request)


class IsStaff(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is None or not user.is_authenticated:
            _count_failure(request)
            raise _staff_login_required(request)
        if not (user.is_active and user.is_staff):
            raise PermissionDeniedError("Only staff users may manage API keys.", code="staff_only")
        return True


def _log(request: Request, api_key: ApiKey, flag: int, message: str) -> None:
    LogEntry.objects.log_actions(
        request.user.pk, [api_key], flag, change_message=message, single_object=True
    )


class _StaffView(APIView):
    authentication_classes = [StaffBasicAuthentication, SessionAuthentication]
    permission_classes = [IsStaff]

    def _key(self, prefix: str) -> ApiKey:
        try:
            return ApiKey.objects.select_related("owner").get(prefix=prefix)
        except ApiKey.DoesNotExist:
            raise NotFoundError(f"No API key with prefix {prefix!r}.") from None


class ApiKeyListView(_StaffView):
    """`GET /admin/api-keys` (list), `POST /admin/api-keys` (create)."""

    @docs.keys_list
    def get(self, request: Request) -> Response:
        keys = ApiKey.objects.select_related("owner").order_by("-created_at")
        return Response(ApiKeyOutputSerializer(keys, many=True).data)

    @docs.keys_create
    def post(self, request: Request) -> Response:
        serializer = ApiKeyCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        expires_at = None
        if data.get("expires_days"):
            expires_at = timezone.now() + timedelta(days=data["expires_days"])
        api_key, raw_key = api_key_create(
            name=data["name"],
            owner=data.get("owner"),
            expires_at=expires_at,
            rate_limit=data.get("rate_limit"),
            tokens_per_minute=data.get("tokens_per_minute"),
            allowed_endpoints=data["allowed_endpoints"],
            allowed_models=data["allowed_models"],
        )
        _log(request, api_key, ADDITION, "Created through the key-management API.")
        body = {
            "api_key": raw_key,
            "note": ONCE_NOTE,
            **ApiKeyOutputSerializer(api_key).data,
        }
        response = Response(body, status=201)
        response["Cache-Control"] = "no-store"
        return response


class ApiKeyDetailView(_StaffView):
    """`GET /admin/api-keys/<prefix>`.

    No DELETE: a revoked key stays readable (and listed) for audit, which a
    DELETE would promise not to be. Revoking is `POST .../revoke`.
    """

    @docs.keys_retrieve
    def get(self, request: Request, prefix: str) -> Response:
        return Response(ApiKeyOutputSerializer(self._key(prefix)).data)


class ApiKeyRevokeView(_StaffView):
    """`POST /admin/api-keys/<prefix>/revoke`."""

    @docs.keys_revoke
    def post(self, request: Request, prefix: str) -> Response:
        return _revoke(request, self._key(prefix))


def _revoke(request: Request, api_key: ApiKey) -> Response:
    """Revoke (idempotent: revoking a revoked key answers the same)."""
    if api_key.is_active:
        api_key_revoke(api_key=api_key)
        _log(request, api_key, CHANGE, "Revoked through the key-management API.")
    return Response(ApiKeyOutputSerializer(api_key).data)
