"""OpenAPI documentation of the Ollama-compatible API (`/ollama/api/...`).

Each name is an `extend_schema` decorator for one view of
`compat.ollama_views`; shapes, rules and examples come with the serializers
(`compat.ollama_serializers`). Errors on this surface are Ollama's own
`{"error": "<message>"}` (bad input is a 400, as Ollama answers it).
Streamed answers are `application/x-ndjson`: one JSON object per line.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
)
from rest_framework import serializers

from compat.ollama_serializers import (
    DONE,
    EXAMPLE_DIGEST,
    OllamaChatResponseSerializer,
    OllamaChatSerializer,
    OllamaCopySerializer,
    OllamaCreateSerializer,
    OllamaEmbeddingResponseSerializer,
    OllamaEmbeddingsSerializer,
    OllamaEmbedResponseSerializer,
    OllamaEmbedSerializer,
    OllamaGenerateResponseSerializer,
    OllamaGenerateSerializer,
    OllamaModelOperationSerializer,
    OllamaProgressSerializer,
    OllamaPsSerializer,
    OllamaShowResponseSerializer,
    OllamaShowSerializer,
    OllamaTagsSerializer,
    OllamaVersionSerializer,
    chat_line,
    generate_line,
)
from gateway.schema import (
    LIST_ERRORS,
    MODEL_ERRORS,
    OllamaErrorSerializer,
    answer_or_stream,
    ollama_errors,
    operation,
)
from gateway.validation import ModelNameField

TAGS = ["ollama"]
# A body naming a model; Ollama answers bad input with 400 (no 415, no 422).
MODEL_BODY_ERRORS = (*MODEL_ERRORS, 400, 413)
RUN_ERRORS = (*MODEL_BODY_ERRORS, 507)

# --- operations ---------------------------------------------------------------------

STREAM_NOTE = (
    "Streams `application/x-ndjson` (documented as the array of its lines) unless `stream` "
    "is false (Ollama's default is true): "
    "one JSON object per line as the backend produces it; the last has `done: true`. "
    'A failure after the first line ends the stream with one line `{"error": "..."}`.'
)
ADMIN_NOTE = (
    "Changes the backend for everyone, so the key must list `ollama_admin` in its allowed "
    "endpoints explicitly (an empty allow-list does not grant it): otherwise `403`."
)


def _model_required(serializer: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """`serializer` as documented, `model` required. It is optional for the serializers, so
    that its absence gets Ollama's own answer (400 or 404, by endpoint); a request without
    one is refused all the same."""
    name = serializer.__name__.removesuffix("Serializer")
    return type(name, (serializer,), {"model": ModelNameField()})


def _operation(
    summary: str,
    description: str,
    answer: OpenApiResponse | dict[Any, OpenApiResponse],
    errors: tuple[int, ...],
    request: type[serializers.Serializer] | None = None,
    parameters: list[OpenApiParameter] | None = None,
) -> Any:
    """One view's docs: `answer` (its `200`, or the JSON answer and the stream) and `errors`."""
    return operation(
        tags=TAGS,
        summary=summary,
        description=description,
        request=request,
        parameters=parameters,
        answer=answer,
        errors=ollama_errors(*errors),
    )


def _answer_or_lines(
    serializer: type[serializers.Serializer],
    lines: list[Any],
    description: str = "The answer, or (by default) its NDJSON lines.",
    name: str = "lines",
) -> dict[Any, OpenApiResponse]:
    """A JSON answer (`stream: false`) and, by default, its NDJSON lines (an array of them,
    each a `serializer` or a last error)."""
    component = serializer.__name__.removesuffix("Serializer").removesuffix("Response")
    stream = PolymorphicProxySerializer(
        component_name=f"{component}Line",
        serializers=[serializer, OllamaErrorSerializer],
        resource_type_field_name=None,
        many=True,
    )
    return answer_or_stream(
        description, serializer, stream, lines, stream_type="application/x-ndjson", stream_name=name
    )


chat, generate = (
    _operation(
        f"{name} (Ollama)",
        f"Ollama's `/api/{name.lower()}` through the gateway.\n\n" + STREAM_NOTE,
        _answer_or_lines(answer, [line("Rayleigh"), line(" scattering."), line("", **DONE)]),
        RUN_ERRORS,
        _model_required(request),
    )
    for name, request, answer, line in (
        ("Chat", OllamaChatSerializer, OllamaChatResponseSerializer, chat_line),
        ("Generate", OllamaGenerateSerializer, OllamaGenerateResponseSerializer, generate_line),
    )
)
embed = _operation(
    "Embed (Ollama)",
    "Ollama's `/api/embed`: one vector per input, every input in one backend call.",
    OpenApiResponse(OllamaEmbedResponseSerializer, "The vectors, in input order."),
    RUN_ERRORS,
    _model_required(OllamaEmbedSerializer),
)
embeddings = _operation(
    "Embeddings (Ollama, legacy)",
    "Ollama's legacy `/api/embeddings`: one raw (not normalized) vector for `prompt`.",
    OpenApiResponse(OllamaEmbeddingResponseSerializer, "The vector (empty for an empty prompt)."),
    RUN_ERRORS,
    _model_required(OllamaEmbeddingsSerializer),
)
tags = _operation(
    "List models (Ollama)",
    "Ollama's `/api/tags`: the models the backend has.",
    OpenApiResponse(OllamaTagsSerializer, "The models."),
    LIST_ERRORS,
)
show = _operation(
    "Show a model (Ollama)",
    "Ollama's `/api/show`: one model's details (`name`: the old spelling of `model`).",
    OpenApiResponse(OllamaShowResponseSerializer, "Model details, `model_info` always present."),
    MODEL_BODY_ERRORS,
    OllamaShowSerializer,
)
ps = _operation(
    "Running models (Ollama)",
    "Ollama's `/api/ps`: the models loaded in memory.",
    OpenApiResponse(OllamaPsSerializer, "The loaded models."),
    LIST_ERRORS,
)
version = _operation(
    "Backend version (Ollama)",
    "Ollama's `/api/version`: clients gate features on it.",
    OpenApiResponse(OllamaVersionSerializer, "The backend's version."),
    LIST_ERRORS,
)
PROGRESS = [
    {"status": "pulling manifest"},
    {
        "status": "pulling 7cdf5a0187d5",
        "digest": "sha256:" + EXAMPLE_DIGEST,
        "total": 8988124069,
        "completed": 1048576,
    },
    {"status": "success"},
]
# Model management goes to one backend; with several, the caller may have to name it.
BACKEND_HEADER = OpenApiParameter(
    "X-Backend",
    str,
    OpenApiParameter.HEADER,
    description=(
        "The backend to change, by its name in OLLAMA_HOSTS (see `/readyz`). Needed only when "
        "several backends can manage models and, for an existing model, several have it: "
        "otherwise `400`. Never retried on another backend."
    ),
)
PROGRESS_ANSWER = "The last status (`stream: false`), or every progress line."
PROGRESS_NOTE = f"\n\n{ADMIN_NOTE}\n\n" + STREAM_NOTE.replace("`done: true`", "status")

pull, push, create = (
    _operation(
        f"{verb} a model (Ollama; needs ollama_admin)",
        f"Ollama's `/api/{route}`: {what}" + PROGRESS_NOTE,
        _answer_or_lines(OllamaProgressSerializer, PROGRESS, PROGRESS_ANSWER, "progress"),
        RUN_ERRORS,
        request,
        [BACKEND_HEADER],
    )
    for verb, route, what, request in (
        ("Pull", "pull", "download a model from its registry.", OllamaModelOperationSerializer),
        ("Push", "push", "upload a model to its registry.", OllamaModelOperationSerializer),
        (
            "Create",
            "create",
            "build a model from another (`from`, `system`, `parameters`, ...).",
            OllamaCreateSerializer,
        ),
    )
)
delete, copy = (
    _operation(
        f"{verb} a model (Ollama; needs ollama_admin)",
        f"Ollama's `/api/{route}`: {what}\n\n{ADMIN_NOTE}",
        OpenApiResponse(description="Done; empty body."),
        MODEL_BODY_ERRORS,
        request,
        [BACKEND_HEADER],
    )
    for verb, route, what, request in (
        ("Delete", "delete", "remove a model from the backend.", OllamaModelOperationSerializer),
        ("Copy", "copy", "the same model under a second name.", OllamaCopySerializer),
    )
)
