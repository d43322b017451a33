"""OpenAPI documentation of the OpenAI-compatible API (`/openai/v1/`, mirrored at `/ollama/v1/`).

Each name is an `extend_schema` decorator for one action of
`compat.openai_views`. The streamed variants (`chat.completion.chunk`,
`text_completion` events) are documented as `text/event-stream` responses
whose events carry their JSON schema.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers

from compat.openai_serializers import (
    ChatCompletionInputSerializer,
    ChatCompletionSerializer,
    CompletionInputSerializer,
    CompletionSerializer,
    EmbeddingListSerializer,
    OpenAIEmbeddingInputSerializer,
    OpenAIMessageSerializer,
    OpenAIModelListSerializer,
    OpenAIModelSerializer,
    OpenAIToolCallFunctionSerializer,
    OpenAIUsageSerializer,
)
from gateway.errors import BadRequestError
from gateway.schema import (
    BASE64_PATTERN,
    EXAMPLE_MODEL,
    FALSY,
    INFERENCE_ERRORS,
    KEY_HEADERS,
    LIST_ERRORS,
    MODEL_ERRORS,
    ErrorEnvelopeSerializer,
    answer,
    answer_or_stream,
    errors,
    request_example,
    schema_field,
    sse_event_serializer,
    tool_parameters_schema,
)

TAGS = ["openai"]

# --- requests, as strictly as the translation checks them ---------------------------
# Documentation subclasses of the real input serializers: the fields whose rules
# live in `compat.openai_translate` (a 400 naming `param`) say those rules here.

DATA_URL = r"^data:[^,]*;base64," + BASE64_PATTERN.removeprefix("^")
IMAGE_URL = {
    "type": "string",
    "pattern": DATA_URL,
    "description": "A base64 data URL (`data:image/png;base64,...`); web URLs are refused.",
}
CONTENT_PART = {
    "oneOf": [
        {
            "type": "object",
            "required": ["type", "text"],
            "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
        },
        {
            "type": "object",
            "required": ["type", "image_url"],
            "properties": {
                "type": {"const": "image_url"},
                "image_url": {
                    "oneOf": [
                        {"type": "object", "required": ["url"], "properties": {"url": IMAGE_URL}},
                        IMAGE_URL,
                    ]
                },
            },
        },
        {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"const": "refusal"}},
            "description": "`refusal`: the text of an earlier refusal.",
        },
    ]
}
TOOL_CALL = {
    "type": "object",
    "required": ["function"],
    "description": "`id` and `type` are read as sent.",
    "properties": {
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "arguments": {
                    "anyOf": [
                        {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": {"type": "object"},
                            "description": "A JSON object, as text (as OpenAI sends it).",
                        },
                        {"type": "object"},
                        *FALSY,
                    ]
                },
            },
        },
    },
}


def _function_object(**properties: Any) -> dict[str, Any]:
    """`{"type": "function", "function": {"name": ..., **properties}}`, `name` not blank."""
    return {
        "type": "object",
        "required": ["function"],
        "properties": {
            "type": {"const": "function"},
            "function": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string", "minLength": 1}, **properties},
            },
        },
    }


TOOL = _function_object(
    description={"type": ["string", "null"]},
    parameters=tool_parameters_schema(nullable_type=False),
)
TOOL_CHOICE = {
    "anyOf": [
        {"enum": ["none", "auto", "required", None]},
        {**_function_object(), "description": "Only this function (it must be one of `tools`)."},
    ]
}
RESPONSE_FORMAT = {
    "anyOf": [
        {"type": "null"},
        {"type": "object", "maxProperties": 0},
        {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"enum": ["text", "json_object"]}},
        },
        {
            "type": "object",
            "required": ["type", "json_schema"],
            "properties": {
                "type": {"const": "json_schema"},
                "json_schema": {
                    "type": "object",
                    "required": ["schema"],
                    "properties": {"schema": {"type": "object"}},
                    "description": "The answer follows `schema`; `name` and `strict` are "
                    "accepted and ignored (the backend always follows the schema).",
                },
            },
        },
    ]
}
NULL_OR = {"type": "null"}


def _refused_unless_falsy(what: str, kind: str | None = None) -> serializers.Field:
    """A field refused with 400 when set: only its "unset" values are valid."""
    unset: dict[str, Any] = {
        "boolean": {"anyOf": [{"const": False}, {"type": "null"}]},
        "integer": {"anyOf": [{"const": 0}, {"type": "null"}]},
        "object": {"type": ["object", "null"], "maxProperties": 0},
    }.get(kind or "", {"anyOf": FALSY})
    return schema_field(
        {**unset, "description": f"{what} is not supported: leave it out."}, required=False
    )


class OpenAIMessage(OpenAIMessageSerializer):
    content = schema_field(
        {
            "anyOf": [
                {"type": "string"},
                {"type": "null"},
                {"type": "array", "items": CONTENT_PART},
            ],
            "description": "A string, or a list of parts (text, image_url as a data URL).",
        },
        required=False,
    )
    tool_calls = schema_field({"type": ["array", "null"], "items": TOOL_CALL}, required=False)


class ChatCompletionInput(ChatCompletionInputSerializer):
    """`POST /openai/v1/chat/completions` body."""

    messages = OpenAIMessage(many=True, allow_empty=False)
    response_format = schema_field(RESPONSE_FORMAT, required=False)
    tools = schema_field({"type": ["array", "null"], "items": TOOL}, required=False)
    tool_choice = schema_field(TOOL_CHOICE, required=False)
    reasoning_effort = schema_field(
        {"anyOf": [{"enum": ["none", "minimal", "low", "medium", "high"]}, {"type": "null"}]},
        required=False,
    )
    n = serializers.IntegerField(min_value=1, max_value=1, required=False, allow_null=True)
    logit_bias = _refused_unless_falsy("logit_bias", "object")
    logprobs = _refused_unless_falsy("logprobs", "boolean")
    top_logprobs = _refused_unless_falsy("top_logprobs", "integer")
    audio = _refused_unless_falsy("Audio output")
    modalities = schema_field(
        {
            "type": ["array", "null"],
            # Trimmed, then not blank.
            "items": {"type": "string", "pattern": r"\S", "not": {"const": "audio"}},
        },
        required=False,
    )


class CompletionInput(CompletionInputSerializer):
    """`POST /openai/v1/completions` body."""

    prompt = schema_field(
        {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1},
            ],
            "description": "A string (or a list holding one string).",
        }
    )
    n = serializers.IntegerField(min_value=1, max_value=1, required=False, allow_null=True)
    best_of = serializers.IntegerField(min_value=1, max_value=1, required=False, allow_null=True)
    echo = _refused_unless_falsy("echo", "boolean")
    logit_bias = _refused_unless_falsy("logit_bias", "object")
    logprobs = _refused_unless_falsy("logprobs", "integer")


def _embedding_input() -> serializers.Field:
    return schema_field(
        {
            "anyOf": [
                {"type": "string", "minLength": 1, "maxLength": settings.MAX_EMBEDDING_INPUT_CHARS},
                {
                    "type": "array",
                    "items": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": settings.MAX_EMBEDDING_INPUT_CHARS,
                    },
                    "minItems": 1,
                    "maxItems": settings.MAX_EMBEDDING_INPUTS,
                },
            ],
            "description": "A string or a list of strings, none empty (token arrays are refused).",
        }
    )


class OpenAIEmbeddingInput(OpenAIEmbeddingInputSerializer):
    """`POST /openai/v1/embeddings` body."""

    input = _embedding_input()


# --- stream events -----------------------------------------------------------------


class ChunkToolCallSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.CharField()
    type = serializers.ChoiceField(choices=["function"])
    function = OpenAIToolCallFunctionSerializer()


class ChunkDeltaSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["assistant"], required=False)
    content = serializers.CharField(required=False, help_text="The next piece of the answer.")
    reasoning = serializers.CharField(required=False, help_text="The next piece of thinking.")
    tool_calls = ChunkToolCallSerializer(many=True, required=False)


class ChunkChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    delta = ChunkDeltaSerializer()
    logprobs = serializers.JSONField(allow_null=True)
    finish_reason = serializers.ChoiceField(
        choices=["stop", "length", "tool_calls"], allow_null=True
    )


class _ChunkSerializer(serializers.Serializer):
    """What every streamed chunk carries; each kind names its `object` and `choices`."""

    id = serializers.CharField()
    object = serializers.CharField()
    created = serializers.IntegerField()
    model = serializers.CharField()
    system_fingerprint = serializers.CharField(allow_null=True)


class ChatCompletionChunkSerializer(_ChunkSerializer):
    """`chat.completion.chunk`: one event of a streamed chat completion."""

    object = serializers.ChoiceField(choices=["chat.completion.chunk"])
    choices = ChunkChoiceSerializer(
        many=True, help_text="One choice; empty in the final usage chunk."
    )
    usage = OpenAIUsageSerializer(
        required=False,
        allow_null=True,
        help_text="With `stream_options.include_usage`: null, except in the last chunk.",
    )


class CompletionChunkChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    text = serializers.CharField(allow_blank=True)
    logprobs = serializers.JSONField(allow_null=True)
    finish_reason = serializers.ChoiceField(choices=["stop", "length"], allow_null=True)


class CompletionChunkSerializer(_ChunkSerializer):
    """`text_completion`: one event of a streamed (legacy) completion."""

    object = serializers.ChoiceField(choices=["text_completion"])
    choices = CompletionChunkChoiceSerializer(many=True)
    usage = OpenAIUsageSerializer(required=False, allow_null=True)


ChatCompletionSSEEvent = sse_event_serializer(
    "ChatCompletionSSEEvent", payloads=[ChatCompletionChunkSerializer, ErrorEnvelopeSerializer]
)
CompletionSSEEvent = sse_event_serializer(
    "CompletionSSEEvent", payloads=[CompletionChunkSerializer, ErrorEnvelopeSerializer]
)

STREAM_NOTE = (
    "With `stream: true` the answer is `text/event-stream`: one `data: <chunk>` event per "
    "piece as the backend produces it, ending `data: [DONE]`; with "
    "`stream_options.include_usage` a last chunk with empty `choices` carries `usage`. "
    'A failure after the first event ends the stream with `data: {"error": {...}}` and no '
    "`[DONE]` (the openai SDK raises it as `APIError`)."
)

MODEL_ID = OpenApiParameter(
    "model_id",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The model's id, as the backend names it (`hf.co/org/name:Q4_K_M` works).",
    examples=[OpenApiExample("qwen", value=EXAMPLE_MODEL)],
)
EXAMPLE_MODEL_OBJECT = {
    "id": EXAMPLE_MODEL,
    "object": "model",
    "created": 1768473000,
    "owned_by": "library",
}
UNSUPPORTED = {
    400: [
        (
            "unsupported",
            BadRequestError("Only n=1 is supported: the backend makes one choice.", param="n"),
        ),
        ("malformed_json", BadRequestError("Malformed JSON body: JSON parse error")),
    ],
}

# --- operations ---------------------------------------------------------------------

models_list = extend_schema(
    tags=TAGS,
    summary="List models (OpenAI)",
    description=(
        "The backend's models as OpenAI's `list` object (what `client.models.list()` reads)."
    ),
    parameters=KEY_HEADERS,
    responses={
        200: answer(
            OpenAIModelListSerializer,
            "The models.",
            "models",
            {"object": "list", "data": [EXAMPLE_MODEL_OBJECT]},
        ),
        **errors(*LIST_ERRORS),
    },
)

models_retrieve = extend_schema(
    tags=TAGS,
    summary="Retrieve a model (OpenAI)",
    description="One model as OpenAI's `model` object; `404 model_not_found` if there is none.",
    parameters=[MODEL_ID, *KEY_HEADERS],
    responses={
        200: answer(OpenAIModelSerializer, "The model.", "model", EXAMPLE_MODEL_OBJECT),
        **errors(*MODEL_ERRORS),
    },
)

chat_create = extend_schema(
    tags=TAGS,
    summary="Create a chat completion (OpenAI)",
    description=(
        "OpenAI's chat completions over the local backend. Passed through: `temperature`, "
        "`top_p`, `max_tokens`/`max_completion_tokens`, `stop`, `seed`, penalties, "
        "`response_format` (`json_object`, `json_schema`), `tools`/`tool_choice`, image parts "
        "(base64 data URLs), `reasoning_effort`. Refused with `400` naming `param`: what the "
        "backend cannot do (`n` > 1, `logprobs`, `logit_bias`, audio).\n\n"
        "### Streaming\n\n" + STREAM_NOTE
    ),
    request=ChatCompletionInput,
    parameters=KEY_HEADERS,
    examples=[
        request_example(
            "chat",
            {
                "model": EXAMPLE_MODEL,
                "messages": [{"role": "user", "content": "Say hello in French."}],
                "temperature": 0.2,
                "max_tokens": 64,
            },
            summary="A whole answer",
        ),
        request_example(
            "stream",
            {
                "model": EXAMPLE_MODEL,
                "messages": [{"role": "user", "content": "Say hello in French."}],
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            summary="A streamed answer with usage",
        ),
    ],
    responses={
        **answer_or_stream(
            "A `chat.completion`, or (`stream: true`) its `chat.completion.chunk` events.",
            (
                ChatCompletionSerializer,
                "completion",
                {
                    "id": "chatcmpl-8f2c1e",
                    "object": "chat.completion",
                    "created": 1768473000,
                    "model": EXAMPLE_MODEL,
                    "system_fingerprint": None,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": "Bonjour !",
                                "refusal": None,
                            },
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 15, "completion_tokens": 3, "total_tokens": 18},
                },
            ),
            (
                ChatCompletionSSEEvent,
                "events",
                'data: {"id":"chatcmpl-8f2c1e","object":"chat.completion.chunk",'
                '"created":1768473000,"model":"qwen2.5:14b","system_fingerprint":null,'
                '"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
                '"logprobs":null,"finish_reason":null}]}\n\n'
                'data: {"id":"chatcmpl-8f2c1e","object":"chat.completion.chunk",'
                '"created":1768473000,"model":"qwen2.5:14b","system_fingerprint":null,'
                '"choices":[{"index":0,"delta":{"content":"Bonjour"},'
                '"logprobs":null,"finish_reason":null}]}\n\n'
                'data: {"id":"chatcmpl-8f2c1e","object":"chat.completion.chunk",'
                '"created":1768473000,"model":"qwen2.5:14b","system_fingerprint":null,'
                '"choices":[{"index":0,"delta":{},"logprobs":null,'
                '"finish_reason":"stop"}]}\n\n'
                "data: [DONE]\n\n",
            ),
        ),
        **errors(*INFERENCE_ERRORS, examples=UNSUPPORTED),
    },
)

completions_create = extend_schema(
    tags=TAGS,
    summary="Create a (legacy) text completion (OpenAI)",
    description=(
        "OpenAI's legacy completions: one prompt string (or a list holding one), optional "
        "`suffix`. Refused with `400`: batches, token arrays, `n`/`best_of` > 1, `echo`, "
        "`logprobs`.\n\n### Streaming\n\n" + STREAM_NOTE
    ),
    request=CompletionInput,
    parameters=KEY_HEADERS,
    examples=[
        request_example(
            "prompt", {"model": EXAMPLE_MODEL, "prompt": "def fibonacci(n):", "max_tokens": 64}
        )
    ],
    responses={
        **answer_or_stream(
            "A `text_completion`, or (`stream: true`) its events.",
            (
                CompletionSerializer,
                "completion",
                {
                    "id": "cmpl-3b9a7d",
                    "object": "text_completion",
                    "created": 1768473000,
                    "model": EXAMPLE_MODEL,
                    "system_fingerprint": None,
                    "choices": [
                        {
                            "index": 0,
                            "text": "\n    if n < 2:\n        return n",
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 12, "total_tokens": 17},
                },
            ),
            (
                CompletionSSEEvent,
                "events",
                'data: {"id":"cmpl-3b9a7d","object":"text_completion",'
                '"created":1768473000,"model":"qwen2.5:14b","system_fingerprint":null,'
                '"choices":[{"index":0,"text":"\\n    if n < 2:","logprobs":null,'
                '"finish_reason":null}]}\n\n'
                'data: {"id":"cmpl-3b9a7d","object":"text_completion",'
                '"created":1768473000,"model":"qwen2.5:14b","system_fingerprint":null,'
                '"choices":[{"index":0,"text":"","logprobs":null,'
                '"finish_reason":"stop"}]}\n\n'
                "data: [DONE]\n\n",
            ),
        ),
        **errors(*INFERENCE_ERRORS, examples=UNSUPPORTED),
    },
)

embeddings_create = extend_schema(
    tags=TAGS,
    summary="Create embeddings (OpenAI)",
    description=(
        "One vector per input from one backend call. `encoding_format: base64` returns each "
        "vector as base64 of little-endian float32 (what the openai SDK asks for by default). "
        "Token arrays are refused with `400` (LangChain: `check_embedding_ctx_length=False`)."
    ),
    request=OpenAIEmbeddingInput,
    parameters=KEY_HEADERS,
    examples=[
        request_example(
            "texts", {"model": "mxbai-embed-large", "input": ["first text", "second text"]}
        )
    ],
    responses={
        200: answer(
            EmbeddingListSerializer,
            "The vectors, in input order.",
            "vectors",
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "embedding": [0.0123, -0.0456], "index": 0},
                    {"object": "embedding", "embedding": [0.0321, 0.0654], "index": 1},
                ],
                "model": "mxbai-embed-large",
                "usage": {"prompt_tokens": 6, "total_tokens": 6},
            },
        ),
        **errors(*INFERENCE_ERRORS, examples=UNSUPPORTED),
    },
)
