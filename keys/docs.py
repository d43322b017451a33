"""OpenAPI documentation of the key-management API (`/admin/api-keys`), applied in `keys.views`.

Staff only: HTTP basic auth (`BasicAuth`) or a logged-in admin session
(`cookieAuth`, with its CSRF token for changes). Not an API key.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema

from apis.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from apis.schema import KEY_ERRORS, answer, errors, request_example, response_header
from keys.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateInputSerializer,
    ApiKeyOutputSerializer,
)

TAGS = ["keys"]

EXAMPLE_KEY = {
    "prefix": "Ab3dE5gH",
    "name": "reporting service",
    "owner": "alice",
    "status": "active",
    "created_at": "2026-01-15T10:30:00Z",
    "expires_at": "2026-04-15T10:30:00Z",
    "revoked_at": None,
    "rate_limit": 120,
    "tokens_per_minute": None,
    "allowed_endpoints": ["chat", "embeddings"],
    "allowed_models": [],
    "usage_count": 42,
    "last_used_at": "2026-01-16T08:00:00Z",
}

PREFIX = OpenApiParameter(
    "prefix",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The key's 8-character prefix (`lai_<prefix>_...`), as the admin shows it.",
    examples=[OpenApiExample("prefix", value="Ab3dE5gH")],
)

STAFF_ERRORS: dict[int, list[tuple[str, Any]]] = {
    401: [
        (
            "not_authenticated",
            AuthenticationError(
                "Staff credentials required: HTTP basic auth or a logged-in admin session.",
                code="not_authenticated",
            ),
        )
    ],
    403: [
        (
            "staff_only",
            PermissionDeniedError("Only staff users may manage API keys.", code="staff_only"),
        )
    ],
    404: [("not_found", NotFoundError("No API key with prefix 'Ab3dE5gH'."))],
}
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
    return errors(*KEY_ERRORS, *statuses, examples=STAFF_ERRORS)


keys_list = extend_schema(
    operation_id="admin_api_keys_list",
    tags=TAGS,
    summary="List API keys",
    description="Every key, newest first: prefix, status, limits, usage. Never the raw key.",
    parameters=STAFF_HEADERS,
    responses={
        # drf-spectacular wraps the example of a list in a list.
        200: answer(ApiKeyOutputSerializer(many=True), "The keys.", "keys", EXAMPLE_KEY),
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
    examples=[
        request_example(
            "key",
            {
                "name": "reporting service",
                "owner": "alice",
                "expires_days": 90,
                "rate_limit": 120,
                "allowed_endpoints": ["chat", "embeddings"],
            },
        )
    ],
    responses={
        201: answer(
            ApiKeyCreatedSerializer,
            "The new key; `api_key` is shown only in this answer.",
            "created",
            {
                "api_key": "lai_Ab3dE5gH_" + "x" * 38 + "Q1w2E3",
                "note": "This key will only appear once",
                **EXAMPLE_KEY,
                "usage_count": 0,
                "last_used_at": None,
            },
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
    responses={
        200: answer(ApiKeyOutputSerializer, "The key.", "key", EXAMPLE_KEY),
        **staff_errors(404),
    },
)

REVOKED_KEY = {**EXAMPLE_KEY, "status": "revoked", "revoked_at": "2026-01-17T09:00:00Z"}


def _revoke(summary: str) -> Any:
    return extend_schema(
        operation_id="admin_api_keys_revoke",
        tags=TAGS,
        summary=summary,
        description=(
            "Revokes the key: refused from the next request on, on every worker. Idempotent: "
            "revoking a revoked key answers the same."
        ),
        request=None,
        parameters=[PREFIX, *STAFF_HEADERS],
        responses={
            200: answer(ApiKeyOutputSerializer, "The revoked key.", "revoked", REVOKED_KEY),
            **staff_errors(404),
        },
    )


keys_revoke = _revoke("Revoke an API key")
