"""Serializers of the native API (`/v1/`): input validation and output shapes."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from gateway.backends import ModelInfo
from gateway.schema import EXAMPLE_MODEL, example, request_example
from gateway.validation import ModelNameField, StrictJSONMixin, embedding_input_schema


def human_size(size_bytes: int) -> str:
    """Decimal units, as Ollama prints them: 9123456789 -> '9.1GB'."""
    for unit, factor in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if size_bytes >= factor:
            return f"{size_bytes / factor:.1f}{unit}"
    return f"{size_bytes}B"


# --- models ---------------------------------------------------------------


@example(
    "model",
    {
        "id": EXAMPLE_MODEL,
        "name": EXAMPLE_MODEL,
        "size": "9.0GB",
        "size_bytes": 8988124069,
        "family": "qwen2",
        "parameter_size": "14.8B",
        "quantization_level": "Q4_K_M",
        "modified_at": "2026-01-15T10:30:00Z",
        "backends": ["gpu", "ollama"],
    },
)
class ModelSerializer(serializers.Serializer):
    """A model as the native API shows it."""

    id = serializers.CharField(help_text="Model id as the backend names it.")
    name = serializers.CharField(source="id")
    size = serializers.SerializerMethodField(help_text="Size on disk, decimal units.")
    size_bytes = serializers.IntegerField()
    family = serializers.CharField()
    parameter_size = serializers.CharField()
    quantization_level = serializers.CharField()
    modified_at = serializers.DateTimeField(allow_null=True)
    backends = serializers.ListField(
        child=serializers.CharField(),
        help_text="The backends that have the model (empty with a single backend).",
    )

    def get_size(self, model: ModelInfo) -> str:
        return human_size(model.size_bytes)


# --- chat -------------------------------------------------------------------


class ChatMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "user", "assistant"])
    content = serializers.CharField(allow_blank=True, trim_whitespace=False)


@extend_schema_serializer(
    examples=[
        request_example(
            "chat",
            {
                "model": EXAMPLE_MODEL,
                "messages": [
                    {"role": "system", "content": "You are a concise assistant."},
                    {"role": "user", "content": "What is a Python list comprehension?"},
                ],
                "temperature": 0.7,
                "max_tokens": 256,
            },
            summary="A whole answer",
        ),
        request_example(
            "stream",
            {
                "model": EXAMPLE_MODEL,
                "messages": [{"role": "user", "content": "What is a Python list comprehension?"}],
                "stream": True,
            },
            summary="A streamed answer",
        ),
    ]
)
class ChatInputSerializer(StrictJSONMixin, serializers.Serializer):
    """`POST /v1/chat/completions` body."""

    model = ModelNameField(
        required=False,
        help_text="Defaults to DEFAULT_CHAT_MODEL (or, while that is not served, "
        "the embedded chat model).",
    )
    messages = ChatMessageSerializer(many=True, allow_empty=False)
    temperature = serializers.FloatField(min_value=0.0, max_value=2.0, default=0.7)
    max_tokens = serializers.IntegerField(
        min_value=1, max_value=32768, required=False, allow_null=True
    )
    stream = serializers.BooleanField(default=False)

    def validate_model(self, value: str) -> str:
        return value.strip()

    def validate_messages(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(value) > settings.MAX_CHAT_MESSAGES:
            raise serializers.ValidationError(
                f"At most {settings.MAX_CHAT_MESSAGES} messages (MAX_CHAT_MESSAGES)."
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs.setdefault("model", "")  # "": the view asks for the default (service.default_model)
        return attrs


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class AssistantMessageSerializer(serializers.Serializer):
    role = serializers.CharField(default="assistant")
    content = serializers.CharField()


@example(
    "answer",
    {
        "id": "6f1c2d8e-6a1b-4b8e-9f3a-2c1d0e9b8a7f",
        "model": EXAMPLE_MODEL,
        "created": "2026-01-15T10:30:00Z",
        "message": {
            "role": "assistant",
            "content": "A list comprehension builds a list in one expression: "
            "`[x * x for x in range(5)]`.",
        },
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 24, "completion_tokens": 19, "total_tokens": 43},
    },
)
class ChatOutputSerializer(serializers.Serializer):
    """A whole chat answer."""

    id = serializers.CharField()
    model = serializers.CharField()
    created = serializers.DateTimeField()
    message = AssistantMessageSerializer()
    finish_reason = serializers.CharField(allow_null=True)
    usage = UsageSerializer()


class ChatStreamEventSerializer(serializers.Serializer):
    """One `data:` event of a streamed answer (the last one has `done: true`)."""

    id = serializers.CharField()
    model = serializers.CharField()
    created = serializers.DateTimeField()
    message = AssistantMessageSerializer()
    done = serializers.BooleanField()
    finish_reason = serializers.CharField(required=False, allow_null=True)
    usage = UsageSerializer(required=False)


# --- embeddings -------------------------------------------------------------


class EmbeddingInputField(serializers.Field):
    """A non-empty string, or a non-empty list of non-empty strings."""

    default_error_messages = {
        "invalid": "Must be a string or a list of strings.",
        "empty": "Must not be empty.",
        "empty_item": "Item {index} is an empty string.",
        "too_many": "At most {limit} inputs per request (MAX_EMBEDDING_INPUTS).",
        "too_long": "Input {index} is longer than {limit} characters (MAX_EMBEDDING_INPUT_CHARS).",
    }

    def to_internal_value(self, data: Any) -> list[str]:
        items = [data] if isinstance(data, str) else data
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            self.fail("invalid")
        if not items:
            self.fail("empty")
        if len(items) > settings.MAX_EMBEDDING_INPUTS:
            self.fail("too_many", limit=settings.MAX_EMBEDDING_INPUTS)
        for index, item in enumerate(items):
            if not item:
                if isinstance(data, str):
                    self.fail("empty")
                self.fail("empty_item", index=index)
            if len(item) > settings.MAX_EMBEDDING_INPUT_CHARS:
                self.fail("too_long", index=index, limit=settings.MAX_EMBEDDING_INPUT_CHARS)
        return items

    def to_representation(self, value: Any) -> Any:
        return value


class EmbeddingInputFieldSchema(OpenApiSerializerFieldExtension):
    target_class = EmbeddingInputField

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return embedding_input_schema(
            "oneOf", "A string, or a list of strings; none of them empty."
        )


@extend_schema_serializer(
    examples=[
        request_example(
            "one",
            {"model": "mxbai-embed-large", "input": "The quick brown fox"},
            summary="One text",
        ),
        request_example(
            "many",
            {"model": "mxbai-embed-large", "input": ["first text", "second text"]},
            summary="Several texts in one call",
        ),
    ]
)
class EmbeddingInputSerializer(StrictJSONMixin, serializers.Serializer):
    """`POST /v1/embeddings` body."""

    model = ModelNameField(
        required=False,
        help_text="Defaults to DEFAULT_EMBEDDING_MODEL (or, while that is not served, "
        "the embedded embedding model).",
    )
    input = EmbeddingInputField(help_text="A string or a list of strings.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # "": the view asks for the default (service.default_model).
        attrs["model"] = attrs.get("model", "").strip()
        return attrs


class EmbeddingUsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


@example(
    "vectors",
    {
        "model": "mxbai-embed-large",
        "embeddings": [[0.0123, -0.0456, 0.0789], [0.0321, 0.0654, -0.0987]],
        "usage": {"prompt_tokens": 6, "total_tokens": 6},
    },
)
class EmbeddingOutputSerializer(serializers.Serializer):
    model = serializers.CharField()
    embeddings = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()))
    usage = EmbeddingUsageSerializer()
