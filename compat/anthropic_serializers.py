"""Request and response shapes of the Anthropic Messages API (`/anthropic/v1/`).

Input serializers check types and ranges (a failure is a `400
invalid_request_error` naming the field, as Anthropic answers it); whether the
backend can honour a valid value is decided by `compat.anthropic_translate`.
Output serializers document the answers.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from compat.openai_serializers import AnyJSONField
from gateway.validation import ModelNameField, StrictJSONMixin


class AnthropicMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["user", "assistant"])
    content = AnyJSONField(
        help_text=(
            "A string, or a list of blocks: text, image (base64 source), tool_use "
            "(assistant), tool_result (user)."
        )
    )


class AnthropicToolSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField(required=False, allow_blank=True)
    input_schema = serializers.DictField(help_text="A JSON Schema of type object.")
    type = serializers.CharField(required=False, help_text="`custom` or absent.")


class CountTokensInputSerializer(StrictJSONMixin, serializers.Serializer):
    """`POST /anthropic/v1/messages/count_tokens` body."""

    model = ModelNameField()
    messages = AnthropicMessageSerializer(many=True, allow_empty=False)
    system = AnyJSONField(
        required=False, allow_null=True, help_text="A string or a list of text blocks."
    )
    tools = AnthropicToolSerializer(many=True, required=False)
    tool_choice = serializers.DictField(required=False, help_text="{type: auto|any|tool|none}")
    thinking = serializers.DictField(required=False, help_text="{type: enabled|disabled}")

    def validate_messages(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(value) > settings.MAX_CHAT_MESSAGES:
            raise serializers.ValidationError(
                f"At most {settings.MAX_CHAT_MESSAGES} messages (MAX_CHAT_MESSAGES)."
            )
        return value


class MessagesInputSerializer(CountTokensInputSerializer):
    """`POST /anthropic/v1/messages` body (Anthropic's field names)."""

    max_tokens = serializers.IntegerField(min_value=1)
    stop_sequences = serializers.ListField(
        child=serializers.CharField(trim_whitespace=False), required=False
    )
    temperature = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    top_p = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    top_k = serializers.IntegerField(min_value=0, required=False)
    stream = serializers.BooleanField(required=False, default=False)
    metadata = serializers.DictField(required=False, help_text="Accepted and ignored.")
    output_config = serializers.DictField(
        required=False, help_text="`format: {type: json_schema, schema}` constrains the answer."
    )


class AnthropicUsageSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cache_creation_input_tokens = serializers.IntegerField()
    cache_read_input_tokens = serializers.IntegerField()


class AnthropicContentBlockSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["text", "tool_use", "thinking"])
    text = serializers.CharField(required=False, allow_blank=True)
    id = serializers.CharField(required=False, help_text="tool_use: the call's id.")
    name = serializers.CharField(required=False)
    input = serializers.DictField(required=False)
    thinking = serializers.CharField(required=False, allow_blank=True)
    signature = serializers.CharField(required=False, allow_blank=True)


class AnthropicMessageOutputSerializer(serializers.Serializer):
    """A `message` object; with `stream: true`, Anthropic's named SSE events instead."""

    id = serializers.CharField()
    type = serializers.CharField(default="message")
    role = serializers.CharField(default="assistant")
    model = serializers.CharField()
    content = AnthropicContentBlockSerializer(many=True)
    stop_reason = serializers.ChoiceField(choices=["end_turn", "max_tokens", "tool_use"])
    stop_sequence = serializers.CharField(allow_null=True)
    usage = AnthropicUsageSerializer()


class AnthropicTokenCountSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField()


class AnthropicErrorDetailSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="`invalid_request_error`, `authentication_error`, ...")
    message = serializers.CharField()
    code = serializers.CharField(help_text="The gateway's precise error code.")
    param = serializers.CharField(allow_null=True)


class AnthropicErrorSerializer(serializers.Serializer):
    """Anthropic's error shape (what its SDK reads)."""

    type = serializers.CharField(default="error")
    error = AnthropicErrorDetailSerializer()


class AnthropicStreamEventSerializer(serializers.Serializer):
    """One named SSE event: `event: <type>` then `data: <json>` with the same `type`."""

    event = serializers.ChoiceField(
        choices=[
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
            "error",
        ]
    )
    data = serializers.CharField(help_text="The event's JSON object.")
