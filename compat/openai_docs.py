"""OpenAPI documentation of the OpenAI-compatible API (`/openai/v1/`, mirrored at `/ollama/v1/`).

Each name is an `extend_schema` decorator for one action of
`compat.openai_views`. The streamed variants (`chat.completion.chunk`,
`text_completion` events) are documented as `text/event-stream` responses
whose events carry their JSON schema.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from apis.errors import BadRequestError, ModelNotFoundError
from apis.schema import (
    BACKEND_ERRORS,
    BODY_ERRORS,
    EXAMPLE_MODEL,
    KEY_ERRORS,
    KEY_HEADERS,
    ErrorEnvelopeSerializer,
    errors,
    sse_event_serializer,
)
from compat.openai_serializers import (
    ChatCompletionInputSerializer,
    ChatCompletionSerializer,
    CompletionInputSerializer,
    CompletionSerializer,
    EmbeddingListSerializer,
    OpenAIEmbeddingInputSerializer,
    OpenAIModelListSerializer,
    OpenAIModelSerializer,
    OpenAIToolCallFunctionSerializer,
    OpenAIUsageSerializer,
)

TAGS = ["openai"]

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


class ChatCompletionChunkSerializer(serializers.Serializer):
    """`chat.completion.chunk`: one event of a streamed chat completion."""

    id = serializers.CharField()
    object = serializers.ChoiceField(choices=["chat.completion.chunk"])
    created = serializers.IntegerField()
    model = serializers.CharField()
    system_fingerprint = serializers.CharField(allow_null=True)
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


class CompletionChunkSerializer(serializers.Serializer):
    """`text_completion`: one event of a streamed (legacy) completion."""

    id = serializers.CharField()
    object = serializers.ChoiceField(choices=["text_completion"])
    created = serializers.IntegerField()
    model = serializers.CharField()
    system_fingerprint = serializers.CharField(allow_null=True)
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
    404: [("model_not_found", ModelNotFoundError(EXAMPLE_MODEL))],
}

CHAT_ANSWER = "A `chat.completion`, or (`stream: true`) its `chat.completion.chunk` events."

# --- operations ---------------------------------------------------------------------

models_list = extend_schema(
    tags=TAGS,
    summary="List models (OpenAI)",
    description=(
        "The backend's models as OpenAI's `list` object (what `client.models.list()` reads)."
    ),
    parameters=KEY_HEADERS,
    responses={
        200: OpenApiResponse(
            OpenAIModelListSerializer,
            description="The models.",
            examples=[
                OpenApiExample("models", value={"object": "list", "data": [EXAMPLE_MODEL_OBJECT]})
            ],
        ),
        **errors(*KEY_ERRORS, *BACKEND_ERRORS),
    },
)

models_retrieve = extend_schema(
    tags=TAGS,
    summary="Retrieve a model (OpenAI)",
    description="One model as OpenAI's `model` object; `404 model_not_found` if there is none.",
    parameters=[MODEL_ID, *KEY_HEADERS],
    responses={
        200: OpenApiResponse(
            OpenAIModelSerializer,
            description="The model.",
            examples=[OpenApiExample("model", value=EXAMPLE_MODEL_OBJECT)],
        ),
        **errors(*KEY_ERRORS, 404, *BACKEND_ERRORS),
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
    request=ChatCompletionInputSerializer,
    parameters=KEY_HEADERS,
    examples=[
        OpenApiExample(
            "chat",
            summary="A whole answer",
            request_only=True,
            value={
                "model": EXAMPLE_MODEL,
                "messages": [{"role": "user", "content": "Say hello in French."}],
                "temperature": 0.2,
                "max_tokens": 64,
            },
        ),
        OpenApiExample(
            "stream",
            summary="A streamed answer with usage",
            request_only=True,
            value={
                "model": EXAMPLE_MODEL,
                "messages": [{"role": "user", "content": "Say hello in French."}],
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        ),
    ],
    responses={
        (200, "application/json"): OpenApiResponse(
            ChatCompletionSerializer,
            description=CHAT_ANSWER,
            examples=[
                OpenApiExample(
                    "completion",
                    response_only=True,
                    value={
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
                )
            ],
        ),
        (200, "text/event-stream"): OpenApiResponse(
            ChatCompletionSSEEvent,
            description=CHAT_ANSWER,
            examples=[
                OpenApiExample(
                    "events",
                    response_only=True,
                    value=(
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
                        "data: [DONE]\n\n"
                    ),
                )
            ],
        ),
        **errors(*KEY_ERRORS, *BODY_ERRORS, 404, *BACKEND_ERRORS, 507, examples=UNSUPPORTED),
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
    request=CompletionInputSerializer,
    parameters=KEY_HEADERS,
    examples=[
        OpenApiExample(
            "prompt",
            request_only=True,
            value={"model": EXAMPLE_MODEL, "prompt": "def fibonacci(n):", "max_tokens": 64},
        )
    ],
    responses={
        (200, "application/json"): OpenApiResponse(
            CompletionSerializer,
            description="A `text_completion`, or (`stream: true`) its events.",
            examples=[
                OpenApiExample(
                    "completion",
                    response_only=True,
                    value={
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
                )
            ],
        ),
        (200, "text/event-stream"): OpenApiResponse(
            CompletionSSEEvent,
            description="A `text_completion`, or (`stream: true`) its events.",
        ),
        **errors(*KEY_ERRORS, *BODY_ERRORS, 404, *BACKEND_ERRORS, 507, examples=UNSUPPORTED),
    },
)

embeddings_create = extend_schema(
    tags=TAGS,
    summary="Create embeddings (OpenAI)",
    description=(
        "One vector per input from one backend call. `encoding_format: base64` returns each "
        "vector as base64 of little-endian float32 (what the openai SDK asks for by default). "
        "Token arrays are refused with `400`."
    ),
    request=OpenAIEmbeddingInputSerializer,
    parameters=KEY_HEADERS,
    examples=[
        OpenApiExample(
            "texts",
            request_only=True,
            value={"model": "mxbai-embed-large", "input": ["first text", "second text"]},
        )
    ],
    responses={
        200: OpenApiResponse(
            EmbeddingListSerializer,
            description="The vectors, in input order.",
            examples=[
                OpenApiExample(
                    "vectors",
                    response_only=True,
                    value={
                        "object": "list",
                        "data": [
                            {"object": "embedding", "embedding": [0.0123, -0.0456], "index": 0},
                            {"object": "embedding", "embedding": [0.0321, 0.0654], "index": 1},
                        ],
                        "model": "mxbai-embed-large",
                        "usage": {"prompt_tokens": 6, "total_tokens": 6},
                    },
                )
            ],
        ),
        **errors(*KEY_ERRORS, *BODY_ERRORS, 404, *BACKEND_ERRORS, 507, examples=UNSUPPORTED),
    },
)
