"""OpenAPI documentation of the Anthropic Messages API (`/anthropic/v1/`, mirrored at
`/ollama/v1/`). Each name is an `extend_schema` decorator for one action of
`compat.anthropic_views`; errors are documented in Anthropic's shape."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema

from compat import anthropic_translate as translate
from compat.anthropic_serializers import (
    AnthropicErrorSerializer,
    AnthropicMessageOutputSerializer,
    AnthropicStreamEventSerializer,
    AnthropicTokenCountSerializer,
    CountTokensInputSerializer,
    MessagesInputSerializer,
)
from gateway.schema import (
    _ERRORS,
    EXAMPLE_MODEL,
    INFERENCE_ERRORS,
    KEY_HEADERS,
    answer,
    answer_or_stream,
    request_example,
)

TAGS = ["anthropic"]


def anthropic_errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """Documented error responses in Anthropic's shape (a field error is a 400, not a 422)."""
    responses: dict[int, OpenApiResponse] = {}
    for status in sorted({400 if status == 422 else status for status in statuses}):
        description, examples = _ERRORS[status]
        name, exc = examples[0]
        responses[status] = OpenApiResponse(
            AnthropicErrorSerializer,
            description=description,
            examples=[
                OpenApiExample(
                    name,
                    value=translate.error_object(exc, status),
                    response_only=True,
                    status_codes=[status],
                )
            ],
        )
    return responses


DESCRIPTION = (
    "Anthropic's Messages API over the local backend, for the `anthropic` SDKs and tools "
    "written for Claude (`base_url` = `<gateway>/anthropic`). The key is accepted as "
    "`x-api-key` or `Authorization: Bearer`. Supported: `system`, `messages` with text, "
    "base64 image, `tool_use` and `tool_result` blocks, `max_tokens`, `stop_sequences`, "
    "`temperature`, `top_p`, `top_k`, client `tools` and `tool_choice`, `thinking`. "
    "Refused with 400: image URLs, server tools, documents.\n\n"
    "With `stream: true`: named SSE events `message_start`, then per content block "
    "`content_block_start`, `content_block_delta`s, `content_block_stop`, then "
    "`message_delta` (stop reason, usage) and `message_stop`; a failure after the first "
    "event ends the stream with an `error` event."
)

EXAMPLE_MESSAGE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": EXAMPLE_MODEL,
    "content": [{"type": "text", "text": "Bonjour !"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12,
        "output_tokens": 3,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    },
}

messages_create = extend_schema(
    tags=TAGS,
    summary="Create a message (Anthropic)",
    description=DESCRIPTION,
    request=MessagesInputSerializer,
    parameters=KEY_HEADERS,
    examples=[
        request_example(
            "message",
            {
                "model": EXAMPLE_MODEL,
                "max_tokens": 64,
                "messages": [{"role": "user", "content": "Say hello in French."}],
            },
        )
    ],
    responses={
        **answer_or_stream(
            "A `message`, or (`stream: true`) its named events.",
            (AnthropicMessageOutputSerializer, "message", EXAMPLE_MESSAGE),
            (
                AnthropicStreamEventSerializer,
                "events",
                'event: message_start\ndata: {"type":"message_start","message":{...}}\n\n'
                "event: content_block_start\n"
                'data: {"type":"content_block_start","index":0,'
                '"content_block":{"type":"text","text":""}}\n\n'
                "event: content_block_delta\n"
                'data: {"type":"content_block_delta","index":0,'
                '"delta":{"type":"text_delta","text":"Bonjour"}}\n\n'
                'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
                'event: message_delta\ndata: {"type":"message_delta","delta":'
                '{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":3}}\n\n'
                'event: message_stop\ndata: {"type":"message_stop"}\n\n',
            ),
        ),
        **anthropic_errors(*INFERENCE_ERRORS),
    },
)

count_tokens = extend_schema(
    tags=TAGS,
    summary="Count a message's input tokens (Anthropic)",
    description=(
        "The prompt's tokens as the backend's own tokenizer counts them (the backend "
        "evaluates the prompt and generates one token; the call is recorded as usage)."
    ),
    request=CountTokensInputSerializer,
    parameters=KEY_HEADERS,
    examples=[
        request_example(
            "count",
            {"model": EXAMPLE_MODEL, "messages": [{"role": "user", "content": "Hello"}]},
        )
    ],
    responses={
        200: answer(AnthropicTokenCountSerializer, "The count.", "count", {"input_tokens": 12}),
        **anthropic_errors(*INFERENCE_ERRORS),
    },
)
