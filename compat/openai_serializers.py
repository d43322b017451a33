"""Request and response shapes of the OpenAI-compatible API (`/openai/v1/`).

Input serializers check types and ranges (a failure is a `422` naming the
field), and their fields refuse a valid value the backend cannot honour
(`gateway.validation.refuse`: a `400` naming `param`, when nothing failed
with a `422`). Each field documents the rules it enforces, so the OpenAPI
document says what the code checks. `response_format`, `tools` and tool-call
arguments come out Ollama-shaped.
Output serializers document the responses; views build the same dicts
directly, as the native API does, because running every float of an
embedding through a serializer costs more than the backend call.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiExample, extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from gateway.errors import BadRequestError
from gateway.schema import EXAMPLE_MODEL, request_example
from gateway.validation import (
    BASE64_PATTERN,
    ModelNameField,
    StrictJSONMixin,
    embedding_input_schema,
    refuse,
    tool_parameters_schema,
    tool_problem,
)

# --- shared fields ------------------------------------------------------------


@extend_schema_field(
    {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 4}]}
)
class StopField(serializers.Field):
    """`stop`: a string or a list of up to 4 strings; always a list inside."""

    default_error_messages = {
        "invalid": "Must be a string or a list of strings.",
        "too_many": "At most 4 stop sequences.",
    }

    def to_internal_value(self, data: Any) -> list[str]:
        items = [data] if isinstance(data, str) else data
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            self.fail("invalid")
        if len(items) > 4:
            self.fail("too_many")
        return [item for item in items if item]

    def to_representation(self, value: Any) -> Any:
        return value


class AnyJSONField(serializers.JSONField):
    """A JSON value of any type."""


# The "unset" values of a JSON field: what a field the backend cannot honour accepts.
FALSY = [
    {"const": False},
    {"const": 0},
    {"const": ""},
    {"type": "array", "maxItems": 0},
    {"type": "object", "maxProperties": 0},
]


class _Refused:
    """A parameter the backend cannot honour: unset (null, false, 0, empty) or a 400."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        self.message = message
        kwargs.update(required=False, allow_null=True, help_text=f"{message} Leave it out.")
        super().__init__(**kwargs)  # type: ignore[call-arg]

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)  # type: ignore[misc]
        if value:
            refuse(self.message)
        return value


@extend_schema_field({"anyOf": [{"const": False}]})
class RefusedBooleanField(_Refused, serializers.BooleanField):
    pass


@extend_schema_field({"anyOf": [{"const": 0}]})
class RefusedIntegerField(_Refused, serializers.IntegerField):
    pass


@extend_schema_field({"type": "object", "maxProperties": 0})
class RefusedObjectField(_Refused, serializers.DictField):
    pass


@extend_schema_field({"anyOf": FALSY})
class RefusedJSONField(_Refused, AnyJSONField):
    pass


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": 1})
class OnlyOneField(serializers.IntegerField):
    """`n`, `best_of`: the backend makes one choice; more is a 400."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        self.message = message
        super().__init__(min_value=1, required=False, allow_null=True, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        value = super().to_internal_value(data)
        if value > 1:
            refuse(self.message)
        return value


class ChoicesField(serializers.IntegerField):
    """`n`: how many choices, 1 to GATEWAY_MAX_CHOICES; more is a 400 naming `n`.

    Each choice is one generation, counted against the key's limits like a
    request (see `keys.policy.choices_count`).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, required=False, allow_null=True, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        value = super().to_internal_value(data)
        if value > settings.GATEWAY_MAX_CHOICES:
            refuse(f"n must be at most {settings.GATEWAY_MAX_CHOICES} (GATEWAY_MAX_CHOICES).")
        return value


class ChoicesFieldSchema(OpenApiSerializerFieldExtension):
    """The maximum as configured when the document is made."""

    target_class = ChoicesField

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return {
            "type": "integer",
            "minimum": 1,
            "maximum": settings.GATEWAY_MAX_CHOICES,
            "description": "How many choices to generate (default 1). Each is a generation "
            "of its own, counted against the key's request limit and charged its tokens; "
            "with `seed`, choice i uses seed + i. At most GATEWAY_MAX_CHOICES.",
        }


# `top_logprobs` only with `logprobs: true` (as OpenAI answers, else a 400).
TOP_LOGPROBS_NEEDS_LOGPROBS = {
    "x-any-of": [
        {"properties": {"top_logprobs": {"type": "null"}}},
        {"required": ["logprobs"], "properties": {"logprobs": {"const": True}}},
    ]
}

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high")


@extend_schema_field({"anyOf": [{"enum": list(REASONING_EFFORTS)}]})
class ReasoningEffortField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if value not in REASONING_EFFORTS:
            refuse("reasoning_effort must be none, minimal, low, medium or high.")
        return value


DATA_URL = r"^data:[^,]*;base64," + BASE64_PATTERN.removeprefix("^")
IMAGE_URL = {
    "type": "string",
    "pattern": DATA_URL,
    "description": "A base64 data URL (`data:image/png;base64,...`); web URLs are refused.",
}


def _image_url(url: Any, where: tuple[str | int, ...]) -> None:
    """A `data:image/...;base64,` URL; anything else is a 400."""
    if not isinstance(url, str) or not url.startswith("data:"):
        refuse(
            "Image URLs are not supported: send the image inline as a base64 data URL "
            "(data:image/png;base64,...).",
            *where,
        )
    header, _, payload = url.partition(",")
    if ";base64" not in header or not payload:
        refuse("The image data URL must be base64-encoded.", *where)
    try:
        base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        refuse("The image data URL holds invalid base64.", *where)


@extend_schema_field(
    {
        "anyOf": [
            {"type": "string"},
            {
                "type": "array",
                "items": {
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
                                        {
                                            "type": "object",
                                            "required": ["url"],
                                            "properties": {"url": IMAGE_URL},
                                        },
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
                },
            },
        ],
        "description": "A string, or a list of parts (text, image_url as a data URL).",
    }
)
class ContentField(AnyJSONField):
    """A message's `content`: a string, or parts (text, image_url as a data URL, refusal)."""

    def to_internal_value(self, data: Any) -> Any:
        if data is None or isinstance(data, str):
            return data
        if not isinstance(data, list):
            refuse("content must be a string or a list of parts.")
        for index, part in enumerate(data):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "image_url":
                image_url = part.get("image_url")
                url = image_url.get("url") if isinstance(image_url, dict) else image_url
                _image_url(url, (index, "image_url", "url"))
            elif not (kind == "refusal" or (kind == "text" and isinstance(part.get("text"), str))):
                refuse(
                    f"Unsupported content part type {kind!r}: use text or image_url.", index, "type"
                )
        return data


@extend_schema_field(
    {
        "type": "array",
        "items": {
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
                                {"type": "null"},
                                *FALSY,
                            ]
                        },
                    },
                },
            },
        },
    }
)
class ToolCallsField(serializers.ListField):
    """The tool calls of an earlier assistant message; `arguments` become an object."""

    child = serializers.DictField()

    def to_internal_value(self, data: Any) -> list[dict[str, Any]]:
        calls = super().to_internal_value(data)
        for index, call in enumerate(calls):
            function = call.get("function")
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                refuse("A tool call needs function.name.", index, "function", "name")
            arguments = function.get("arguments") or "{}"
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except json.JSONDecodeError:
                    refuse(
                        "Tool call arguments must be a JSON object string.",
                        index, "function", "arguments",
                    )  # fmt: skip
            if not isinstance(arguments, dict):
                refuse("Tool call arguments must be a JSON object.", index, "function", "arguments")
            call["function"] = {"name": function["name"], "arguments": arguments}
        return calls


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


@extend_schema_field(
    {
        "type": "array",
        "items": _function_object(
            description={"type": ["string", "null"]},
            parameters=tool_parameters_schema(nullable_type=False),
        ),
    }
)
class ToolsField(serializers.ListField):
    """OpenAI function tools, returned as Ollama takes them."""

    child = serializers.DictField()

    def to_internal_value(self, data: Any) -> list[dict[str, Any]]:
        converted: list[dict[str, Any]] = []
        for index, tool in enumerate(super().to_internal_value(data)):
            function = tool.get("function")
            if tool.get("type", "function") != "function" or not isinstance(function, dict):
                refuse("Only function tools are supported.", index, "type")
            if not isinstance(function.get("name"), str) or not function["name"]:
                refuse("A tool needs function.name.", index, "function")
            description = function.get("description")
            if description is not None and not isinstance(description, str):
                refuse("function.description must be a string.", index, "function", "description")
            parameters = function.get("parameters")
            if parameters is not None and (
                not isinstance(parameters, dict) or parameters.get("type", "object") != "object"
            ):
                refuse(
                    "function.parameters must be a JSON Schema of type object.",
                    index, "function", "parameters",
                )  # fmt: skip
            spec: dict[str, Any] = {"name": function["name"]}
            if description:
                spec["description"] = description
            if parameters is not None:
                spec["parameters"] = parameters
            problem = tool_problem({"type": "function", "function": spec})
            if problem:
                refuse(f"Invalid tool: {problem}.", index)
            converted.append({"type": "function", "function": spec})
        return converted


@extend_schema_field(
    {
        "anyOf": [
            {"enum": ["none", "auto", "required"]},
            {
                **_function_object(),
                "description": "Only this function (it must be one of `tools`).",
            },
        ]
    }
)
class ToolChoiceField(AnyJSONField):
    """`none`, `auto`, `required`, or one function by name."""

    def to_internal_value(self, data: Any) -> Any:
        if data in ("none", "auto", "required"):
            return data
        if isinstance(data, dict):
            function = data.get("function")
            name = function.get("name") if isinstance(function, dict) else None
            if data.get("type", "function") == "function" and isinstance(name, str) and name:
                return data
        refuse(
            'tool_choice must be none, auto, required or {"type": "function", '
            '"function": {"name": ...}}.'
        )


@extend_schema_field(
    {
        "anyOf": [
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
)
class ResponseFormatField(serializers.DictField):
    """`response_format`, returned as Ollama's `format`: None, "json" or a JSON Schema."""

    def to_internal_value(self, data: Any) -> str | dict[str, Any] | None:
        response_format = super().to_internal_value(data)
        kind = response_format.get("type")
        if not response_format or kind == "text":
            return None
        if kind == "json_object":
            return "json"
        if kind != "json_schema":
            refuse(
                f"Unsupported response_format type {kind!r}: use text, json_object or json_schema.",
                "type",
            )
        json_schema = response_format.get("json_schema")
        schema = json_schema.get("schema") if isinstance(json_schema, dict) else None
        if not isinstance(schema, dict):
            refuse(
                "response_format.json_schema.schema must be a JSON Schema object.",
                "json_schema", "schema",
            )  # fmt: skip
        return schema


@extend_schema_field(
    {
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1},
        ],
        "description": "A string (or a list holding one string).",
    }
)
class PromptField(AnyJSONField):
    """`prompt`: one string (or a list holding one); batches and token arrays are a 400."""

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, list) and len(data) == 1 and isinstance(data[0], str):
            data = data[0]
        if not isinstance(data, str):
            refuse("prompt must be a string (batches and token arrays are not supported).")
        return data


AUDIO = "Audio output is not supported by the backend."


@extend_schema_field(
    # Trimmed, then not blank.
    {"type": "array", "items": {"type": "string", "pattern": r"\S", "not": {"const": "audio"}}}
)
class ModalitiesField(serializers.ListField):
    """`modalities`: asking for `audio` is refused (400 naming `audio`, see `validate`)."""


# Token ids are OpenAI's (cl100k_base) and mean nothing to a local model: decoding
# them needs that vocabulary, which no well-kept package ships (tiktoken downloads
# it at run time, which a gateway must not do).
TOKEN_ARRAYS_REFUSED = (
    "Token arrays are not supported: send the text. LangChain's OpenAIEmbeddings sends "
    "token ids by default: set check_embedding_ctx_length=False "
    "(OpenAIEmbeddings(..., check_embedding_ctx_length=False))."
)


def _token_ids(value: Any) -> bool:
    """A list of token ids (or a list of such lists)."""
    if not isinstance(value, list) or not value:
        return False
    return all(isinstance(item, int) and not isinstance(item, bool) for item in value) or all(
        isinstance(item, list) and item and all(isinstance(i, int) for i in item) for item in value
    )


class EmbeddingInputsField(AnyJSONField):
    """`input`: a string or a list of strings, none empty; returned as a list."""

    def to_internal_value(self, data: Any) -> list[str]:
        items = [data] if isinstance(data, str) else data
        if _token_ids(items):
            refuse(TOKEN_ARRAYS_REFUSED)
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            refuse("input must be a string or a list of strings.")
        if not items or any(not item for item in items):
            refuse("input must not be empty or hold empty strings.")
        if len(items) > settings.MAX_EMBEDDING_INPUTS:
            refuse(
                f"At most {settings.MAX_EMBEDDING_INPUTS} inputs per request "
                "(MAX_EMBEDDING_INPUTS)."
            )
        for index, item in enumerate(items):
            if len(item) > settings.MAX_EMBEDDING_INPUT_CHARS:
                refuse(
                    f"Input {index} is longer than {settings.MAX_EMBEDDING_INPUT_CHARS} "
                    "characters (MAX_EMBEDDING_INPUT_CHARS)."
                )
        return items


EXAMPLE_MODEL_OBJECT = {
    "id": EXAMPLE_MODEL,
    "object": "model",
    "created": 1768473000,
    "owned_by": "library",
}


_TOKEN_LOGPROB = {
    "type": "object",
    "required": ["token", "logprob", "bytes"],
    "properties": {
        "token": {"type": "string"},
        "logprob": {"type": "number", "maximum": 0},
        "bytes": {"type": ["array", "null"], "items": {"type": "integer"}},
    },
}


@extend_schema_field(
    {
        "type": ["object", "null"],
        "required": ["content", "refusal"],
        "properties": {
            "content": {
                "type": ["array", "null"],
                "items": {
                    **_TOKEN_LOGPROB,
                    "required": [*_TOKEN_LOGPROB["required"], "top_logprobs"],
                    "properties": {
                        **_TOKEN_LOGPROB["properties"],
                        "top_logprobs": {"type": "array", "items": _TOKEN_LOGPROB},
                    },
                },
            },
            "refusal": {"type": "null"},
        },
        "description": "With `logprobs: true`: each generated token's log probability "
        "(and its `top_logprobs` most likely alternatives); else null.",
    }
)
class ChatLogprobsField(serializers.JSONField):
    """`logprobs` of a chat choice (or of a streamed chunk's tokens)."""


@extend_schema_field(
    {
        "type": ["object", "null"],
        "required": ["tokens", "token_logprobs", "top_logprobs", "text_offset"],
        "properties": {
            "tokens": {"type": "array", "items": {"type": "string"}},
            "token_logprobs": {"type": "array", "items": {"type": "number", "maximum": 0}},
            "top_logprobs": {
                "type": "array",
                "items": {"type": "object", "additionalProperties": {"type": "number"}},
            },
            "text_offset": {"type": "array", "items": {"type": "integer"}},
        },
        "description": "With `logprobs` (0 to 5): each generated token, its log "
        "probability, the most likely tokens at that step (the chosen one too) and "
        "its offset in the generated text; else null.",
    }
)
class CompletionLogprobsField(serializers.JSONField):
    """`logprobs` of a (legacy) completion choice."""


class OpenAIUsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


# --- models ---------------------------------------------------------------------


@extend_schema_serializer(examples=[OpenApiExample("model", value=EXAMPLE_MODEL_OBJECT)])
class OpenAIModelSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Model id as the backend names it.")
    object = serializers.CharField(default="model")
    created = serializers.IntegerField(help_text="Unix seconds of the model's last change.")
    owned_by = serializers.CharField(help_text="Namespace of the model name ('library').")


# One object, though `list` is the action's name (drf-spectacular would wrap it in an array).
@extend_schema_serializer(
    many=False,
    examples=[OpenApiExample("models", value={"object": "list", "data": [EXAMPLE_MODEL_OBJECT]})],
)
class OpenAIModelListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = OpenAIModelSerializer(many=True)


# --- chat -----------------------------------------------------------------------


class OpenAIMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "developer", "user", "assistant", "tool"])
    content = ContentField(required=False, allow_null=True)
    name = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    tool_calls = ToolCallsField(required=False, allow_null=True)
    tool_call_id = serializers.CharField(required=False, allow_blank=True, allow_null=True)


@extend_schema_serializer(
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
    extensions=TOP_LOGPROBS_NEEDS_LOGPROBS,
)
class ChatCompletionInputSerializer(StrictJSONMixin, serializers.Serializer):
    """`POST /openai/v1/chat/completions` body (OpenAI's field names)."""

    model = ModelNameField()
    messages = OpenAIMessageSerializer(many=True, allow_empty=False)
    temperature = serializers.FloatField(
        min_value=0.0, max_value=2.0, required=False, allow_null=True
    )
    top_p = serializers.FloatField(min_value=0.0, max_value=1.0, required=False, allow_null=True)
    max_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    max_completion_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    stop = StopField(required=False, allow_null=True)
    seed = serializers.IntegerField(required=False, allow_null=True)
    frequency_penalty = serializers.FloatField(
        min_value=-2.0, max_value=2.0, required=False, allow_null=True
    )
    presence_penalty = serializers.FloatField(
        min_value=-2.0, max_value=2.0, required=False, allow_null=True
    )
    stream = serializers.BooleanField(required=False, allow_null=True, default=False)
    stream_options = serializers.DictField(required=False, allow_null=True)
    response_format = ResponseFormatField(required=False, allow_null=True)
    tools = ToolsField(required=False, allow_null=True)
    tool_choice = ToolChoiceField(required=False, allow_null=True)
    reasoning_effort = ReasoningEffortField(required=False, allow_null=True)
    n = ChoicesField()
    logprobs = serializers.BooleanField(
        required=False,
        allow_null=True,
        help_text="Return each generated token's log probability (`choices[].logprobs`).",
    )
    top_logprobs = serializers.IntegerField(
        min_value=0,
        max_value=20,
        required=False,
        allow_null=True,
        help_text="How many most likely alternatives to return per token; needs `logprobs: true`.",
    )
    # What the backend cannot do: accepted unset, refused by name (400) when set.
    logit_bias = RefusedObjectField("logit_bias is not supported by the backend.")
    modalities = ModalitiesField(child=serializers.CharField(), required=False, allow_null=True)
    audio = RefusedJSONField(AUDIO)

    def validate_messages(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(value) > settings.MAX_CHAT_MESSAGES:
            raise serializers.ValidationError(
                f"At most {settings.MAX_CHAT_MESSAGES} messages (MAX_CHAT_MESSAGES)."
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "audio" in (attrs.get("modalities") or ()):
            raise BadRequestError(AUDIO, param="audio")
        if attrs.get("top_logprobs") is not None and not attrs.get("logprobs"):
            raise BadRequestError("top_logprobs needs logprobs: true.", param="top_logprobs")
        return attrs


class OpenAIToolCallFunctionSerializer(serializers.Serializer):
    name = serializers.CharField()
    arguments = serializers.CharField(help_text="The arguments as a JSON string.")


class OpenAIToolCallSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.CharField(default="function")
    function = OpenAIToolCallFunctionSerializer()


class OpenAIAssistantMessageSerializer(serializers.Serializer):
    role = serializers.CharField(default="assistant")
    content = serializers.CharField(allow_null=True)
    refusal = serializers.CharField(allow_null=True)
    tool_calls = OpenAIToolCallSerializer(many=True, required=False)
    reasoning = serializers.CharField(
        required=False, help_text="The model's thinking, when it has any (not in OpenAI's API)."
    )


class ChatChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    message = OpenAIAssistantMessageSerializer()
    logprobs = ChatLogprobsField()
    finish_reason = serializers.ChoiceField(choices=["stop", "length", "tool_calls"])


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "completion",
            value={
                "id": "chatcmpl-8f2c1e",
                "object": "chat.completion",
                "created": 1768473000,
                "model": EXAMPLE_MODEL,
                "system_fingerprint": None,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Bonjour !", "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 15, "completion_tokens": 3, "total_tokens": 18},
            },
        )
    ]
)
class ChatCompletionSerializer(serializers.Serializer):
    """`chat.completion`; with `stream: true`, `chat.completion.chunk` SSE events instead."""

    id = serializers.CharField()
    object = serializers.CharField(default="chat.completion")
    created = serializers.IntegerField()
    model = serializers.CharField()
    system_fingerprint = serializers.CharField(allow_null=True)
    choices = ChatChoiceSerializer(many=True)
    usage = OpenAIUsageSerializer()


# --- completions (legacy) -----------------------------------------------------


@extend_schema_serializer(
    examples=[
        request_example(
            "prompt", {"model": EXAMPLE_MODEL, "prompt": "def fibonacci(n):", "max_tokens": 64}
        )
    ]
)
class CompletionInputSerializer(StrictJSONMixin, serializers.Serializer):
    """`POST /openai/v1/completions` body."""

    model = ModelNameField()
    prompt = PromptField()
    suffix = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, trim_whitespace=False
    )
    temperature = serializers.FloatField(
        min_value=0.0, max_value=2.0, required=False, allow_null=True
    )
    top_p = serializers.FloatField(min_value=0.0, max_value=1.0, required=False, allow_null=True)
    max_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    stop = StopField(required=False, allow_null=True)
    seed = serializers.IntegerField(required=False, allow_null=True)
    frequency_penalty = serializers.FloatField(
        min_value=-2.0, max_value=2.0, required=False, allow_null=True
    )
    presence_penalty = serializers.FloatField(
        min_value=-2.0, max_value=2.0, required=False, allow_null=True
    )
    stream = serializers.BooleanField(required=False, allow_null=True, default=False)
    stream_options = serializers.DictField(required=False, allow_null=True)
    n = ChoicesField()
    logprobs = serializers.IntegerField(
        min_value=0,
        max_value=5,
        required=False,
        allow_null=True,
        help_text="Return each generated token's log probability, with this many most "
        "likely alternatives (0 to 5).",
    )
    best_of = OnlyOneField("Only best_of=1 is supported.")
    echo = RefusedBooleanField("echo is not supported by the backend.")
    logit_bias = RefusedObjectField("logit_bias is not supported by the backend.")


class CompletionChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    text = serializers.CharField()
    logprobs = CompletionLogprobsField()
    finish_reason = serializers.ChoiceField(choices=["stop", "length"])


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "completion",
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
    ]
)
class CompletionSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="text_completion")
    created = serializers.IntegerField()
    model = serializers.CharField()
    system_fingerprint = serializers.CharField(allow_null=True)
    choices = CompletionChoiceSerializer(many=True)
    usage = OpenAIUsageSerializer()


# --- embeddings -----------------------------------------------------------------


class EmbeddingInputsFieldSchema(OpenApiSerializerFieldExtension):
    target_class = EmbeddingInputsField

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return embedding_input_schema(
            "anyOf", "A string or a list of strings, none empty (token arrays are refused)."
        )


@extend_schema_serializer(
    examples=[
        request_example(
            "texts", {"model": "mxbai-embed-large", "input": ["first text", "second text"]}
        )
    ]
)
class OpenAIEmbeddingInputSerializer(StrictJSONMixin, serializers.Serializer):
    """`POST /openai/v1/embeddings` body."""

    model = ModelNameField()
    input = EmbeddingInputsField()
    encoding_format = serializers.ChoiceField(
        choices=["float", "base64"], required=False, allow_null=True, default="float"
    )
    dimensions = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    user = serializers.CharField(required=False, allow_null=True, allow_blank=True)


class EmbeddingItemSerializer(serializers.Serializer):
    object = serializers.CharField(default="embedding")
    embedding = serializers.JSONField(
        help_text="Floats, or a base64 string of little-endian float32 with encoding_format=base64."
    )
    index = serializers.IntegerField()


@extend_schema_serializer(component_name="OpenAIEmbeddingUsage")
class EmbeddingUsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "vectors",
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
    ]
)
class EmbeddingListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = EmbeddingItemSerializer(many=True)
    model = serializers.CharField()
    usage = EmbeddingUsageSerializer()


# --- stream chunks ----------------------------------------------------------------


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
    logprobs = ChatLogprobsField()
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
        many=True,
        help_text="One choice (its `index` says which, with `n`); empty in the final usage chunk.",
    )
    usage = OpenAIUsageSerializer(
        required=False,
        allow_null=True,
        help_text="With `stream_options.include_usage`: null, except in the last chunk.",
    )


class CompletionChunkChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    text = serializers.CharField(allow_blank=True)
    logprobs = CompletionLogprobsField()
    finish_reason = serializers.ChoiceField(choices=["stop", "length"], allow_null=True)


class CompletionChunkSerializer(_ChunkSerializer):
    """`text_completion`: one event of a streamed (legacy) completion."""

    object = serializers.ChoiceField(choices=["text_completion"])
    choices = CompletionChunkChoiceSerializer(many=True)
    usage = OpenAIUsageSerializer(required=False, allow_null=True)
