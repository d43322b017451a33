"""OpenAPI documentation of the Ollama-compatible API (`/ollama/api/...`).

Each name is an `extend_schema` decorator for one view of
`compat.ollama_views`. Errors on this surface are Ollama's own
`{"error": "<message>"}` (bad input is a 400, as Ollama answers it).
Streamed answers are `application/x-ndjson`: one JSON object per line.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers

from compat.ollama_serializers import (
    OllamaChatSerializer,
    OllamaCopySerializer,
    OllamaCreateSerializer,
    OllamaEmbeddingsSerializer,
    OllamaEmbedSerializer,
    OllamaGenerateSerializer,
    OllamaMessageSerializer,
    OllamaModelOperationSerializer,
    OllamaShowSerializer,
)
from gateway.schema import (
    BASE64_PATTERN,
    EXAMPLE_MODEL,
    KEY_HEADERS,
    LIST_ERRORS,
    MODEL_ERRORS,
    OllamaErrorSerializer,
    answer,
    answer_or_stream,
    ollama_errors,
    request_example,
    schema_field,
    tool_parameters_schema,
)
from gateway.validation import ModelNameField

TAGS = ["ollama"]
NDJSON = "application/x-ndjson"
# A body naming a model; Ollama answers bad input with 400 (no 415, no 422).
MODEL_BODY_ERRORS = (*MODEL_ERRORS, 400, 413)
RUN_ERRORS = (*MODEL_BODY_ERRORS, 507)

# --- requests, as strictly as the views check them ----------------------------------
# Documentation subclasses of the real input serializers: `model` is optional
# for the serializers (so that its absence gets Ollama's own message), but a
# request without one is refused, so the documents require it.

IMAGES = schema_field(
    {
        "type": ["array", "null"],
        "items": {"type": "string", "pattern": BASE64_PATTERN},
        "description": "Images as raw base64 (no `data:` prefix).",
    },
    required=False,
)
FORMAT = schema_field(
    {
        "anyOf": [{"enum": ["json", "", None]}, {"type": "object"}],
        "description": '`"json"`, or a JSON Schema object the answer must follow.',
    },
    required=False,
)
NO_LOGPROBS = schema_field(
    {
        "anyOf": [{"const": False}, {"type": "null"}],
        "description": "Log probabilities are not supported.",
    },
    required=False,
)
TOOL_CALLS = schema_field(
    {
        "type": ["array", "null"],
        "items": {
            "type": "object",
            "required": ["function"],
            "properties": {
                "function": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "arguments": {
                            "anyOf": [
                                {"type": "object"},
                                {"enum": [None, False, 0, ""]},
                                {"type": "array", "maxItems": 0},
                            ]
                        },
                    },
                }
            },
        },
    },
    required=False,
)


class OllamaMessage(OllamaMessageSerializer):
    images = IMAGES
    tool_calls = TOOL_CALLS


OLLAMA_TOOLS = schema_field(
    {
        "type": ["array", "null"],
        "items": {
            "type": "object",
            "properties": {
                "type": {"type": ["string", "null"]},
                "function": {
                    "type": ["object", "null"],
                    "properties": {
                        "name": {"type": ["string", "null"]},
                        "description": {"type": ["string", "null"]},
                        "parameters": tool_parameters_schema(nullable_type=True),
                    },
                },
            },
        },
        "description": 'Tools the model may call: `{"type": "function", "function": {...}}`.',
    },
    required=False,
)


class OllamaChat(OllamaChatSerializer):
    """`POST /ollama/api/chat` body."""

    model = ModelNameField()
    tools = OLLAMA_TOOLS
    messages = OllamaMessage(many=True, required=False, allow_null=True)
    format = FORMAT
    logprobs = NO_LOGPROBS


class OllamaGenerate(OllamaGenerateSerializer):
    """`POST /ollama/api/generate` body."""

    model = ModelNameField()
    images = IMAGES
    format = FORMAT
    logprobs = NO_LOGPROBS


class OllamaEmbed(OllamaEmbedSerializer):
    """`POST /ollama/api/embed` body."""

    model = ModelNameField()


class OllamaEmbeddings(OllamaEmbeddingsSerializer):
    """`POST /ollama/api/embeddings` body."""

    model = ModelNameField()


class OllamaShow(OllamaShowSerializer):
    """`POST /ollama/api/show` body: `model` (or its old spelling `name`)."""


class OllamaModelOperation(OllamaModelOperationSerializer):
    """`pull`, `push`, `delete` bodies: `model` (or its old spelling `name`)."""


class OllamaCreate(OllamaCreateSerializer):
    """`POST /ollama/api/create` body: `model` (or `name`), and how to build it."""


class ModelOrNameRequired(OpenApiSerializerExtension):
    """`model` or `name`, one of them a model name (not blank)."""

    target_class = OllamaShow
    match_subclasses = False

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["anyOf"] = [
            {"required": [name], "properties": {name: {"minLength": 1}}}
            for name in ("model", "name")
        ]
        return schema


class _ModelOperationRequired(ModelOrNameRequired):
    target_class = OllamaModelOperation


class _CreateRequired(ModelOrNameRequired):
    target_class = OllamaCreate


# --- response shapes ---------------------------------------------------------------


class OllamaMetricsMixin(serializers.Serializer):
    total_duration = serializers.IntegerField(required=False, help_text="Nanoseconds.")
    load_duration = serializers.IntegerField(required=False, help_text="Nanoseconds.")
    prompt_eval_count = serializers.IntegerField(required=False)
    prompt_eval_duration = serializers.IntegerField(required=False, help_text="Nanoseconds.")
    eval_count = serializers.IntegerField(required=False)
    eval_duration = serializers.IntegerField(required=False, help_text="Nanoseconds.")


class OllamaToolCallFunctionOutSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    name = serializers.CharField()
    arguments = serializers.DictField()


class OllamaToolCallOutSerializer(serializers.Serializer):
    id = serializers.CharField(required=False)
    function = OllamaToolCallFunctionOutSerializer()


class OllamaAssistantMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["assistant"])
    content = serializers.CharField(allow_blank=True)
    thinking = serializers.CharField(required=False)
    tool_calls = OllamaToolCallOutSerializer(many=True, required=False)


class OllamaChatResponseSerializer(OllamaMetricsMixin):
    """A whole `/api/chat` answer, or one NDJSON line of a streamed one."""

    model = serializers.CharField()
    created_at = serializers.DateTimeField()
    message = OllamaAssistantMessageSerializer()
    done = serializers.BooleanField()
    done_reason = serializers.CharField(required=False, help_text="On the last line.")


class OllamaGenerateResponseSerializer(OllamaMetricsMixin):
    """A whole `/api/generate` answer, or one NDJSON line of a streamed one."""

    model = serializers.CharField()
    created_at = serializers.DateTimeField()
    response = serializers.CharField(allow_blank=True)
    thinking = serializers.CharField(required=False)
    done = serializers.BooleanField()
    done_reason = serializers.CharField(required=False)
    context = serializers.ListField(child=serializers.IntegerField(), required=False)


class OllamaEmbedResponseSerializer(serializers.Serializer):
    model = serializers.CharField()
    embeddings = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()))
    total_duration = serializers.IntegerField(required=False)
    load_duration = serializers.IntegerField(required=False)
    prompt_eval_count = serializers.IntegerField(required=False)


class OllamaEmbeddingResponseSerializer(serializers.Serializer):
    embedding = serializers.ListField(child=serializers.FloatField())


class OllamaModelDetailsSerializer(serializers.Serializer):
    parent_model = serializers.CharField(allow_blank=True)
    format = serializers.CharField(allow_blank=True)
    family = serializers.CharField(allow_blank=True)
    families = serializers.ListField(child=serializers.CharField(), allow_null=True)
    parameter_size = serializers.CharField(allow_blank=True)
    quantization_level = serializers.CharField(allow_blank=True)


class OllamaTagSerializer(serializers.Serializer):
    name = serializers.CharField()
    model = serializers.CharField()
    modified_at = serializers.DateTimeField(required=False)
    size = serializers.IntegerField()
    digest = serializers.CharField(allow_blank=True)
    details = OllamaModelDetailsSerializer()
    capabilities = serializers.ListField(child=serializers.CharField(), required=False)


class OllamaTagsSerializer(serializers.Serializer):
    models = OllamaTagSerializer(many=True)


class OllamaRunningModelSerializer(serializers.Serializer):
    name = serializers.CharField()
    model = serializers.CharField()
    size = serializers.IntegerField()
    digest = serializers.CharField(allow_blank=True)
    details = OllamaModelDetailsSerializer()
    expires_at = serializers.DateTimeField(required=False)
    size_vram = serializers.IntegerField()
    context_length = serializers.IntegerField(required=False)


class OllamaPsSerializer(serializers.Serializer):
    models = OllamaRunningModelSerializer(many=True)


class OllamaShowResponseSerializer(serializers.Serializer):
    license = serializers.CharField(required=False)
    modelfile = serializers.CharField(required=False)
    parameters = serializers.CharField(required=False)
    template = serializers.CharField(required=False)
    system = serializers.CharField(required=False)
    details = OllamaModelDetailsSerializer()
    model_info = serializers.DictField()
    capabilities = serializers.ListField(child=serializers.CharField(), required=False)
    modified_at = serializers.DateTimeField(required=False)


class OllamaVersionSerializer(serializers.Serializer):
    version = serializers.CharField()


class OllamaProgressSerializer(serializers.Serializer):
    """One progress line of pull, push or create (the last says `success`)."""

    status = serializers.CharField()
    digest = serializers.CharField(required=False)
    total = serializers.IntegerField(required=False)
    completed = serializers.IntegerField(required=False)


STREAM_NOTE = (
    "Streams `application/x-ndjson` (documented as the array of its lines) unless `stream` "
    "is false (Ollama's default is true): "
    "one JSON object per line as the backend produces it; the last has `done: true`. "
    'A failure after the first line ends the stream with one line `{"error": "..."}`.'
)


def ndjson_lines(serializer: type[serializers.Serializer]) -> PolymorphicProxySerializer:
    """An NDJSON stream read as the array of its lines: each a `serializer`, or a last error."""
    name = serializer.__name__.removesuffix("Serializer").removesuffix("Response")
    return PolymorphicProxySerializer(
        component_name=f"{name}Line",
        serializers=[serializer, OllamaErrorSerializer],
        resource_type_field_name=None,
        many=True,
    )


def _answer_or_lines(
    serializer: type[serializers.Serializer],
    description: str,
    answer: tuple[str, Any],
    lines: tuple[str, list[dict[str, Any]]],
) -> dict[Any, OpenApiResponse]:
    """A JSON answer (`stream: false`) and its NDJSON lines (the default): (name, example)."""
    return answer_or_stream(
        description, (serializer, *answer), (ndjson_lines(serializer), *lines), stream_type=NDJSON
    )


def _chat_line(content: str, **last: Any) -> dict[str, Any]:
    return {
        "model": EXAMPLE_MODEL,
        "created_at": "2026-01-15T10:30:00.123456Z",
        "message": {"role": "assistant", "content": content},
        "done": bool(last),
        **last,
    }


def _generate_line(response: str, **last: Any) -> dict[str, Any]:
    return {
        "model": EXAMPLE_MODEL,
        "created_at": "2026-01-15T10:30:00.123456Z",
        "response": response,
        "done": bool(last),
        **last,
    }


DONE = {"done_reason": "stop", "prompt_eval_count": 15, "eval_count": 4}
ANSWER = "The answer, or (by default) its NDJSON lines."
EXAMPLE_DETAILS = {
    "parent_model": "",
    "format": "gguf",
    "family": "qwen2",
    "families": ["qwen2"],
    "parameter_size": "14.8B",
    "quantization_level": "Q4_K_M",
}
EXAMPLE_DIGEST = "7cdf5a0187d5c58cc5d369b255592f7841d1c4696d45a8c8a9489440385b22f6"


# --- operations ---------------------------------------------------------------------

chat = extend_schema(
    tags=TAGS,
    summary="Chat (Ollama)",
    description="Ollama's `/api/chat` through the gateway.\n\n" + STREAM_NOTE,
    request=OllamaChat,
    parameters=KEY_HEADERS,
    examples=[
        request_example(
            "chat",
            {
                "model": EXAMPLE_MODEL,
                "messages": [{"role": "user", "content": "Why is the sky blue?"}],
                "stream": False,
            },
        )
    ],
    responses={
        **_answer_or_lines(
            OllamaChatResponseSerializer,
            ANSWER,
            ("answer", _chat_line("Rayleigh scattering.", **DONE)),
            ("lines", [_chat_line("Rayleigh"), _chat_line(" scattering."), _chat_line("", **DONE)]),
        ),
        **ollama_errors(*RUN_ERRORS),
    },
)

generate = extend_schema(
    tags=TAGS,
    summary="Generate (Ollama)",
    description="Ollama's `/api/generate` through the gateway.\n\n" + STREAM_NOTE,
    request=OllamaGenerate,
    parameters=KEY_HEADERS,
    examples=[
        request_example(
            "generate", {"model": EXAMPLE_MODEL, "prompt": "Why is the sky blue?", "stream": False}
        )
    ],
    responses={
        **_answer_or_lines(
            OllamaGenerateResponseSerializer,
            ANSWER,
            ("answer", _generate_line("Rayleigh scattering.", **DONE)),
            (
                "lines",
                [
                    _generate_line("Rayleigh"),
                    _generate_line(" scattering."),
                    _generate_line("", **DONE),
                ],
            ),
        ),
        **ollama_errors(*RUN_ERRORS),
    },
)

embed = extend_schema(
    tags=TAGS,
    summary="Embed (Ollama)",
    description="Ollama's `/api/embed`: one vector per input, every input in one backend call.",
    request=OllamaEmbed,
    parameters=KEY_HEADERS,
    examples=[
        request_example(
            "embed", {"model": "mxbai-embed-large", "input": ["first text", "second text"]}
        )
    ],
    responses={
        200: answer(
            OllamaEmbedResponseSerializer,
            "The vectors, in input order.",
            "vectors",
            {
                "model": "mxbai-embed-large",
                "embeddings": [[0.0123, -0.0456], [0.0321, 0.0654]],
                "prompt_eval_count": 6,
            },
        ),
        **ollama_errors(*RUN_ERRORS),
    },
)

embeddings = extend_schema(
    tags=TAGS,
    summary="Embeddings (Ollama, legacy)",
    description="Ollama's legacy `/api/embeddings`: one raw (not normalized) vector for `prompt`.",
    request=OllamaEmbeddings,
    parameters=KEY_HEADERS,
    examples=[
        request_example(
            "embeddings", {"model": "mxbai-embed-large", "prompt": "The quick brown fox"}
        )
    ],
    responses={
        200: answer(
            OllamaEmbeddingResponseSerializer,
            "The vector (empty for an empty prompt).",
            "vector",
            {"embedding": [0.5123, -1.0456]},
        ),
        **ollama_errors(*RUN_ERRORS),
    },
)

tags = extend_schema(
    tags=TAGS,
    summary="List models (Ollama)",
    description="Ollama's `/api/tags`: the models the backend has.",
    parameters=KEY_HEADERS,
    responses={
        200: answer(
            OllamaTagsSerializer,
            "The models.",
            "models",
            {
                "models": [
                    {
                        "name": "qwen2.5:14b",
                        "model": "qwen2.5:14b",
                        "modified_at": "2026-01-15T10:30:00.123456Z",
                        "size": 8988124069,
                        "digest": EXAMPLE_DIGEST,
                        "details": EXAMPLE_DETAILS,
                        "capabilities": ["completion", "tools"],
                    }
                ]
            },
        ),
        **ollama_errors(*LIST_ERRORS),
    },
)

show = extend_schema(
    tags=TAGS,
    summary="Show a model (Ollama)",
    description="Ollama's `/api/show`: one model's details (`name`: the old spelling of `model`).",
    request=OllamaShow,
    parameters=KEY_HEADERS,
    examples=[request_example("show", {"model": EXAMPLE_MODEL})],
    responses={
        200: answer(
            OllamaShowResponseSerializer,
            "Model details, `model_info` always present.",
            "model",
            {
                "license": "Apache License 2.0",
                "parameters": "temperature 0.7",
                "template": "{{ .Prompt }}",
                "details": EXAMPLE_DETAILS,
                "model_info": {"general.architecture": "qwen2", "qwen2.context_length": 32768},
                "capabilities": ["completion", "tools"],
                "modified_at": "2026-01-15T10:30:00.123456Z",
            },
        ),
        **ollama_errors(*MODEL_BODY_ERRORS),
    },
)

ps = extend_schema(
    tags=TAGS,
    summary="Running models (Ollama)",
    description="Ollama's `/api/ps`: the models loaded in memory.",
    parameters=KEY_HEADERS,
    responses={
        200: answer(
            OllamaPsSerializer,
            "The loaded models.",
            "loaded",
            {
                "models": [
                    {
                        "name": "qwen2.5:14b",
                        "model": "qwen2.5:14b",
                        "size": 10485760000,
                        "digest": EXAMPLE_DIGEST,
                        "details": EXAMPLE_DETAILS,
                        "expires_at": "2026-01-15T10:35:00.123456Z",
                        "size_vram": 10485760000,
                        "context_length": 4096,
                    }
                ]
            },
        ),
        **ollama_errors(*LIST_ERRORS),
    },
)

version = extend_schema(
    tags=TAGS,
    summary="Backend version (Ollama)",
    description="Ollama's `/api/version`: clients gate features on it.",
    parameters=KEY_HEADERS,
    responses={
        200: answer(
            OllamaVersionSerializer, "The backend's version.", "version", {"version": "0.12.6"}
        ),
        **ollama_errors(*LIST_ERRORS),
    },
)

ADMIN_NOTE = (
    "Changes the backend for everyone, so the key must list `ollama_admin` in its allowed "
    "endpoints explicitly (an empty allow-list does not grant it): otherwise `403`."
)


def _progress(summary: str, what: str, request: type[serializers.Serializer]) -> Any:
    return extend_schema(
        tags=TAGS,
        summary=summary,
        description=f"{what}\n\n{ADMIN_NOTE}\n\n" + STREAM_NOTE.replace("`done: true`", "status"),
        request=request,
        parameters=KEY_HEADERS,
        examples=[request_example("model", {"model": EXAMPLE_MODEL})],
        responses={
            **_answer_or_lines(
                OllamaProgressSerializer,
                "The last status (`stream: false`), or every progress line.",
                ("done", {"status": "success"}),
                (
                    "progress",
                    [
                        {"status": "pulling manifest"},
                        {
                            "status": "pulling 7cdf5a0187d5",
                            "digest": "sha256:" + EXAMPLE_DIGEST,
                            "total": 8988124069,
                            "completed": 1048576,
                        },
                        {"status": "success"},
                    ],
                ),
            ),
            **ollama_errors(*RUN_ERRORS),
        },
    )


pull = _progress(
    "Pull a model (Ollama; needs ollama_admin)",
    "Ollama's `/api/pull`: download a model from its registry.",
    OllamaModelOperation,
)
push = _progress(
    "Push a model (Ollama; needs ollama_admin)",
    "Ollama's `/api/push`: upload a model to its registry.",
    OllamaModelOperation,
)
create = _progress(
    "Create a model (Ollama; needs ollama_admin)",
    "Ollama's `/api/create`: build a model from another (`from`, `system`, `parameters`, ...).",
    OllamaCreate,
)


def _empty(summary: str, what: str, request: type[serializers.Serializer], example: dict) -> Any:
    return extend_schema(
        tags=TAGS,
        summary=summary,
        description=f"{what}\n\n{ADMIN_NOTE}",
        request=request,
        parameters=KEY_HEADERS,
        examples=[request_example("model", example)],
        responses={
            200: OpenApiResponse(description="Done; empty body."),
            **ollama_errors(*MODEL_BODY_ERRORS),
        },
    )


delete = _empty(
    "Delete a model (Ollama; needs ollama_admin)",
    "Ollama's `/api/delete`: remove a model from the backend.",
    OllamaModelOperation,
    {"model": EXAMPLE_MODEL},
)
copy = _empty(
    "Copy a model (Ollama; needs ollama_admin)",
    "Ollama's `/api/copy`: the same model under a second name.",
    OllamaCopySerializer,
    {"source": EXAMPLE_MODEL, "destination": "my-model:latest"},
)
