"""OpenAPI documentation of the key-management API (`/admin/api-keys`), applied in `keys.views`.

Staff only: HTTP basic auth (`BasicAuth`) or a logged-in admin session
(its cookie, with the CSRF token for changes; not a scheme in the docs, see
AUTHENTICATION_WHITELIST in SPECTACULAR_SETTINGS). Not an API key.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema

from gateway.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from gateway.schema import KEY_ERRORS, errors, response_header
from keys.serializers import (
    EXAMPLE_KEY,
    ApiKeyCreatedSerializer,
    ApiKeyCreateInputSerializer,
    ApiKeyOutputSerializer,
)

TAGS = ["keys"]

PREFIX = OpenApiParameter(
    "prefix",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The key's 8-character prefix (`lai_<prefix>_...`), as the admin shows it.",
    examples=[OpenApiExample("prefix", value="Ab3dE5gH")],
)

STAFF_HEADERS = [
    response_header("WWW-Authenticate", OpenApiTypes.STR, 401, '`Basic realm="admin"`.'),
    response_header(
        "Retry-After",
        OpenApiTypes.INT,
        429,
        "Whole seconds to wait: failed sign-ins are limited per client address, and after "
        "LOGIN_FAILURE_LIMIT failures per address or username every sign-in there is "
        "refused for LOGIN_LOCKOUT_MINUTES (`login_locked_out`).",
    ),
]


def staff_errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """401, 403, 406, 429 (as for an API key) and `statuses`, with the staff examples."""
    return errors(
        *KEY_ERRORS,
        *statuses,
        not_authenticated=AuthenticationError(
            "Staff credentials required: HTTP basic auth or a logged-in admin session.",
            code="not_authenticated",
        ),
        staff_only=PermissionDeniedError(
            "Only staff users may manage API keys.", code="staff_only"
        ),
        not_found=NotFoundError("No API key with prefix 'Ab3dE5gH'."),
    )


keys_list = extend_schema(
    operation_id="admin_api_keys_list",
    tags=TAGS,
    summary="List API keys",
    description="Every key, newest first: prefix, status, limits, usage. Never the raw key.",
    parameters=STAFF_HEADERS,
    responses={
        200: OpenApiResponse(ApiKeyOutputSerializer(many=True), "The keys."),
        **staff_errors(),
    },
)

keys_create = extend_schema(
    tags=TAGS,
    summary="Create an API key",
    description=(
        "Creates a key and answers with the raw key **once** (`api_key`); only its hash is "
        "stored. `allowed_endpoints` empty = every endpoint group (except `ollama_admin`, "
        "which must be named); `allowed_models` empty = every model."
    ),
    request=ApiKeyCreateInputSerializer,
    parameters=STAFF_HEADERS,
    responses={
        201: OpenApiResponse(
            ApiKeyCreatedSerializer, "The new key; `api_key` is shown only in this answer."
        ),
        **staff_errors(400, 415, 422),
    },
)

keys_retrieve = extend_schema(
    operation_id="admin_api_keys_retrieve",
    tags=TAGS,
    summary="Get an API key",
    description="One key by its prefix.",
    parameters=[PREFIX, *STAFF_HEADERS],
    responses={200: OpenApiResponse(ApiKeyOutputSerializer, "The key."), **staff_errors(404)},
)

keys_revoke = extend_schema(
    operation_id="admin_api_keys_revoke",
    tags=TAGS,
    summary="Revoke an API key",
    description=(
        "Revokes the key: refused from the next request on, on every worker. Idempotent: "
        "revoking a revoked key answers the same."
    ),
    request=None,
    parameters=[PREFIX, *STAFF_HEADERS],
    # This operation's own example, in place of the serializer's (an active key).
    examples=[
        OpenApiExample(
            "revoked",
            value={**EXAMPLE_KEY, "status": "revoked", "revoked_at": "2026-01-17T09:00:00Z"},
            response_only=True,
        )
    ],
    responses={
        200: OpenApiResponse(ApiKeyOutputSerializer, "The revoked key."),
        **staff_errors(404),
    },
)
