"""Request shapes of the Ollama-compatible API (`/ollama/api/...`).

Field names and loose types as Ollama's own server takes them (`spec/wire.md`
A.5-A.9). Unknown keys are ignored, as Ollama ignores them. A failure is a
`400 {"error": "..."}` on this surface (Ollama answers bad input with 400).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from gateway.validation import ModelNameField, OllamaOptionsField, StrictJSONMixin, tool_problem

_THINK_LEVELS = ("low", "medium", "high", "max")


@extend_schema_field({"oneOf": [{"type": "string", "enum": ["json"]}, {"type": "object"}]})
class FormatField(serializers.Field):
    """`format`: `"json"`, a JSON Schema object, or empty for none."""

    default_error_messages = {"invalid": 'Must be "json" or a JSON Schema object.'}

    def to_internal_value(self, data: Any) -> str | dict[str, Any] | None:
        if data in ("", None):
            return None
        if data == "json" or isinstance(data, dict):
            return data
        self.fail("invalid")

    def to_representation(self, value: Any) -> Any:
        return value


@extend_schema_field(
    {
        "oneOf": [
            {"type": "number"},
            # Go's time.ParseDuration, as Ollama reads it ("5m", "1h30m", "-1s", "0").
            {
                "type": "string",
                "pattern": (
                    r"^[-+]?(?:0|(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
                    r"(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)$"
                ),
                "examples": ["5m"],
            },
        ]
    }
)
class KeepAliveField(serializers.Field):
    """`keep_alive`: seconds (a number) or a duration string such as `"5m"`."""

    default_error_messages = {"invalid": 'Must be a number of seconds or a duration like "5m".'}

    def to_internal_value(self, data: Any) -> float | str:
        if isinstance(data, bool) or not isinstance(data, (int, float, str)):
            self.fail("invalid")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


@extend_schema_field(
    {"oneOf": [{"type": "boolean"}, {"type": "string", "enum": ["low", "medium", "high", "max"]}]}
)
class ThinkField(serializers.Field):
    """`think`: true, false, or a level (`low`, `medium`, `high`, `max`)."""

    default_error_messages = {
        "invalid": 'Must be true, false, "low", "medium", "high" or "max".',
    }

    def to_internal_value(self, data: Any) -> bool | str:
        if isinstance(data, bool) or data in _THINK_LEVELS:
            return data
        self.fail("invalid")

    def to_representation(self, value: Any) -> Any:
        return value


class Base64ImagesField(serializers.ListField):
    """Images as raw base64 strings (no `data:` prefix), strictly checked."""

    child = serializers.CharField(trim_whitespace=False)

    def to_internal_value(self, data: Any) -> list[str]:
        images = super().to_internal_value(data)
        for index, image in enumerate(images):
            try:
                base64.b64decode(image, validate=True)
            except (binascii.Error, ValueError):
                raise serializers.ValidationError(
                    f"Image {index} is not valid base64 data."
                ) from None
        return images


class OllamaToolCallSerializer(serializers.Serializer):
    """A tool call in a message's history: `{"id"?, "function": {"name", "arguments": {...}}}`."""

    id = serializers.CharField(required=False, help_text="The call's id, as Ollama gave it.")
    function = serializers.DictField()

    def validate_function(self, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("name"), str) or not value["name"]:
            raise serializers.ValidationError("function.name is required.")
        arguments = value.get("arguments") or {}
        if not isinstance(arguments, dict):
            raise serializers.ValidationError("function.arguments must be an object.")
        return {"name": value["name"], "arguments": arguments}


class OllamaMessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, trim_whitespace=False
    )
    thinking = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, trim_whitespace=False
    )
    images = Base64ImagesField(required=False, allow_null=True)
    tool_calls = OllamaToolCallSerializer(many=True, required=False, allow_null=True)
    tool_name = serializers.CharField(required=False, allow_blank=True, allow_null=True)

    def validate_role(self, value: str) -> str:
        return value.lower()


class _InferenceSerializer(StrictJSONMixin, serializers.Serializer):
    model = ModelNameField(required=False, allow_blank=True, default="")
    stream = serializers.BooleanField(required=False, default=True, allow_null=True)
    format = FormatField(required=False, allow_null=True)
    options = OllamaOptionsField(required=False, allow_null=True)
    think = ThinkField(required=False, allow_null=True)
    keep_alive = KeepAliveField(required=False, allow_null=True)
    logprobs = serializers.BooleanField(required=False, allow_null=True)

    def validate_logprobs(self, value: bool | None) -> bool | None:
        if value:
            raise serializers.ValidationError("logprobs are not supported by this gateway.")
        return value


class OllamaChatSerializer(_InferenceSerializer):
    """`POST /ollama/api/chat` body."""

    messages = OllamaMessageSerializer(many=True, required=False, allow_null=True)
    tools = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)

    def validate_tools(self, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for index, tool in enumerate(value or ()):
            problem = tool_problem(tool)
            if problem:
                raise serializers.ValidationError(f"Tool {index} is invalid: {problem}.")
        return value

    def validate_messages(self, value: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        value = value or []
        if len(value) > settings.MAX_CHAT_MESSAGES:
            raise serializers.ValidationError(
                f"At most {settings.MAX_CHAT_MESSAGES} messages (MAX_CHAT_MESSAGES)."
            )
        return value


class OllamaGenerateSerializer(_InferenceSerializer):
    """`POST /ollama/api/generate` body."""

    prompt = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, trim_whitespace=False
    )
    suffix = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, trim_whitespace=False
    )
    system = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, trim_whitespace=False
    )
    template = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, trim_whitespace=False
    )
    context = serializers.ListField(
        child=serializers.IntegerField(), required=False, allow_null=True
    )
    raw = serializers.BooleanField(required=False, allow_null=True)
    images = Base64ImagesField(required=False, allow_null=True)


@extend_schema_field(
    {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
)
class EmbedInputField(serializers.Field):
    """`input`: a string or a list of strings; empty means "no vectors"."""

    default_error_messages = {
        "invalid": "invalid input type",
        "too_many": "At most {limit} inputs per request (MAX_EMBEDDING_INPUTS).",
        "too_long": "Input {index} is longer than {limit} characters (MAX_EMBEDDING_INPUT_CHARS).",
    }

    def to_internal_value(self, data: Any) -> list[str]:
        if data in ("", None):
            return []
        items = [data] if isinstance(data, str) else data
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            self.fail("invalid")
        if len(items) > settings.MAX_EMBEDDING_INPUTS:
            self.fail("too_many", limit=settings.MAX_EMBEDDING_INPUTS)
        for index, item in enumerate(items):
            if len(item) > settings.MAX_EMBEDDING_INPUT_CHARS:
                self.fail("too_long", index=index, limit=settings.MAX_EMBEDDING_INPUT_CHARS)
        return items

    def to_representation(self, value: Any) -> Any:
        return value


class OllamaEmbedSerializer(StrictJSONMixin, serializers.Serializer):
    """`POST /ollama/api/embed` body."""

    model = ModelNameField(required=False, allow_blank=True, default="")
    input = EmbedInputField(required=False, default=list)
    truncate = serializers.BooleanField(required=False, allow_null=True)
    dimensions = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    options = OllamaOptionsField(required=False, allow_null=True)
    keep_alive = KeepAliveField(required=False, allow_null=True)


class OllamaEmbeddingsSerializer(StrictJSONMixin, serializers.Serializer):
    """`POST /ollama/api/embeddings` body (Ollama's legacy endpoint)."""

    model = ModelNameField(required=False, allow_blank=True, default="")
    prompt = serializers.CharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        trim_whitespace=False,
        max_length=settings.MAX_EMBEDDING_INPUT_CHARS,
    )
    options = OllamaOptionsField(required=False, allow_null=True)
    keep_alive = KeepAliveField(required=False, allow_null=True)


class OllamaShowSerializer(StrictJSONMixin, serializers.Serializer):
    """`POST /ollama/api/show` body (`name` is the deprecated spelling of `model`)."""

    model = ModelNameField(required=False, allow_blank=True, default="")
    name = ModelNameField(required=False, allow_blank=True, default="")
    verbose = serializers.BooleanField(required=False, allow_null=True)


class OllamaModelOperationSerializer(StrictJSONMixin, serializers.Serializer):
    """`pull`, `push`, `delete` bodies (`name` is the deprecated spelling of `model`)."""

    model = ModelNameField(required=False, allow_blank=True, default="")
    name = ModelNameField(required=False, allow_blank=True, default="")
    insecure = serializers.BooleanField(required=False, allow_null=True)
    stream = serializers.BooleanField(required=False, default=True, allow_null=True)


class OllamaCreateSerializer(OllamaModelOperationSerializer):
    """`POST /ollama/api/create` body; the build fields go to the backend as they are."""

    SPEC_FIELDS = (
        "from", "files", "adapters", "template", "license", "system", "parameters",
        "messages", "quantize",
    )  # fmt: skip


class OllamaCopySerializer(StrictJSONMixin, serializers.Serializer):
    """`POST /ollama/api/copy` body."""

    source = ModelNameField()
    destination = ModelNameField()
