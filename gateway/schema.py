"""Reusable pieces of the OpenAPI document (drf-spectacular).

- The error envelope as serializers, and `errors(...)`: the documented error
  responses of an operation, each with the envelope schema, an example built
  by the real error classes, and the headers the gateway sends with it.
- `ollama_errors(...)`: the same for Ollama's own error shape.
- Security schemes: `BearerAuth` for `keys.authentication.ApiKeyAuthentication`,
  `BasicAuth` for the staff key-management API.
- `sse_event_serializer(...)`: a `text/event-stream` event whose `data` is a
  JSON payload (OpenAPI 3.1 `contentSchema`) or the closing `[DONE]`.
- Hooks: `add_plain_django_views` documents the routes that are plain Django
  views (probes, `GET /ollama/`); `finish_schema` lists the serving origin
  first in `servers` and adds the benchmark table to the chat operation.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.urls import Resolver404, resolve
from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.errors import (
    APIError,
    AuthenticationError,
    BackendBusyError,
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    BadRequestError,
    InsufficientResourcesError,
    ModelNotFoundError,
    NotAcceptableError,
    PermissionDeniedError,
    RateLimitedError,
    RequestTooLargeError,
    UnsupportedMediaTypeError,
    error_body,
    validation_error,
)
from gateway.validation import MODEL_NAME_PATTERN, OLLAMA_OPTION_TYPES

logger = logging.getLogger(__name__)

EXAMPLE_TIMESTAMP = "2026-01-15T10:30:00.123456+00:00"
EXAMPLE_MODEL = "qwen2.5:14b"

# --- the error envelope -------------------------------------------------------


class ValidationDetailSerializer(serializers.Serializer):
    loc = serializers.CharField(help_text="The failing field, dotted (`messages.0.role`).")
    msg = serializers.CharField(help_text="What is wrong with it.")
    type = serializers.CharField(help_text="A machine-readable reason (`required`, `invalid`).")


class ErrorSerializer(serializers.Serializer):
    message = serializers.CharField(help_text="A sentence for people.")
    type = serializers.CharField(help_text="The error family (`authentication_error`, ...).")
    code = serializers.CharField(help_text="The precise error (`invalid_api_key`, ...).")
    param = serializers.CharField(
        allow_null=True, help_text="The request field the error is about, if any."
    )
    timestamp = serializers.DateTimeField()
    request_id = serializers.CharField(
        required=False,
        help_text="The request's id (its `X-Request-ID`): quote it when reporting a problem.",
    )
    details = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="422: one row per failing field (`loc`, `msg`, `type`).",
    )


class ErrorEnvelopeSerializer(serializers.Serializer):
    """The one error format of the gateway (REST bodies, SSE error events)."""

    error = ErrorSerializer()


class OllamaErrorSerializer(serializers.Serializer):
    """Ollama's own error shape, used on `/ollama/api/...`."""

    error = serializers.CharField(help_text="What went wrong, as Ollama words it.")


def _example_body(exc: APIError) -> dict[str, Any]:
    body = error_body(exc)
    body["error"]["timestamp"] = EXAMPLE_TIMESTAMP
    body["error"].pop("request_id", None)  # the id of the request that asked for the docs
    return body


# Every error the gateway gives, by status: description and example errors.
_ERRORS: dict[int, tuple[str, list[tuple[str, APIError]]]] = {
    400: (
        "Malformed JSON, or a value the backend cannot honour.",
        [
            (
                "malformed_json",
                BadRequestError(
                    "Malformed JSON body: JSON parse error - Expecting value: line 1 column 1"
                ),
            )
        ],
    ),
    401: (
        "Missing, unknown, revoked or expired API key.",
        [("invalid_api_key", AuthenticationError())],
    ),
    403: (
        "The key may not use this endpoint, or this model.",
        [
            (
                "endpoint_not_allowed",
                PermissionDeniedError(
                    "This API key may not use the 'chat' endpoints.", code="endpoint_not_allowed"
                ),
            ),
            (
                "model_not_allowed",
                PermissionDeniedError(
                    f"This API key may not use the model '{EXAMPLE_MODEL}'.",
                    code="model_not_allowed",
                    param="model",
                ),
            ),
        ],
    ),
    404: (
        "The backend has no such model.",
        [("model_not_found", ModelNotFoundError(EXAMPLE_MODEL))],
    ),
    406: (
        "The `Accept` header asks for a type other than JSON.",
        [("not_acceptable", NotAcceptableError())],
    ),
    413: (
        "The request body is over MAX_REQUEST_BYTES.",
        [("request_too_large", RequestTooLargeError())],
    ),
    415: (
        "The body is not `application/json`.",
        [
            (
                "unsupported",
                UnsupportedMediaTypeError('Unsupported media type "text/plain" in request.'),
            )
        ],
    ),
    422: (
        "A field failed validation; `details` lists every failing field.",
        [
            (
                "validation_error",
                validation_error(
                    {"messages": [ErrorDetail("This field is required.", code="required")]}
                ),
            )
        ],
    ),
    429: (
        "Rate limit hit; retry after `Retry-After` seconds.",
        [("rate_limit_exceeded", RateLimitedError(17))],
    ),
    502: (
        "The backend answered with something unusable.",
        [("backend_error", BackendError())],
    ),
    503: (
        "The backend is not reachable, or its queue is full (then with `Retry-After`).",
        [
            ("backend_unavailable", BackendUnavailableError()),
            ("backend_busy", BackendBusyError(2)),
        ],
    ),
    504: (
        "The backend did not answer in time (OLLAMA_READ_TIMEOUT).",
        [("backend_timeout", BackendTimeoutError())],
    ),
    507: (
        "The backend has not enough memory for the model.",
        [("insufficient_resources", InsufficientResourcesError())],
    ),
}

# The errors of every operation behind an API key, and of those calling the backend.
KEY_ERRORS = (401, 403, 406, 429)
BACKEND_ERRORS = (502, 503, 504)
BODY_ERRORS = (400, 413, 415, 422)
# What an operation can answer, by what it does: read the backend's model list,
# look one model up, run a model on a request body.
LIST_ERRORS = (*KEY_ERRORS, *BACKEND_ERRORS)
MODEL_ERRORS = (*LIST_ERRORS, 404)
INFERENCE_ERRORS = (*MODEL_ERRORS, *BODY_ERRORS, 507)


def errors(
    *statuses: int, examples: dict[int, list[tuple[str, APIError]]] | None = None
) -> dict[int, OpenApiResponse]:
    """Documented error responses (envelope schema, real examples) for `statuses`."""
    responses: dict[int, OpenApiResponse] = {}
    for status in sorted(set(statuses)):
        description, default_examples = _ERRORS[status]
        chosen = (examples or {}).get(status, default_examples)
        responses[status] = OpenApiResponse(
            ErrorEnvelopeSerializer,
            description=description,
            examples=[
                OpenApiExample(
                    name, value=_example_body(exc), response_only=True, status_codes=[status]
                )
                for name, exc in chosen
            ],
        )
    return responses


def ollama_errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """Documented error responses in Ollama's shape (`{"error": "..."}`)."""
    responses: dict[int, OpenApiResponse] = {}
    for status in sorted(set(statuses)):
        description, default_examples = _ERRORS[status]
        if status == 400:
            description = "Malformed JSON, or a field with a wrong type or value."
        name, exc = default_examples[0]
        responses[status] = OpenApiResponse(
            OllamaErrorSerializer,
            description=description,
            examples=[
                OpenApiExample(
                    name, value={"error": exc.message}, response_only=True, status_codes=[status]
                )
            ],
        )
    return responses


# --- answers and examples ----------------------------------------------------------


def answer(serializer: Any, description: str, example_name: str, example: Any) -> OpenApiResponse:
    """A documented answer: its schema, what it is, and one example of it."""
    return OpenApiResponse(
        serializer, description=description, examples=[OpenApiExample(example_name, value=example)]
    )


def answer_or_stream(
    description: str,
    whole: tuple[Any, str, Any],
    stream: tuple[Any, str, Any],
    *,
    stream_type: str = "text/event-stream",
) -> dict[tuple[int, str], OpenApiResponse]:
    """`200` as one JSON answer (`stream: false`) or as a stream: (serializer, example name,
    example) for each, under one description."""
    return {
        (200, "application/json"): answer(whole[0], description, *whole[1:]),
        (200, stream_type): answer(stream[0], description, *stream[1:]),
    }


def request_example(name: str, value: Any, summary: str | None = None) -> OpenApiExample:
    """An example request body."""
    return OpenApiExample(name, summary=summary, request_only=True, value=value)


# --- headers --------------------------------------------------------------------


def response_header(
    name: str, kind: OpenApiTypes, status: int, description: str
) -> OpenApiParameter:
    """A header the gateway always sends with `status` answers."""
    return OpenApiParameter(
        name,
        kind,
        OpenApiParameter.HEADER,
        response=[status],
        required=True,
        description=description,
    )


RATE_LIMIT_HEADERS = [
    response_header(
        "x-ratelimit-limit-requests",
        OpenApiTypes.INT,
        200,
        "Requests per minute this key may make to this endpoint group.",
    ),
    response_header(
        "x-ratelimit-remaining-requests",
        OpenApiTypes.INT,
        200,
        "Requests left in the current window.",
    ),
    response_header(
        "x-ratelimit-reset-requests",
        OpenApiTypes.STR,
        200,
        'Time until the budget is whole again, e.g. "17s".',
    ),
]
RETRY_AFTER = response_header(
    "Retry-After",
    OpenApiTypes.INT,
    429,
    "Whole seconds to wait before retrying (at least 1).",
)
WWW_AUTHENTICATE = response_header(
    "WWW-Authenticate",
    OpenApiTypes.STR,
    401,
    'The scheme to authenticate with: `Bearer realm="api"`.',
)
KEY_HEADERS = [*RATE_LIMIT_HEADERS, RETRY_AFTER, WWW_AUTHENTICATE]

# --- security schemes -----------------------------------------------------------


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """`Authorization: Bearer <key>` (keys.authentication.ApiKeyAuthentication)."""

    target_class = "keys.authentication.ApiKeyAuthentication"
    name = "BearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "API Key",
            "description": "An API key, sent as `Authorization: Bearer <key>`.",
        }


class StaffBasicAuthenticationScheme(OpenApiAuthenticationExtension):
    """Staff username and password for the key-management API."""

    target_class = "keys.views.StaffBasicAuthentication"
    name = "BasicAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "basic",
            "description": "A staff user's username and password (key-management API only).",
        }


# --- request schemas as strict as the validation ----------------------------------


class GatewayAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, saying in request schemas what DRF enforces.

    A CharField without `allow_blank` refuses "" and, trimmed, whitespace:
    `minLength: 1` and a non-space character. A list field or nested list
    without `allow_empty` refuses []: `minItems: 1`. (Request and response
    components are split, so answers keep their own rules.)
    """

    def _get_request_body(self, direction: Any = "request") -> Any:
        # Every body the gateway takes is required (Ollama's views refuse an empty one).
        if self.method == "DELETE" and self.get_request_serializer() is not None:
            # Ollama's DELETE /api/delete takes a JSON body (OpenAPI 3.1 allows it);
            # drf-spectacular documents bodies for POST, PUT and PATCH only.
            self.method = "POST"
            try:
                body = super()._get_request_body(direction)
            finally:
                self.method = "DELETE"
        else:
            body = super()._get_request_body(direction)
        if body:
            body["required"] = True
        return body

    def _map_serializer_field(
        self, field: Any, direction: Any, bypass_extensions: bool = False
    ) -> dict[str, Any]:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction != "request" or not isinstance(schema, dict) or "$ref" in schema:
            return schema
        if isinstance(field, serializers.CharField) and not field.allow_blank:
            schema.setdefault("minLength", 1)
            if field.trim_whitespace and "pattern" not in schema:
                schema["pattern"] = r"\S"
        many = isinstance(field, (serializers.ListField, serializers.ListSerializer))
        if many and not field.allow_empty and schema.get("type") in ("array", ["array", "null"]):
            schema.setdefault("minItems", 1)
        return schema


def schema_field(schema: dict[str, Any], **kwargs: Any) -> serializers.Field:
    """A documentation-only field whose JSON schema is `schema` (say `null` in it if allowed).

    For request shapes whose rules live in code (translation, cross-field
    checks): documentation subclasses of the real serializers use it.
    """
    field_class = extend_schema_field(schema)(type("DocumentedField", (serializers.JSONField,), {}))
    return field_class(**kwargs)


BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)$"


def tool_parameters_schema(*, nullable_type: bool) -> dict[str, Any]:
    """A tool's `parameters` as the ollama client's `Tool` model accepts them."""
    type_schema: dict[str, Any] = {"const": "object"}
    if nullable_type:
        type_schema = {"anyOf": [type_schema, {"type": "null"}]}
    return {
        "type": ["object", "null"],
        "properties": {
            "type": type_schema,
            "required": {"type": ["array", "null"], "items": {"type": "string"}},
            "properties": {
                "type": ["object", "null"],
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "type": {
                            "anyOf": [
                                {"type": "string"},
                                {"type": "array", "items": {"type": "string"}},
                                {"type": "null"},
                            ]
                        },
                        "description": {"type": ["string", "null"]},
                        "enum": {"type": ["array", "null"]},
                    },
                },
            },
        },
        "description": "A JSON Schema of type object: `properties`, `required`.",
    }


FALSY = [
    {"type": "null"},
    {"const": False},
    {"const": 0},
    {"const": ""},
    {"type": "array", "maxItems": 0},
    {"type": "object", "maxProperties": 0},
]


# --- fields whose rules live in code -------------------------------------------


class ModelNameFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "gateway.validation.ModelNameField"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        field = self.target
        schema: dict[str, Any] = {
            "type": "string",
            "maxLength": field.max_length,
            "description": "A model name: `[host/][namespace/]model[:tag]`.",
            "examples": [EXAMPLE_MODEL],
        }
        if field.allow_blank:
            schema["anyOf"] = [{"pattern": MODEL_NAME_PATTERN}, {"const": ""}]
        else:
            schema["pattern"] = MODEL_NAME_PATTERN
        return schema


class OllamaOptionsFieldExtension(OpenApiSerializerFieldExtension):
    """Ollama's `options`: known keys typed, others passed on."""

    target_class = "gateway.validation.OllamaOptionsField"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        json_types = {int: "integer", float: "number", bool: "boolean"}
        properties: dict[str, Any] = {
            name: {"type": [json_types[kind], "null"]}
            for name, kind in sorted(OLLAMA_OPTION_TYPES.items())
        }
        properties["stop"] = {"type": ["array", "null"], "items": {"type": "string"}}
        return {
            "type": "object",
            "properties": properties,
            "additionalProperties": True,
            "description": "Model options (`temperature`, `num_ctx`, `num_predict`, `stop`, ...).",
        }


class EmbeddingInputFieldExtension(OpenApiSerializerFieldExtension):
    """`input` of `POST /v1/embeddings`: the limits as configured when the schema is built."""

    target_class = "apis.serializers.EmbeddingInputField"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        text = {"type": "string", "minLength": 1, "maxLength": settings.MAX_EMBEDDING_INPUT_CHARS}
        return {
            "oneOf": [
                text,
                {
                    "type": "array",
                    "items": text,
                    "minItems": 1,
                    "maxItems": settings.MAX_EMBEDDING_INPUTS,
                },
            ],
            "description": "A string, or a list of strings; none of them empty.",
        }


# --- streams ----------------------------------------------------------------------

DONE_MARKER = "[DONE]"


class SSEDataField(serializers.Field):
    """The `data` of one SSE event: JSON of one of `payloads`, or the `[DONE]` marker."""

    def __init__(
        self, *, payloads: Iterable[type[serializers.Serializer]], done: bool, **kwargs: Any
    ) -> None:
        self.payloads = tuple(payloads)
        self.done = done
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> Any:
        return value


class SSEDataFieldExtension(OpenApiSerializerFieldExtension):
    target_class = SSEDataField

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        field: SSEDataField = self.target
        refs = [
            auto_schema.resolve_serializer(payload, direction).ref for payload in field.payloads
        ]
        payload = {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": refs[0] if len(refs) == 1 else {"anyOf": refs},
            "description": "One JSON object (see its schema).",
        }
        if not field.done:
            return payload
        return {
            "anyOf": [payload, {"type": "string", "const": DONE_MARKER, "description": "The end."}]
        }


def sse_event_serializer(
    name: str, *, payloads: Iterable[type[serializers.Serializer]], done: bool = True
) -> type[serializers.Serializer]:
    """A serializer documenting one `text/event-stream` event of a stream."""
    return type(
        name,
        (serializers.Serializer,),
        {
            "__doc__": "One Server-Sent Event: `data: <json>` (the stream ends `data: [DONE]`).",
            "__module__": __name__,
            "data": SSEDataField(payloads=payloads, done=done),
            "event": serializers.CharField(
                required=False, help_text="Always the default, `message`."
            ),
        },
    )


# --- plain Django views (probes, GET /ollama/) ----------------------------------


# One enum for the state of every readiness check (SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]).
CHECK_STATES = ["ok", "failing"]


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok"])


class ReadyChecksSerializer(serializers.Serializer):
    database = serializers.ChoiceField(choices=CHECK_STATES)
    cache = serializers.ChoiceField(choices=CHECK_STATES)
    backend = serializers.ChoiceField(choices=CHECK_STATES)


class ReadySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok"])
    checks = ReadyChecksSerializer()


class NotReadySerializer(ErrorEnvelopeSerializer):
    checks = ReadyChecksSerializer()


class _DocumentedPlainView(APIView):
    """Stands in for a plain Django view in the schema; never routed."""

    # No authenticator and no permission: the operation has no `security` at all.
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    route: str = ""
    view_name: str = ""


def _plain_view_docs(route: str, view_name: str, **schema: Any) -> type[_DocumentedPlainView]:
    """The stand-in documenting `GET route` (Django's `view_name`): `extend_schema(**schema)`."""

    def get(self: Any, request: Request) -> Response:  # pragma: no cover - documentation only
        raise NotImplementedError

    return type(
        f"{view_name.replace(':', '_')}_docs",
        (_DocumentedPlainView,),
        {"route": route, "view_name": view_name, "get": extend_schema(**schema)(get)},
    )


PLAIN_VIEWS: tuple[type[_DocumentedPlainView], ...] = (
    _plain_view_docs(
        "/healthz",
        "healthz",
        operation_id="healthz",
        tags=["health"],
        summary="Liveness probe",
        description="The process is alive and answering. Does no I/O; needs no key.",
        responses={200: answer(HealthSerializer, "Alive.", "ok", {"status": "ok"})},
    ),
    _plain_view_docs(
        "/readyz",
        "readyz",
        operation_id="readyz",
        tags=["health"],
        summary="Readiness probe",
        description=(
            "The database, the cache and the inference backend all answer (each within "
            "3 s). Otherwise `503`, naming what failed in `error.details` and `checks`. "
            "Needs no key."
        ),
        responses={
            200: answer(
                ReadySerializer,
                "Ready to serve.",
                "ready",
                {"status": "ok", "checks": {"database": "ok", "cache": "ok", "backend": "ok"}},
            ),
            503: answer(
                NotReadySerializer,
                "Something the gateway needs is failing.",
                "backend_down",
                {
                    "error": {
                        "message": "Not ready: backend: The inference backend is not reachable.",
                        "type": "service_unavailable_error",
                        "code": "not_ready",
                        "param": None,
                        "timestamp": EXAMPLE_TIMESTAMP,
                        "details": [
                            {
                                "check": "backend",
                                "problem": "The inference backend is not reachable.",
                            }
                        ],
                    },
                    "checks": {"database": "ok", "cache": "ok", "backend": "failing"},
                },
            ),
        },
    ),
    _plain_view_docs(
        "/ollama/",
        "ollama_compat:root",
        operation_id="ollama_root",
        tags=["ollama"],
        summary="Ollama health check",
        description=(
            "Answers `Ollama is running`, as Ollama does at `/`: the check Ollama clients "
            "make before anything else. Needs no key (it says nothing about models)."
        ),
        responses={
            (200, "text/plain"): answer(
                {"type": "string", "const": "Ollama is running"},
                "The gateway's Ollama surface is up.",
                "running",
                "Ollama is running",
            )
        },
    ),
)


def _route_name(path: str) -> str | None:
    try:
        match = resolve(path)
    except Resolver404:
        return None
    return match.view_name


def add_plain_django_views(
    endpoints: list[tuple[Any, ...]], **kwargs: Any
) -> list[tuple[Any, ...]]:
    """PREPROCESSING_HOOK: document the plain Django views DRF cannot see.

    Each stand-in names the route it documents; a route that no longer
    resolves to that view is left out rather than documented wrongly.
    """
    documented = list(endpoints)
    for view in PLAIN_VIEWS:
        if _route_name(view.route) != view.view_name:
            logger.warning(
                "Not documenting %s: it no longer routes to %s", view.route, view.view_name
            )
            continue
        regex = "^" + re.escape(view.route.lstrip("/")) + "$"
        documented.append((view.route, regex, "GET", view.as_view()))
    return documented


# --- the docs pages ------------------------------------------------------------------

# Nothing but the gateway itself: the pages work offline, and a script or image a
# package would fetch from a CDN (Redoc's "Redocly" logo) is not even requested.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'self'"
)


def local_only(view: Any) -> Any:
    """Serve a docs page with a Content-Security-Policy allowing only the gateway itself."""

    @functools.wraps(view)
    def wrapped(request: Any, *args: Any, **kwargs: Any) -> Any:
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        return response

    return wrapped


# --- the finished document --------------------------------------------------------


def benchmark_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of the benchmark results file (`make bench`), or [] when there is none.

    The file is JSON: `{"results": [{"model", "endpoint", "concurrency",
    "requests_per_second", "tokens_per_second", "ttft_p50_ms", "ttft_p99_ms",
    "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"}, ...], "backend": "...",
    "date": "..."}` (bench/report.py writes it); unknown keys are ignored, a
    column shows when some row has it, "-" where a row has not.
    """
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        logger.warning("Ignoring unreadable benchmark results %s: %s", path, exc)
        return []
    rows = data.get("results") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        return []
    return [row for row in rows if isinstance(row, dict)]


def benchmark_table(path: Path) -> str:
    """A markdown performance table from the project's own benchmark results, or ""."""
    rows = benchmark_rows(path)
    if not rows:
        return ""
    return render_benchmark_table(rows, source=_source_note(path))


def _source_note(path: Path) -> str:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return ""
    parts = [str(data[key]) for key in ("backend", "date") if isinstance(data.get(key), str)]
    return f" ({', '.join(parts)})" if parts else ""


_COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "Model"),
    ("endpoint", "Endpoint"),
    ("concurrency", "Concurrency"),
    ("requests_per_second", "Requests/s"),
    ("tokens_per_second", "Tokens/s"),
    ("ttft_p50_ms", "First token p50 (ms)"),
    ("ttft_p99_ms", "First token p99 (ms)"),
    ("latency_p50_ms", "Latency p50 (ms)"),
    ("latency_p95_ms", "Latency p95 (ms)"),
    ("latency_p99_ms", "Latency p99 (ms)"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value).replace("|", "\\|")


def render_benchmark_table(rows: list[dict[str, Any]], *, source: str = "") -> str:
    columns = [(key, title) for key, title in _COLUMNS if any(key in row for row in rows)]
    lines = [
        f"### Performance\n\nMeasured by this project's benchmark suite (`make bench`, "
        f"BENCHMARKS.md){source}.\n",
        "| " + " | ".join(title for _, title in columns) + " |",
        "|" + "|".join(" --- " for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(_cell(row.get(key)) for key, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


CHAT_OPERATIONS = ("v1_chat_completions_create",)


def _any_value_nullable_fixed(node: Any) -> Any:
    """Undo drf-spectacular's `oneOf: [{}, {type: null}]` for a nullable JSONField.

    Under OpenAPI 3.1 `null` matches both branches, so `oneOf` rejects the
    very value it means to allow; `{}` (any JSON value, null included) says it.
    """
    if isinstance(node, list):
        return [_any_value_nullable_fixed(item) for item in node]
    if not isinstance(node, dict):
        return node
    fixed = {key: _any_value_nullable_fixed(value) for key, value in node.items()}
    branches = fixed.get("oneOf")
    if isinstance(branches, list) and {} in branches:
        del fixed["oneOf"]
    return fixed


def _stream_examples_unwrapped(result: dict[str, Any]) -> None:
    """An NDJSON example is the list of its lines; drf-spectacular wraps it in one more list."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for response in operation.get("responses", {}).values():
                content = response.get("content", {}).get("application/x-ndjson", {})
                for example in content.get("examples", {}).values():
                    value = example.get("value")
                    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
                        example["value"] = value[0]


def finish_schema(
    result: dict[str, Any], generator: Any, request: Any, public: bool, **kwargs: Any
) -> dict[str, Any]:
    """POSTPROCESSING_HOOK: serving origin first in `servers`; benchmark table on chat."""
    result = _any_value_nullable_fixed(result)
    _stream_examples_unwrapped(result)
    if request is not None:
        origin = request.build_absolute_uri("/").rstrip("/")
        others = [server for server in result.get("servers", []) if server.get("url") != origin]
        result["servers"] = [{"url": origin, "description": "This server"}, *others]
    table = benchmark_table(Path(settings.BENCHMARK_RESULTS_FILE))
    if table:
        for path_item in result.get("paths", {}).values():
            for operation in path_item.values():
                if isinstance(operation, dict) and operation.get("operationId") in CHAT_OPERATIONS:
                    operation["description"] = f"{operation.get('description', '')}\n\n{table}"
    return result
