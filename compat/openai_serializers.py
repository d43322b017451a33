"""Request and response shapes of the OpenAI-compatible API (`/openai/v1/`).

Input serializers check types and ranges (a failure is a `422` naming the
field); whether the backend can honour a valid value is decided when the
request is translated (`compat.openai_translate`, a `400` naming `param`).
Output serializers document the responses; views build the same dicts
directly, as the native API does, because running every float of an
embedding through a serializer costs more than the backend call.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from gateway.validation import ModelNameField, StrictJSONMixin

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
    """A JSON value of any type, checked later by the translation."""


class OpenAIUsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


# --- models ---------------------------------------------------------------------


class OpenAIModelSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Model id as the backend names it.")
    object = serializers.CharField(default="model")
    created = serializers.IntegerField(help_text="Unix seconds of the model's last change.")
    owned_by = serializers.CharField(help_text="Namespace of the model name ('library').")


# One object, though `list` is the action's name (drf-spectacular would wrap it in an array).
@extend_schema_serializer(many=False)
class OpenAIModelListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = OpenAIModelSerializer(many=True)


# --- chat -----------------------------------------------------------------------


class OpenAIMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "developer", "user", "assistant", "tool"])
    content = AnyJSONField(
        required=False,
        allow_null=True,
        help_text="A string, or a list of parts ({type: text|image_url, ...}).",
    )
    name = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    tool_calls = serializers.ListField(
        child=serializers.DictField(), required=False, allow_null=True
    )
    tool_call_id = serializers.CharField(required=False, allow_blank=True, allow_null=True)


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
    response_format = serializers.DictField(required=False, allow_null=True)
    tools = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)
    tool_choice = AnyJSONField(required=False, allow_null=True)
    reasoning_effort = serializers.CharField(required=False, allow_null=True)
    # Accepted so that they can be refused by name when set (see translation).
    n = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    logit_bias = serializers.DictField(required=False, allow_null=True)
    logprobs = serializers.BooleanField(required=False, allow_null=True)
    top_logprobs = serializers.IntegerField(required=False, allow_null=True)
    modalities = serializers.ListField(
        child=serializers.CharField(), required=False, allow_null=True
    )
    audio = AnyJSONField(required=False, allow_null=True)

    def validate_messages(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(value) > settings.MAX_CHAT_MESSAGES:
            raise serializers.ValidationError(
                f"At most {settings.MAX_CHAT_MESSAGES} messages (MAX_CHAT_MESSAGES)."
            )
        return value


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
    logprobs = serializers.JSONField(allow_null=True)
    finish_reason = serializers.ChoiceField(choices=["stop", "length", "tool_calls"])


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


class CompletionInputSerializer(StrictJSONMixin, serializers.Serializer):
    """`POST /openai/v1/completions` body."""

    model = ModelNameField()
    prompt = AnyJSONField(help_text="A string (or a list holding one string).")
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
    n = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    best_of = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    echo = serializers.BooleanField(required=False, allow_null=True)
    logit_bias = serializers.DictField(required=False, allow_null=True)
    logprobs = serializers.IntegerField(required=False, allow_null=True)


class CompletionChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    text = serializers.CharField()
    logprobs = serializers.JSONField(allow_null=True)
    finish_reason = serializers.ChoiceField(choices=["stop", "length"])


class CompletionSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="text_completion")
    created = serializers.IntegerField()
    model = serializers.CharField()
    system_fingerprint = serializers.CharField(allow_null=True)
    choices = CompletionChoiceSerializer(many=True)
    usage = OpenAIUsageSerializer()


# --- embeddings -----------------------------------------------------------------


class OpenAIEmbeddingInputSerializer(StrictJSONMixin, serializers.Serializer):
    """`POST /openai/v1/embeddings` body."""

    model = ModelNameField()
    input = AnyJSONField(help_text="A string or a list of strings (token arrays are refused).")
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


class EmbeddingListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = EmbeddingItemSerializer(many=True)
    model = serializers.CharField()
    usage = EmbeddingUsageSerializer()
