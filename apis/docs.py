"""OpenAPI documentation of the native API's actions (`/v1/`), applied in `apis.views`.

Each name is an `extend_schema` decorator for one action (`gateway.schema.operation`):
what it does, its serializers (which carry their examples) and every error it can give.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework.exceptions import ErrorDetail

from apis.serializers import (
    ChatInputSerializer,
    ChatOutputSerializer,
    ChatStreamEventSerializer,
    EmbeddingInputSerializer,
    EmbeddingOutputSerializer,
    ModelSerializer,
)
from gateway.errors import BadRequestError, validation_error
from gateway.schema import (
    INFERENCE_ERRORS,
    LIST_ERRORS,
    MODEL_ERRORS,
    MODEL_ID,
    answer_or_stream,
    errors,
    operation,
    sse_event_serializer,
)

models_list = operation(
    tags=["models"],
    summary="List models",
    description=(
        "The models the backend has, as a JSON **array**. A key limited to some models "
        "sees only those."
    ),
    answer=OpenApiResponse(ModelSerializer(many=True), "The models."),
    errors=errors(*LIST_ERRORS),
)

models_retrieve = operation(
    tags=["models"],
    summary="Get one model",
    description="One model's details; `404 model_not_found` when the backend has no such model.",
    parameters=[MODEL_ID],
    answer=OpenApiResponse(ModelSerializer, "The model."),
    errors=errors(*MODEL_ERRORS),
)

CHAT_STREAM_EXAMPLE = (
    'data: {"id":"6f1c...","model":"qwen2.5:14b","created":"2026-01-15T10:30:00Z",'
    '"message":{"role":"assistant","content":"List"},"done":false}\n\n'
    'data: {"id":"6f1c...","model":"qwen2.5:14b","created":"2026-01-15T10:30:00Z",'
    '"message":{"role":"assistant","content":" comprehensions"},"done":false}\n\n'
    'data: {"id":"6f1c...","model":"qwen2.5:14b","created":"2026-01-15T10:30:00Z",'
    '"message":{"role":"assistant","content":""},"done":true,"finish_reason":"stop",'
    '"usage":{"prompt_tokens":24,"completion_tokens":2,"total_tokens":26}}\n\n'
    "data: [DONE]\n\n"
)

chat_create = operation(
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
    answer=answer_or_stream(
        "The answer (`stream: false`), or its events (`stream: true`).",
        ChatOutputSerializer,
        sse_event_serializer(ChatStreamEventSerializer),
        CHAT_STREAM_EXAMPLE,
    ),
    errors=errors(
        *INFERENCE_ERRORS,
        backend_refused=BadRequestError("The backend refused the request: invalid options"),
    ),
)

embeddings_create = operation(
    tags=["embeddings"],
    summary="Create embeddings",
    description=(
        "One vector per input, in input order, from ONE backend call for the whole list. "
        "`input` is a string or a list of strings (at most MAX_EMBEDDING_INPUTS, each at most "
        "MAX_EMBEDDING_INPUT_CHARS characters); empty strings are refused with `422`."
    ),
    request=EmbeddingInputSerializer,
    answer=OpenApiResponse(EmbeddingOutputSerializer, "The vectors."),
    errors=errors(
        *INFERENCE_ERRORS,
        empty_item=validation_error(
            {"input": [ErrorDetail("Item 1 is an empty string.", "empty_item")]}
        ),
    ),
)
