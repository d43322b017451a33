"""Reusable pieces of the OpenAPI document (drf-spectacular).

- The error envelope as serializers; `errors(...)` and `ollama_errors(...)`: an
  operation's documented errors in the gateway's or Ollama's shape, the examples
  real `APIError` instances described by the docstrings of their classes.
- `example(...)`: a serializer's example, given once for every operation.
- Security schemes: `BearerAuth` (API keys), `BasicAuth` (the staff key-management API).
- `sse_event_serializer(...)`: a `text/event-stream` event whose `data` is a
  JSON payload (OpenAPI 3.1 `contentSchema`) or the closing `[DONE]`.
- Hooks: `add_plain_django_views` documents the plain Django views (probes,
  `GET /ollama/`); `finish_schema` turns a serializer's `x-any-of` into `anyOf`,
  lists the serving origin first in `servers` and adds the benchmark table to chat.
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
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway import errors as api_errors
from gateway.errors import APIError, error_body, validation_error
from gateway.probes import not_ready_body

logger = logging.getLogger(__name__)

EXAMPLE_TIMESTAMP = "2026-01-15T10:30:00.123456+00:00"
EXAMPLE_MODEL = "qwen2.5:14b"

# --- the error envelope -------------------------------------------------------


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


# Every error the gateway gives, one or more real instances per status. The
# documented description is the docstring of the error's class.
ERROR_EXAMPLES: dict[str, APIError] = {
    "malformed_json": api_errors.BadRequestError(
        "Malformed JSON body: JSON parse error - Expecting value: line 1 column 1"
    ),
    "invalid_api_key": api_errors.AuthenticationError(),
    "endpoint_not_allowed": api_errors.PermissionDeniedError(
        "This API key may not use the 'chat' endpoints.", code="endpoint_not_allowed"
    ),
    "model_not_allowed": api_errors.PermissionDeniedError(
        f"This API key may not use the model '{EXAMPLE_MODEL}'.",
        code="model_not_allowed",
        param="model",
    ),
    "model_not_found": api_errors.ModelNotFoundError(EXAMPLE_MODEL),
    "not_acceptable": api_errors.NotAcceptableError(),
    "request_too_large": api_errors.RequestTooLargeError(),
    "unsupported": api_errors.UnsupportedMediaTypeError(
        'Unsupported media type "text/plain" in request.'
    ),
    "validation_error": validation_error(
        {"messages": [ErrorDetail("This field is required.", code="required")]}
    ),
    "rate_limit_exceeded": api_errors.RateLimitedError(17),
    "backend_error": api_errors.BackendError(),
    "backend_unavailable": api_errors.BackendUnavailableError(),
    "backend_busy": api_errors.BackendBusyError(2),
    "server_shutting_down": api_errors.ServerShuttingDownError(),
    "backend_timeout": api_errors.BackendTimeoutError(),
    "insufficient_resources": api_errors.InsufficientResourcesError(),
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
BAD_INPUT = "Malformed JSON, or a field with a wrong type or value."


def error_responses(
    statuses: Iterable[int], body: Any, schema: Any, bad_input_400: bool = False, **named: APIError
) -> dict[int, OpenApiResponse]:
    """Documented error responses for `statuses`: `schema`, and as examples `body(exc)`
    of the `named` errors of a status, or else of the gateway's usual ones (`ERROR_EXAMPLES`),
    described by their classes' docstrings. With `bad_input_400` a field error is a 400
    (as Ollama and Anthropic answer it), documented as such."""
    if bad_input_400:
        statuses = {400 if status == 422 else status for status in statuses}
    responses: dict[int, OpenApiResponse] = {}
    for status in sorted(set(statuses)):
        chosen = {name: exc for name, exc in named.items() if exc.status == status} or {
            name: exc for name, exc in ERROR_EXAMPLES.items() if exc.status == status
        }
        classes = " ".join(dict.fromkeys(str(type(exc).__doc__) for exc in chosen.values()))
        responses[status] = OpenApiResponse(
            schema,
            description=BAD_INPUT if bad_input_400 and status == 400 else classes,
            examples=[
                OpenApiExample(name, value=body(exc), response_only=True, status_codes=[status])
                for name, exc in chosen.items()
            ],
        )
    return responses


def _example_timestamp(body: dict[str, Any]) -> dict[str, Any]:
    body["error"]["timestamp"] = EXAMPLE_TIMESTAMP
    body["error"].pop("request_id", None)  # the id of the request that asked for the docs
    return body


def schema_field(schema: dict[str, Any], **kwargs: Any) -> serializers.Field:
    """A documentation-only field whose JSON schema is `schema` (say `null` in it if allowed).

    For request shapes whose rules live in code (translation, cross-field
    checks): documentation subclasses of the real serializers use it.
    """
    field_class = extend_schema_field(schema)(type("DocumentedField", (serializers.JSONField,), {}))
    return field_class(**kwargs)


def errors(*statuses: int, **named: APIError) -> dict[int, OpenApiResponse]:
    """An operation's documented errors in the gateway's envelope (see `error_responses`)."""
    return error_responses(
        statuses, lambda exc: _example_timestamp(error_body(exc)), ErrorEnvelopeSerializer, **named
    )


def ollama_errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """The same in Ollama's shape (`{"error": "..."}`), bad input being a 400."""
    return error_responses(
        statuses, lambda exc: {"error": exc.message}, OllamaErrorSerializer, bad_input_400=True
    )


# --- answers and examples ----------------------------------------------------------


def operation(*, answer: Any, errors: dict[int, OpenApiResponse], **schema: Any) -> Any:
    """`extend_schema(**schema)` for one operation: `answer` (its `200`, or its responses by
    status and media type, e.g. `answer_or_stream(...)`), then its documented `errors`."""
    answers = answer if isinstance(answer, dict) else {200: answer}
    return extend_schema(responses={**answers, **errors}, **schema)


def answer(
    serializer: Any, description: str, name: str = "", example: Any = None
) -> OpenApiResponse:
    """A documented answer: its schema, what it is, and (if `name`d) one example of it."""
    examples = [OpenApiExample(name, value=example)] if name else []
    return OpenApiResponse(serializer, description=description, examples=examples)


def answer_or_stream(
    description: str,
    whole: Any,
    stream: Any,
    stream_example: Any,
    *,
    stream_type: str = "text/event-stream",
    stream_name: str = "events",
    whole_example: tuple[str, Any] | None = None,
) -> dict[tuple[int, str], OpenApiResponse]:
    """`200` as one JSON answer (`stream: false`, the serializer's own example unless
    `whole_example` names one) or as a stream (`stream_example`), under one description."""
    return {
        (200, "application/json"): answer(whole, description, *(whole_example or ())),
        (200, stream_type): answer(stream, description, stream_name, stream_example),
    }


def request_example(name: str, value: Any, summary: str | None = None) -> OpenApiExample:
    """An example request body."""
    return OpenApiExample(name, summary=summary, request_only=True, value=value)


def example(name: str, value: Any) -> Any:
    """A serializer's one example (in the docs of every operation that takes or gives it)."""
    return extend_schema_serializer(examples=[OpenApiExample(name, value=value)])


# --- headers --------------------------------------------------------------------


def response_header(name: str, kind: type, status: int, description: str) -> OpenApiParameter:
    """A header the gateway always sends with `status` answers (`kind`: `int` or `str`)."""
    return OpenApiParameter(
        name,
        kind,
        OpenApiParameter.HEADER,
        response=[status],
        required=True,
        description=description,
    )


KEY_HEADERS = [
    response_header(*header)
    for header in (
        (
            "x-ratelimit-limit-requests",
            int,
            200,
            "Requests per minute this key may make to this endpoint group.",
        ),
        ("x-ratelimit-remaining-requests", int, 200, "Requests left in the current window."),
        (
            "x-ratelimit-reset-requests",
            str,
            200,
            'Time until the budget is whole again, e.g. "17s".',
        ),
        ("Retry-After", int, 429, "Whole seconds to wait before retrying (at least 1)."),
        ("WWW-Authenticate", str, 401, 'The scheme to authenticate with: `Bearer realm="api"`.'),
    )
]

MODEL_ID = OpenApiParameter(
    "model_id",
    str,
    OpenApiParameter.PATH,
    description="The model's id, as the backend names it. Ids may hold `:`, `.`, `/` and `-` "
    "(`hf.co/org/name:Q4_K_M`).",
    examples=[OpenApiExample("qwen", value=EXAMPLE_MODEL)],
)

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
    """drf-spectacular's AutoSchema, saying in request schemas what DRF enforces, and
    documenting the key's headers (`KEY_HEADERS`) on every operation behind a key.

    A CharField without `allow_blank` refuses "" and, trimmed, whitespace:
    `minLength: 1` and a non-space character. A list field or nested list
    without `allow_empty` refuses []: `minItems: 1`. (Request and response
    components are split, so answers keep their own rules.)
    """

    def get_override_parameters(self) -> list[Any]:
        # Every operation behind an API key answers with the key's headers.
        keyed = {"BearerAuth": []} in (self.get_auth() or [])
        return [*(KEY_HEADERS if keyed else []), *super().get_override_parameters()]

    def _get_request_body(self, direction: Any = "request") -> Any:
        # Every body the gateway takes is required (Ollama's views refuse an empty one).
        method = self.method
        if method == "DELETE" and self.get_request_serializer() is not None:
            # Ollama's DELETE /api/delete takes a JSON body (OpenAPI 3.1 allows it);
            # drf-spectacular documents bodies for POST, PUT and PATCH only.
            self.method = "POST"
        try:
            body = super()._get_request_body(direction)
        finally:
            self.method = method
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


# --- streams ----------------------------------------------------------------------


class SSEDataField(serializers.Field):
    """The `data` of one SSE event: JSON of `payload` or of an error, or `[DONE]`."""

    def __init__(self, payload: type[serializers.Serializer], **kwargs: Any) -> None:
        self.payload = payload
        super().__init__(**kwargs)


class SSEDataFieldExtension(OpenApiSerializerFieldExtension):
    target_class = SSEDataField

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        refs = [
            auto_schema.resolve_serializer(payload, direction).ref
            for payload in (self.target.payload, ErrorEnvelopeSerializer)
        ]
        payload = {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"anyOf": refs},
            "description": "One JSON object (see its schema).",
        }
        done = {"type": "string", "const": "[DONE]", "description": "The end."}
        return {"anyOf": [payload, done]}


def sse_event_serializer(payload: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """A serializer documenting one `text/event-stream` event: `payload` or an error."""

    class Event(serializers.Serializer):
        """One Server-Sent Event: `data: <json>` (the stream ends `data: [DONE]`)."""

        data = SSEDataField(payload)
        event = serializers.CharField(required=False, help_text="Always the default, `message`.")

    # The component is named after the payload: `ChatStreamEvent...` → `ChatStreamSSEEvent`.
    name = payload.__name__.removesuffix("Serializer").removesuffix("Event").removesuffix("Chunk")
    Event.__name__ = Event.__qualname__ = f"{name}SSEEvent"
    return Event


# --- plain Django views (probes, GET /ollama/) ----------------------------------


# One enum for the state of every readiness check (SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]).
CHECK_STATES = ["ok", "failing"]


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok"])


class ReadyChecksSerializer(serializers.Serializer):
    database = serializers.ChoiceField(choices=CHECK_STATES)
    cache = serializers.ChoiceField(choices=CHECK_STATES)
    backend = serializers.ChoiceField(choices=CHECK_STATES)


class BackendStateSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=CHECK_STATES)
    version = serializers.CharField(required=False, help_text="When it answers.")
    problem = serializers.CharField(required=False, help_text="When it fails.")


def _backends_field() -> serializers.DictField:
    return serializers.DictField(
        child=BackendStateSerializer(),
        required=False,
        help_text="With several backends (Ollama and the embedded engine): each one's "
        "state. The gateway is ready while one of them answers.",
    )


class ReadySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok"])
    checks = ReadyChecksSerializer()
    backends = _backends_field()


class NotReadySerializer(ErrorEnvelopeSerializer):
    # Absent while the process drains before it exits: no check is run then.
    checks = ReadyChecksSerializer(required=False)
    backends = _backends_field()


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
            "The database, the cache and an inference backend answer (each within "
            "3 s). Otherwise `503`, naming what failed in `error.details` and `checks`; "
            "from the moment the process receives SIGTERM until it exits, `503` with code "
            "`server_shutting_down` and `Retry-After`. With Ollama and the embedded engine "
            "both configured, `backends` gives each one's state, and one answering is "
            "enough. Needs no key."
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
                "Something the gateway needs is failing, or the process is shutting down.",
                "backend_down",
                _example_timestamp(
                    not_ready_body(
                        [("backend", api_errors.BackendUnavailableError.default_message)],
                        {"database": "ok", "cache": "ok", "backend": "failing"},
                    )
                ),
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


def add_plain_django_views(
    endpoints: list[tuple[Any, ...]], **kwargs: Any
) -> list[tuple[Any, ...]]:
    """PREPROCESSING_HOOK: document the plain Django views DRF cannot see.

    Each stand-in names the route it documents; a route that no longer
    resolves to that view is left out rather than documented wrongly.
    """
    documented = list(endpoints)
    for view in PLAIN_VIEWS:
        try:
            routed = resolve(view.route).view_name == view.view_name
        except Resolver404:
            routed = False
        if not routed:
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


def benchmark_table(path: Path) -> str:
    """A markdown performance table from the project's own benchmark results, or "".

    The file is JSON, `{"results": [{<keys of _COLUMNS>}, ...], "backend": "...", "date":
    "..."}` (bench/report.py writes it): unknown keys are ignored, a column shows when
    some row has it, "-" where a row has not.
    """
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return ""
    except (OSError, ValueError) as exc:
        logger.warning("Ignoring unreadable benchmark results %s: %s", path, exc)
        return ""
    results = data.get("results") if isinstance(data, dict) else None
    rows = [row for row in results if isinstance(row, dict)] if isinstance(results, list) else []
    if not rows:
        return ""
    parts = [str(data[key]) for key in ("backend", "date") if isinstance(data.get(key), str)]
    source = f" ({', '.join(parts)})" if parts else ""
    columns = [(key, title) for key, title in _COLUMNS if any(key in row for row in rows)]
    lines = [
        f"### Performance\n\nMeasured by this project's benchmark suite (`make bench`, "
        f"BENCHMARKS.md){source}.\n",
        "| " + " | ".join(title for _, title in columns) + " |",
        "|" + "|".join(" --- " for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(_cell(row.get(key)) for key, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def _each_operation(result: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for path_item in result.get("paths", {}).values():
        yield from (operation for operation in path_item.values() if isinstance(operation, dict))


def _stream_examples_unwrapped(result: dict[str, Any]) -> None:
    """An NDJSON example is the list of its lines; drf-spectacular wraps it in one more list."""
    for operation in _each_operation(result):
        for response in operation.get("responses", {}).values():
            content = response.get("content", {}).get("application/x-ndjson", {})
            for example in content.get("examples", {}).values():
                value = example.get("value")
                if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
                    example["value"] = value[0]


def finish_schema(
    result: dict[str, Any], generator: Any, request: Any, public: bool, **kwargs: Any
) -> dict[str, Any]:
    """POSTPROCESSING_HOOK: `x-any-of` as `anyOf`; serving origin first in `servers`;
    benchmark table on chat."""
    _stream_examples_unwrapped(result)
    for component in result.get("components", {}).get("schemas", {}).values():
        # A rule across fields, attached to a serializer with the public
        # `extend_schema_serializer(extensions={"x-any-of": [...]})`.
        if "x-any-of" in component:
            component["anyOf"] = component.pop("x-any-of")
    if request is not None:
        origin = request.build_absolute_uri("/").rstrip("/")
        others = [server for server in result.get("servers", []) if server.get("url") != origin]
        result["servers"] = [{"url": origin, "description": "This server"}, *others]
    table = benchmark_table(Path(settings.BENCHMARK_RESULTS_FILE))
    for operation in _each_operation(result):
        if table and operation.get("operationId") == "v1_chat_completions_create":
            operation["description"] = f"{operation.get('description', '')}\n\n{table}"
    return result
