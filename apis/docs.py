"""OpenAPI documentation of the native API's actions (`/v1/`), applied in `apis.views`.

Each name is an `extend_schema` decorator for one action: summary,
description, tags, request and response serializers, examples, and every
error the action can answer with (see `apis.schema.errors`).
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ErrorDetail

from apis.errors import BadRequestError, ModelNotFoundError, validation_error
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
from apis.serializers import (
    ChatInputSerializer,
    ChatOutputSerializer,
    ChatStreamEventSerializer,
    EmbeddingInputSerializer,
    EmbeddingOutputSerializer,
    ModelSerializer,
)

EXAMPLE_MODEL_INFO = {
    "id": EXAMPLE_MODEL,
    "name": EXAMPLE_MODEL,
    "size": "9.0GB",
    "size_bytes": 8988124069,
    "family": "qwen2",
    "parameter_size": "14.8B",
    "quantization_level": "Q4_K_M",
    "modified_at": "2026-01-15T10:30:00Z",
}

MODEL_ID = OpenApiParameter(
    "model_id",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The model's id, as the backend names it. Ids may hold `:`, `.`, `/` and `-` "
    "(`hf.co/org/name:Q4_K_M`).",
    examples=[OpenApiExample("qwen", value=EXAMPLE_MODEL)],
)

models_list = extend_schema(
    operation_id="v1_models_list",
    tags=["models"],
    summary="List models",
    description=(
        "The models the backend has, as a JSON **array**. A key limited to some models "
        "sees only those."
    ),
    parameters=KEY_HEADERS,
    responses={
        200: OpenApiResponse(
            ModelSerializer(many=True),
            description="The models.",
            # drf-spectacular wraps the example of a list in a list.
            examples=[OpenApiExample("models", value=EXAMPLE_MODEL_INFO)],
        ),
        **errors(*KEY_ERRORS, *BACKEND_ERRORS),
    },
)

models_retrieve = extend_schema(
    operation_id="v1_models_retrieve",
    tags=["models"],
    summary="Get one model",
    description="One model's details; `404 model_not_found` when the backend has no such model.",
    parameters=[MODEL_ID, *KEY_HEADERS],
    responses={
        200: OpenApiResponse(
            ModelSerializer,
            description="The model.",
            examples=[OpenApiExample("model", value=EXAMPLE_MODEL_INFO)],
        ),
        **errors(*KEY_ERRORS, 404, *BACKEND_ERRORS),
    },
)

ChatStreamSSEEvent = sse_event_serializer(
    "ChatStreamSSEEvent", payloads=[ChatStreamEventSerializer, ErrorEnvelopeSerializer]
)

CHAT_STREAM_EXAMPLE = (
    'data: {"id":"6f1c...","model":"qwen2.5:14b","created":"2026-01-15T10:30:00+00:00",'
    '"message":{"role":"assistant","content":"List"},"done":false}\n\n'
    'data: {"id":"6f1c...","model":"qwen2.5:14b","created":"2026-01-15T10:30:00+00:00",'
    '"message":{"role":"assistant","content":" comprehensions"},"done":false}\n\n'
    'data: {"id":"6f1c...","model":"qwen2.5:14b","created":"2026-01-15T10:30:00+00:00",'
    '"message":{"role":"assistant","content":""},"done":true,"finish_reason":"stop",'
    '"usage":{"prompt_tokens":24,"completion_tokens":2,"total_tokens":26}}\n\n'
    "data: [DONE]\n\n"
)

chat_create = extend_schema(
    operation_id="v1_chat_completions_create",
    tags=["chat"],
    summary="Create a chat completion",
    description=(
        "Generate the assistant's next message for a conversation.\n\n"
        "### Streaming\n\n"
        "With `stream: true` the answer is `text/event-stream`: one `data: <json>` event per "
        "backend chunk as the model writes it (`ChatStreamEvent`, `done: false`), then a last "
        "event with `done: true`, `finish_reason` and `usage`, then `data: [DONE]`. A failure "
        'after the stream began is one event `data: {"error": {...}}` (the error envelope) '
        "and the end of the stream, without `[DONE]`. A failure before the first token is a "
        "normal error response with its status code.\n\n"
        "Token counts in `usage` are the backend's own."
    ),
    request=ChatInputSerializer,
    parameters=KEY_HEADERS,
    examples=[
        OpenApiExample(
            "chat",
            summary="A whole answer",
            request_only=True,
            value={
                "model": EXAMPLE_MODEL,
                "messages": [
                    {"role": "system", "content": "You are a concise assistant."},
                    {"role": "user", "content": "What is a Python list comprehension?"},
                ],
                "temperature": 0.7,
                "max_tokens": 256,
            },
        ),
        OpenApiExample(
            "stream",
            summary="A streamed answer",
            request_only=True,
            value={
                "model": EXAMPLE_MODEL,
                "messages": [{"role": "user", "content": "What is a Python list comprehension?"}],
                "stream": True,
            },
        ),
    ],
    responses={
        (200, "application/json"): OpenApiResponse(
            ChatOutputSerializer,
            description="The answer (`stream: false`), or its events (`stream: true`).",
            examples=[
                OpenApiExample(
                    "answer",
                    response_only=True,
                    value={
                        "id": "6f1c2d8e-6a1b-4b8e-9f3a-2c1d0e9b8a7f",
                        "model": EXAMPLE_MODEL,
                        "created": "2026-01-15T10:30:00+00:00",
                        "message": {
                            "role": "assistant",
                            "content": "A list comprehension builds a list in one expression: "
                            "`[x * x for x in range(5)]`.",
                        },
                        "finish_reason": "stop",
                        "usage": {"prompt_tokens": 24, "completion_tokens": 19, "total_tokens": 43},
                    },
                )
            ],
        ),
        (200, "text/event-stream"): OpenApiResponse(
            ChatStreamSSEEvent,
            description="The answer (`stream: false`), or its events (`stream: true`).",
            examples=[OpenApiExample("events", response_only=True, value=CHAT_STREAM_EXAMPLE)],
        ),
        **errors(
            *KEY_ERRORS,
            *BODY_ERRORS,
            404,
            *BACKEND_ERRORS,
            507,
            examples={
                400: [
                    (
                        "backend_refused",
                        BadRequestError("The backend refused the request: invalid options"),
                    )
                ],
                404: [("model_not_found", ModelNotFoundError(EXAMPLE_MODEL))],
            },
        ),
    },
)

embeddings_create = extend_schema(
    operation_id="v1_embeddings_create",
    tags=["embeddings"],
    summary="Create embeddings",
    description=(
        "One vector per input, in input order, from ONE backend call for the whole list. "
        "`input` is a string or a list of strings (at most MAX_EMBEDDING_INPUTS, each at most "
        "MAX_EMBEDDING_INPUT_CHARS characters); empty strings are refused with `422`."
    ),
    request=EmbeddingInputSerializer,
    parameters=KEY_HEADERS,
    examples=[
        OpenApiExample(
            "one",
            summary="One text",
            request_only=True,
            value={"model": "mxbai-embed-large", "input": "The quick brown fox"},
        ),
        OpenApiExample(
            "many",
            summary="Several texts in one call",
            request_only=True,
            value={"model": "mxbai-embed-large", "input": ["first text", "second text"]},
        ),
    ],
    responses={
        200: OpenApiResponse(
            EmbeddingOutputSerializer,
            description="The vectors.",
            examples=[
                OpenApiExample(
                    "vectors",
                    response_only=True,
                    value={
                        "model": "mxbai-embed-large",
                        "embeddings": [[0.0123, -0.0456, 0.0789], [0.0321, 0.0654, -0.0987]],
                        "usage": {"prompt_tokens": 6, "total_tokens": 6},
                    },
                )
            ],
        ),
        **errors(
            *KEY_ERRORS,
            *BODY_ERRORS,
            404,
            *BACKEND_ERRORS,
            507,
            examples={
                422: [
                    (
                        "empty_item",
                        validation_error(
                            {"input": [ErrorDetail("Item 1 is an empty string.", "empty_item")]}
                        ),
                    )
                ]
            },
        ),
    },
)
