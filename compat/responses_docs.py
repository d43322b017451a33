"""OpenAPI documentation of OpenAI's Responses API (`/openai/v1/responses`, mirrored at
`/ollama/v1/responses`). Each name is an `extend_schema` decorator for one action of
`compat.responses_views`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema

from compat.openai_serializers import IMAGE_URL
from compat.responses_serializers import (
    ResponseCreateInputSerializer,
    ResponseDeletedSerializer,
    ResponseObjectSerializer,
    ResponseStreamEventSerializer,
)
from gateway.schema import (
    EXAMPLE_MODEL,
    INFERENCE_ERRORS,
    KEY_HEADERS,
    MODEL_ERRORS,
    answer,
    answer_or_stream,
    errors,
    request_example,
    schema_field,
)
from gateway.validation import tool_parameters_schema

TAGS = ["openai"]

# --- the request, as strictly as the translation checks it ---------------------------


def _item(kind: str | None, required: list[str], **properties: Any) -> dict[str, Any]:
    kind_schema = {"const": kind} if kind else {"const": "message"}
    return {
        "type": "object",
        "required": ([] if kind is None else ["type"]) + required,
        "properties": {"type": kind_schema, **properties},
    }


PART = {
    "oneOf": [
        {
            "type": "object",
            "required": ["type", "text"],
            "properties": {
                "type": {"enum": ["input_text", "output_text", "text"]},
                "text": {"type": "string"},
            },
        },
        {
            "type": "object",
            "required": ["type", "image_url"],
            "properties": {"type": {"const": "input_image"}, "image_url": IMAGE_URL},
        },
        {"type": "object", "required": ["type"], "properties": {"type": {"const": "refusal"}}},
    ]
}
TEXT_OR_PARTS = {"anyOf": [{"type": "string"}, {"type": "null"}, {"type": "array", "items": PART}]}
INPUT_ITEM = {
    "oneOf": [
        _item(
            None,
            ["role"],
            role={"enum": ["user", "assistant", "system", "developer"]},
            content=TEXT_OR_PARTS,
        ),
        _item(
            "function_call",
            ["name"],
            name={"type": "string", "minLength": 1},
            call_id={"type": "string"},
            arguments={
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"type": "object"},
                "description": "The arguments: a JSON object, as text.",
            },
        ),
        _item(
            "function_call_output", ["call_id"], call_id={"type": "string"}, output=TEXT_OR_PARTS
        ),
        _item("reasoning", [], id={"type": "string"}),
    ]
}
TOOL = {
    "type": "object",
    "required": ["type", "name"],
    "properties": {
        "type": {"const": "function", "description": "Built-in tools are refused."},
        "name": {"type": "string", "minLength": 1},
        "description": {"type": ["string", "null"]},
        "parameters": tool_parameters_schema(nullable_type=False),
        "strict": {"type": ["boolean", "null"]},
    },
}
TOOL_CHOICE = {
    "anyOf": [
        {"enum": ["none", "auto", "required", None]},
        {
            "type": "object",
            "required": ["type", "name"],
            "properties": {"type": {"const": "function"}, "name": {"type": "string"}},
            "description": "Only this function (it must be one of `tools`).",
        },
    ]
}
TEXT = {
    "type": ["object", "null"],
    "properties": {
        "format": {
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
                    "required": ["type", "schema"],
                    "properties": {
                        "type": {"const": "json_schema"},
                        "name": {"type": "string"},
                        "schema": {"type": "object"},
                        "strict": {"type": ["boolean", "null"]},
                    },
                },
            ]
        }
    },
}
REASONING = {
    "type": ["object", "null"],
    "properties": {
        "effort": {"enum": ["none", "minimal", "low", "medium", "high", None]},
    },
}


class ResponseCreateInput(ResponseCreateInputSerializer):
    """`POST /openai/v1/responses` body."""

    input = schema_field(
        {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": INPUT_ITEM}]}
    )
    tools = schema_field({"type": ["array", "null"], "items": TOOL}, required=False)
    tool_choice = schema_field(TOOL_CHOICE, required=False)
    text = schema_field(TEXT, required=False)
    reasoning = schema_field(REASONING, required=False)


EXAMPLE_RESPONSE = {
    "id": "resp_6a1f0c",
    "object": "response",
    "created_at": 1768473000,
    "status": "completed",
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "max_output_tokens": None,
    "model": EXAMPLE_MODEL,
    "output": [
        {
            "id": "msg_93be21",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "Bonjour !", "annotations": [], "logprobs": []}
            ],
        }
    ],
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "store": True,
    "temperature": None,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": None,
    "usage": {
        "input_tokens": 12,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 3,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 15,
    },
    "metadata": {},
}

RESPONSE_ID = OpenApiParameter(
    "response_id",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    pattern=r"^[A-Za-z0-9_-]+$",
    description="The id of a response this key stored (`resp_...`).",
)

responses_create = extend_schema(
    tags=TAGS,
    summary="Create a response (OpenAI Responses API)",
    description=(
        "OpenAI's Responses API over the local backend (`client.responses.create`). "
        "Supported: `input` as a string or items (messages with input_text / base64 "
        "input_image parts, function_call, function_call_output), `instructions` (this turn "
        "only), function `tools`, `tool_choice`, `text.format` (text, json_object, "
        "json_schema), `max_output_tokens`, `temperature`, `top_p`, `reasoning.effort`. "
        "With `store` (default true) the answer is kept for this key, and "
        "`previous_response_id` continues the conversation. Refused with `400`: built-in "
        "tools (web search, file search, ...), image URLs.\n\n"
        "With `stream: true`: named SSE events in OpenAI's order: `response.created`, "
        "`response.in_progress`, per output item `response.output_item.added`, "
        "`response.content_part.added`, `response.output_text.delta`s, "
        "`response.output_text.done`, `response.content_part.done` (or "
        "`response.function_call_arguments.delta`/`.done`), `response.output_item.done`, "
        "then `response.completed` (`response.incomplete` when `max_output_tokens` cut it). "
        "A failure after the first event sends `response.failed` and an `error` event."
    ),
    request=ResponseCreateInput,
    parameters=KEY_HEADERS,
    examples=[
        request_example(
            "text",
            {"model": EXAMPLE_MODEL, "input": "Say hello in French.", "max_output_tokens": 64},
            summary="A whole answer",
        ),
    ],
    responses={
        **answer_or_stream(
            "A `response`, or (`stream: true`) its events.",
            ResponseObjectSerializer,
            ResponseStreamEventSerializer,
            "event: response.created\n"
            'data: {"type":"response.created","sequence_number":0,"response":{...}}\n\n'
            "event: response.output_text.delta\n"
            'data: {"type":"response.output_text.delta","sequence_number":4,'
            '"item_id":"msg_93be21","output_index":0,"content_index":0,'
            '"delta":"Bonjour","logprobs":[]}\n\n'
            "event: response.completed\n"
            'data: {"type":"response.completed","sequence_number":9,"response":{...}}\n\n',
            whole_example=("response", EXAMPLE_RESPONSE),
        ),
        **errors(*INFERENCE_ERRORS),
    },
)

responses_retrieve = extend_schema(
    tags=TAGS,
    summary="Retrieve a stored response (OpenAI Responses API)",
    description="A response this key created with `store: true`; `404` for any other id.",
    parameters=[RESPONSE_ID, *KEY_HEADERS],
    responses={
        200: answer(ResponseObjectSerializer, "The response.", "response", EXAMPLE_RESPONSE),
        **errors(*MODEL_ERRORS),
    },
)

responses_delete = extend_schema(
    tags=TAGS,
    summary="Delete a stored response (OpenAI Responses API)",
    description="Forget a response this key stored; `404` for any other id.",
    request=None,
    parameters=[RESPONSE_ID, *KEY_HEADERS],
    responses={
        200: answer(
            ResponseDeletedSerializer,
            "Deleted.",
            "deleted",
            {"id": "resp_6a1f0c", "object": "response.deleted", "deleted": True},
        ),
        **errors(*MODEL_ERRORS),
    },
)
