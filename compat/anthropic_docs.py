"""OpenAPI documentation of the Anthropic Messages API (`/anthropic/v1/`, mirrored at
`/ollama/v1/`). Each name is an `extend_schema` decorator for one action of
`compat.anthropic_views`; errors are documented in Anthropic's shape."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema

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
    EXAMPLE_MODEL,
    INFERENCE_ERRORS,
    KEY_HEADERS,
    answer,
    answer_or_stream,
    error_responses,
    request_example,
    schema_field,
)
from gateway.validation import BASE64_PATTERN, tool_parameters_schema

TAGS = ["anthropic"]

# --- requests, as strictly as the translation checks them ---------------------------


def _block(kind: str, required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", *required],
        "properties": {"type": {"const": kind}, **properties},
    }


TEXT_BLOCK = _block("text", ["text"], text={"type": "string"})
IMAGE_BLOCK = _block(
    "image",
    ["source"],
    source={
        "type": "object",
        "required": ["type", "data"],
        "properties": {
            "type": {"const": "base64"},
            "media_type": {"type": "string"},
            "data": {"type": "string", "pattern": BASE64_PATTERN},
        },
        "description": "Base64 only: URL sources are refused (nothing is fetched).",
    },
)
TOOL_USE_BLOCK = _block(
    "tool_use",
    ["name", "input"],
    id={"type": "string"},
    name={"type": "string", "minLength": 1},
    input={"type": "object"},
)
TOOL_RESULT_BLOCK = _block(
    "tool_result",
    [],
    tool_use_id={"type": "string"},
    content={
        "anyOf": [
            {"type": "string"},
            {"type": "null"},
            {"type": "array", "items": {"oneOf": [TEXT_BLOCK, IMAGE_BLOCK]}},
        ]
    },
    is_error={"type": "boolean"},
)
THINKING_BLOCK = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"enum": ["thinking", "redacted_thinking"]}},
    "description": "Earlier reasoning: accepted and not sent back to the model.",
}


def _message(role: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"const": role},
            "content": {
                "anyOf": [{"type": "string"}, {"type": "array", "items": {"oneOf": blocks}}]
            },
        },
    }


MESSAGE = {
    "oneOf": [
        _message("user", [TEXT_BLOCK, IMAGE_BLOCK, TOOL_RESULT_BLOCK]),
        _message("assistant", [TEXT_BLOCK, IMAGE_BLOCK, TOOL_USE_BLOCK, THINKING_BLOCK]),
    ]
}
TOOL = {
    "type": "object",
    "required": ["name", "input_schema"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "input_schema": {**tool_parameters_schema(nullable_type=True), "type": "object"},
        "type": {"enum": ["custom"], "description": "Server tools are refused."},
    },
}
TOOL_CHOICE = {
    "oneOf": [
        {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"enum": ["auto", "any", "none"]}},
        },
        {
            "type": "object",
            "required": ["type", "name"],
            "properties": {"type": {"const": "tool"}, "name": {"type": "string"}},
            "description": "Only this tool (it must be one of `tools`).",
        },
    ]
}
THINKING = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"enum": ["enabled", "disabled", "adaptive"]}},
}
OUTPUT_CONFIG = {
    "type": "object",
    "properties": {
        "format": {
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["type", "schema"],
                    "properties": {"type": {"const": "json_schema"}, "schema": {"type": "object"}},
                },
            ]
        }
    },
}
SYSTEM = {"anyOf": [{"type": "string"}, {"type": "null"}, {"type": "array", "items": TEXT_BLOCK}]}


class _Documented:
    messages = schema_field({"type": "array", "minItems": 1, "items": MESSAGE})
    system = schema_field(SYSTEM, required=False)
    tools = schema_field({"type": "array", "items": TOOL}, required=False)
    tool_choice = schema_field(TOOL_CHOICE, required=False)
    thinking = schema_field(THINKING, required=False)


class CountTokensInput(CountTokensInputSerializer):
    """`POST /anthropic/v1/messages/count_tokens` body."""

    messages = _Documented.messages
    system = _Documented.system
    tools = _Documented.tools
    tool_choice = _Documented.tool_choice
    thinking = _Documented.thinking


class MessagesInput(MessagesInputSerializer):
    """`POST /anthropic/v1/messages` body."""

    messages = _Documented.messages
    system = _Documented.system
    tools = _Documented.tools
    tool_choice = _Documented.tool_choice
    thinking = _Documented.thinking
    output_config = schema_field(OUTPUT_CONFIG, required=False)


def anthropic_errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """Documented error responses in Anthropic's shape (a field error is a 400, not a 422)."""
    return error_responses(
        statuses,
        lambda exc: translate.error_object(exc, exc.status),
        AnthropicErrorSerializer,
        bad_input_400=True,
    )


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
    request=MessagesInput,
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
            AnthropicMessageOutputSerializer,
            AnthropicStreamEventSerializer,
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
            whole_example=("message", EXAMPLE_MESSAGE),
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
    request=CountTokensInput,
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
