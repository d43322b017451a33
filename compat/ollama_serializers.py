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
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from gateway.schema import EXAMPLE_MODEL, example
from gateway.validation import (
    BASE64_PATTERN,
    ModelNameField,
    OllamaOptionsField,
    StrictJSONMixin,
    tool_parameters_schema,
    tool_problem,
)

_THINK_LEVELS = ("low", "medium", "high", "max")
EXAMPLE_DETAILS = {
    "parent_model": "",
    "format": "gguf",
    "family": "qwen2",
    "families": ["qwen2"],
    "parameter_size": "14.8B",
    "quantization_level": "Q4_K_M",
}
EXAMPLE_DIGEST = "7cdf5a0187d5c58cc5d369b255592f7841d1c4696d45a8c8a9489440385b22f6"
DONE = {"done_reason": "stop", "prompt_eval_count": 15, "eval_count": 4}


def chat_line(content: str, **last: Any) -> dict[str, Any]:
    """One `/api/chat` answer line (the last one with `last`'s fields)."""
    message = {"role": "assistant", "content": content}
    created_at = "2026-01-15T10:30:00.123456Z"
    return {
        "model": EXAMPLE_MODEL,
        "created_at": created_at,
        "message": message,
        "done": bool(last),
        **last,
    }


def generate_line(response: str, **last: Any) -> dict[str, Any]:
    """One `/api/generate` answer line (the last one with `last`'s fields)."""
    created_at = "2026-01-15T10:30:00.123456Z"
    return {
        "model": EXAMPLE_MODEL,
        "created_at": created_at,
        "response": response,
        "done": bool(last),
        **last,
    }


@extend_schema_field(
    {
        "anyOf": [{"enum": ["json", ""]}, {"type": "object"}],
        "description": '`"json"`, or a JSON Schema object the answer must follow.',
    }
)
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


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "pattern": BASE64_PATTERN},
        "description": "Images as raw base64 (no `data:` prefix).",
    }
)
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


@extend_schema_field(
    {
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
)
class ToolCallFunctionField(serializers.DictField):
    """`{"name", "arguments": {...}}`; no arguments is `{}`."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        if not isinstance(value.get("name"), str) or not value["name"]:
            raise serializers.ValidationError("function.name is required.")
        arguments = value.get("arguments") or {}
        if not isinstance(arguments, dict):
            raise serializers.ValidationError("function.arguments must be an object.")
        return {"name": value["name"], "arguments": arguments}


class OllamaToolCallSerializer(serializers.Serializer):
    """A tool call in a message's history: `{"id"?, "function": {"name", "arguments": {...}}}`."""

    id = serializers.CharField(required=False, help_text="The call's id, as Ollama gave it.")
    function = ToolCallFunctionField()


@extend_schema_field(
    {
        "type": "array",
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
    }
)
class OllamaToolsField(serializers.ListField):
    """Tools as the ollama client accepts them (`tool_problem`)."""

    child = serializers.DictField()

    def to_internal_value(self, data: Any) -> list[dict[str, Any]]:
        tools = super().to_internal_value(data)
        for index, tool in enumerate(tools):
            problem = tool_problem(tool)
            if problem:
                raise serializers.ValidationError(f"Tool {index} is invalid: {problem}.")
        return tools


TOP_LOGPROBS_RANGE = "top_logprobs must be between 0 and 20"  # Ollama's words


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
    logprobs = serializers.BooleanField(
        required=False,
        allow_null=True,
        help_text="Return each generated token's log probability (`logprobs` of the answer).",
    )
    top_logprobs = serializers.IntegerField(
        min_value=0,
        max_value=20,
        required=False,
        allow_null=True,
        error_messages={"min_value": TOP_LOGPROBS_RANGE, "max_value": TOP_LOGPROBS_RANGE},
        help_text="With `logprobs`: how many most likely alternatives per token.",
    )


@example(
    "chat",
    {
        "model": EXAMPLE_MODEL,
        "messages": [{"role": "user", "content": "Why is the sky blue?"}],
        "stream": False,
    },
)
class OllamaChatSerializer(_InferenceSerializer):
    """`POST /ollama/api/chat` body."""

    messages = OllamaMessageSerializer(many=True, required=False, allow_null=True)
    tools = OllamaToolsField(required=False, allow_null=True)

    def validate_messages(self, value: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        value = value or []
        if len(value) > settings.MAX_CHAT_MESSAGES:
            raise serializers.ValidationError(
                f"At most {settings.MAX_CHAT_MESSAGES} messages (MAX_CHAT_MESSAGES)."
            )
        return value


@example("generate", {"model": EXAMPLE_MODEL, "prompt": "Why is the sky blue?", "stream": False})
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


@example("embed", {"model": "mxbai-embed-large", "input": ["first text", "second text"]})
class OllamaEmbedSerializer(StrictJSONMixin, serializers.Serializer):
    """`POST /ollama/api/embed` body."""

    model = ModelNameField(required=False, allow_blank=True, default="")
    input = EmbedInputField(required=False, default=list)
    truncate = serializers.BooleanField(required=False, allow_null=True)
    dimensions = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    options = OllamaOptionsField(required=False, allow_null=True)
    keep_alive = KeepAliveField(required=False, allow_null=True)


@example("embeddings", {"model": "mxbai-embed-large", "prompt": "The quick brown fox"})
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


# `model`, or its old spelling `name`: the serializers take neither as required so
# that a missing model gets Ollama's own answer; the schema says one is needed.
MODEL_OR_NAME = extend_schema_serializer(
    extensions={
        "x-any-of": [
            {"required": [name], "properties": {name: {"minLength": 1}}}
            for name in ("model", "name")
        ]
    }
)


@MODEL_OR_NAME
@example("show", {"model": EXAMPLE_MODEL})
class OllamaShowSerializer(StrictJSONMixin, serializers.Serializer):
    """`POST /ollama/api/show` body (`name` is the deprecated spelling of `model`)."""

    model = ModelNameField(required=False, allow_blank=True, default="")
    name = ModelNameField(required=False, allow_blank=True, default="")
    verbose = serializers.BooleanField(required=False, allow_null=True)


@MODEL_OR_NAME
@example("model", {"model": EXAMPLE_MODEL})
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


@example("model", {"source": EXAMPLE_MODEL, "destination": "my-model:latest"})
class OllamaCopySerializer(StrictJSONMixin, serializers.Serializer):
    """`POST /ollama/api/copy` body."""

    source = ModelNameField()
    destination = ModelNameField()


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


@example("answer", chat_line("Rayleigh scattering.", **DONE))
class OllamaChatResponseSerializer(OllamaMetricsMixin):
    """A whole `/api/chat` answer, or one NDJSON line of a streamed one."""

    model = serializers.CharField()
    created_at = serializers.DateTimeField()
    message = OllamaAssistantMessageSerializer()
    done = serializers.BooleanField()
    done_reason = serializers.CharField(required=False, help_text="On the last line.")


@example("answer", generate_line("Rayleigh scattering.", **DONE))
class OllamaGenerateResponseSerializer(OllamaMetricsMixin):
    """A whole `/api/generate` answer, or one NDJSON line of a streamed one."""

    model = serializers.CharField()
    created_at = serializers.DateTimeField()
    response = serializers.CharField(allow_blank=True)
    thinking = serializers.CharField(required=False)
    done = serializers.BooleanField()
    done_reason = serializers.CharField(required=False)
    context = serializers.ListField(child=serializers.IntegerField(), required=False)


@example(
    "vectors",
    {
        "model": "mxbai-embed-large",
        "embeddings": [[0.0123, -0.0456], [0.0321, 0.0654]],
        "prompt_eval_count": 6,
    },
)
class OllamaEmbedResponseSerializer(serializers.Serializer):
    model = serializers.CharField()
    embeddings = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()))
    total_duration = serializers.IntegerField(required=False)
    load_duration = serializers.IntegerField(required=False)
    prompt_eval_count = serializers.IntegerField(required=False)


@example("vector", {"embedding": [0.5123, -1.0456]})
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


@example(
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
)
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


@example(
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
)
class OllamaPsSerializer(serializers.Serializer):
    models = OllamaRunningModelSerializer(many=True)


@example(
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
)
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


@example("version", {"version": "0.12.6"})
class OllamaVersionSerializer(serializers.Serializer):
    version = serializers.CharField()


@example("done", {"status": "success"})
class OllamaProgressSerializer(serializers.Serializer):
    """One progress line of pull, push or create (the last says `success`)."""

    status = serializers.CharField()
    digest = serializers.CharField(required=False)
    total = serializers.IntegerField(required=False)
    completed = serializers.IntegerField(required=False)
