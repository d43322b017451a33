"""OpenAPI documentation of the Ollama-compatible API (`/ollama/api/...`).

Each name is an `extend_schema` decorator for one view of `compat.ollama_views`; shapes,
rules and examples come with the serializers (`compat.ollama_serializers`). Errors are
Ollama's own `{"error": "<message>"}` (bad input is a 400, as Ollama answers it), and
streamed answers are `application/x-ndjson`: one JSON object per line.
"""

from __future__ import annotations

import functools
from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer
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

# One view's docs: `operation(...)` under the `ollama` tag, with `ollama_errors(...)`.
ollama_operation = functools.partial(operation, tags=["ollama"])
# A body naming a model; Ollama answers bad input with 400 (no 415, no 422).
MODEL_BODY_ERRORS = (*MODEL_ERRORS, 400, 413)
RUN_ERRORS = (*MODEL_BODY_ERRORS, 507)

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
    ollama_operation(
        summary=f"{name} (Ollama)",
        description=f"Ollama's `/api/{name.lower()}` through the gateway.\n\n" + STREAM_NOTE,
        request=_model_required(request),
        answer=_answer_or_lines(answer, [line("Rayleigh"), line(" scattering."), line("", **DONE)]),
        errors=ollama_errors(*RUN_ERRORS),
    )
    for name, request, answer, line in (
        ("Chat", OllamaChatSerializer, OllamaChatResponseSerializer, chat_line),
        ("Generate", OllamaGenerateSerializer, OllamaGenerateResponseSerializer, generate_line),
    )
)
embed = ollama_operation(
    summary="Embed (Ollama)",
    description="Ollama's `/api/embed`: one vector per input, every input in one backend call.",
    request=_model_required(OllamaEmbedSerializer),
    answer=OpenApiResponse(OllamaEmbedResponseSerializer, "The vectors, in input order."),
    errors=ollama_errors(*RUN_ERRORS),
)
embeddings = ollama_operation(
    summary="Embeddings (Ollama, legacy)",
    description="Ollama's legacy `/api/embeddings`: one raw (not normalized) vector for `prompt`.",
    request=_model_required(OllamaEmbeddingsSerializer),
    answer=OpenApiResponse(
        OllamaEmbeddingResponseSerializer, "The vector (empty for an empty prompt)."
    ),
    errors=ollama_errors(*RUN_ERRORS),
)
tags = ollama_operation(
    summary="List models (Ollama)",
    description="Ollama's `/api/tags`: the models the backend has.",
    answer=OpenApiResponse(OllamaTagsSerializer, "The models."),
    errors=ollama_errors(*LIST_ERRORS),
)
show = ollama_operation(
    summary="Show a model (Ollama)",
    description="Ollama's `/api/show`: one model's details (`name`: the old spelling of `model`).",
    request=OllamaShowSerializer,
    answer=OpenApiResponse(
        OllamaShowResponseSerializer, "Model details, `model_info` always present."
    ),
    errors=ollama_errors(*MODEL_BODY_ERRORS),
)
ps = ollama_operation(
    summary="Running models (Ollama)",
    description="Ollama's `/api/ps`: the models loaded in memory.",
    answer=OpenApiResponse(OllamaPsSerializer, "The loaded models."),
    errors=ollama_errors(*LIST_ERRORS),
)
version = ollama_operation(
    summary="Backend version (Ollama)",
    description="Ollama's `/api/version`: clients gate features on it.",
    answer=OpenApiResponse(OllamaVersionSerializer, "The backend's version."),
    errors=ollama_errors(*LIST_ERRORS),
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
    ollama_operation(
        summary=f"{verb} a model (Ollama; needs ollama_admin)",
        description=f"Ollama's `/api/{verb.lower()}`: {what}" + PROGRESS_NOTE,
        request=request,
        parameters=[BACKEND_HEADER],
        answer=_answer_or_lines(OllamaProgressSerializer, PROGRESS, PROGRESS_ANSWER, "progress"),
        errors=ollama_errors(*RUN_ERRORS),
    )
    for verb, what, request in (
        ("Pull", "download a model from its registry.", OllamaModelOperationSerializer),
        ("Push", "upload a model to its registry.", OllamaModelOperationSerializer),
        (
            "Create",
            "build a model from another (`from`, `system`, `parameters`, ...).",
            OllamaCreateSerializer,
        ),
    )
)
delete, copy = (
    ollama_operation(
        summary=f"{verb} a model (Ollama; needs ollama_admin)",
        description=f"Ollama's `/api/{verb.lower()}`: {what}\n\n{ADMIN_NOTE}",
        request=request,
        parameters=[BACKEND_HEADER],
        answer=OpenApiResponse(description="Done; empty body."),
        errors=ollama_errors(*MODEL_BODY_ERRORS),
    )
    for verb, what, request in (
        ("Delete", "remove a model from the backend.", OllamaModelOperationSerializer),
        ("Copy", "the same model under a second name.", OllamaCopySerializer),
    )
)
