"""OpenAPI documentation of the key-management API (`/admin/api-keys`), applied in `keys.views`.

Staff only, by HTTP basic auth (`BasicAuth`) or a logged-in admin session (its cookie, with
the CSRF token for changes; not a scheme in the docs: see SPECTACULAR_SETTINGS). No API key.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse

from gateway.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from gateway.schema import KEY_ERRORS, errors, operation, response_header
from keys.serializers import (
    EXAMPLE_KEY,
    ApiKeyCreatedSerializer,
    ApiKeyCreateInputSerializer,
    ApiKeyOutputSerializer,
)

PREFIX = OpenApiParameter(
    "prefix",
    str,
    OpenApiParameter.PATH,
    description="The key's 8-character prefix (`lai_<prefix>_...`), as the admin shows it.",
    examples=[OpenApiExample("prefix", value="Ab3dE5gH")],
)

STAFF_HEADERS = [
    response_header("WWW-Authenticate", str, 401, '`Basic realm="admin"`.'),
    response_header(
        "Retry-After",
        int,
        429,
        "Whole seconds to wait: failed sign-ins are limited per client address, and after "
        "LOGIN_FAILURE_LIMIT failures per address or username every sign-in there is "
        "refused for LOGIN_LOCKOUT_MINUTES (`login_locked_out`).",
    ),
]

STAFF_ERRORS = {
    "not_authenticated": AuthenticationError(
        "Staff credentials required: HTTP basic auth or a logged-in admin session.",
        code="not_authenticated",
    ),
    "staff_only": PermissionDeniedError("Only staff users may manage API keys.", code="staff_only"),
    "not_found": NotFoundError("No API key with prefix 'Ab3dE5gH'."),
}


def staff_operation(answer: Any, *statuses: int, by_prefix: bool = False, **schema: Any) -> Any:
    """One staff action's docs: `answer`; 401, 403, 406, 429 (as for an API key) and `statuses`
    with the staff examples; the staff headers. `by_prefix`: the path names a key by its
    prefix, and no such key is a 404."""
    return operation(
        tags=["keys"],
        parameters=[PREFIX, *STAFF_HEADERS] if by_prefix else STAFF_HEADERS,
        answer=answer,
        errors=errors(*KEY_ERRORS, *statuses, *([404] if by_prefix else []), **STAFF_ERRORS),
        **schema,
    )


keys_list = staff_operation(
    OpenApiResponse(ApiKeyOutputSerializer(many=True), "The keys."),
    operation_id="admin_api_keys_list",
    summary="List API keys",
    description="Every key, newest first: prefix, status, limits, usage. Never the raw key.",
)

keys_create = staff_operation(
    {
        201: OpenApiResponse(
            ApiKeyCreatedSerializer, "The new key; `api_key` is shown only in this answer."
        )
    },
    400,
    415,
    422,
    summary="Create an API key",
    description=(
        "Creates a key and answers with the raw key **once** (`api_key`); only its hash is "
        "stored. `allowed_endpoints` empty = every endpoint group (except `ollama_admin`, "
        "which must be named); `allowed_models` empty = every model."
    ),
    request=ApiKeyCreateInputSerializer,
)

keys_retrieve = staff_operation(
    OpenApiResponse(ApiKeyOutputSerializer, "The key."),
    by_prefix=True,
    operation_id="admin_api_keys_retrieve",
    summary="Get an API key",
    description="One key by its prefix.",
)

keys_revoke = staff_operation(
    OpenApiResponse(ApiKeyOutputSerializer, "The revoked key."),
    by_prefix=True,
    operation_id="admin_api_keys_revoke",
    summary="Revoke an API key",
    description=(
        "Revokes the key: refused from the next request on, on every worker. Idempotent: "
        "revoking a revoked key answers the same."
    ),
    request=None,
    # This operation's own example, in place of the serializer's (an active key).
    examples=[
        OpenApiExample(
            "revoked",
            value={**EXAMPLE_KEY, "status": "revoked", "revoked_at": "2026-01-17T09:00:00Z"},
            response_only=True,
        )
    ],
)
