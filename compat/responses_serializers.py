"""Request and response shapes of OpenAI's Responses API (`/openai/v1/responses`).

Input serializers check types and ranges (a failure is a `422` naming the
field); whether the backend can honour a valid value is decided when the
request is translated (`compat.responses_translate`, a `400` naming `param`).
Output serializers document the answers.
"""

from __future__ import annotations

from rest_framework import serializers

from compat.openai_serializers import AnyJSONField, RefusedIntegerField
from gateway.validation import ModelNameField, StrictJSONMixin, refuse

LOGPROBS_REFUSED = (
    "Log probabilities are not served on the Responses API: use /openai/v1/chat/completions "
    "with logprobs: true."
)


class ResponseCreateInputSerializer(StrictJSONMixin, serializers.Serializer):
    """`POST /openai/v1/responses` body (OpenAI's field names)."""

    model = ModelNameField()
    input = AnyJSONField(
        help_text=(
            "A string, or a list of items: messages ({role, content}), function_call, "
            "function_call_output."
        )
    )
    instructions = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, trim_whitespace=False
    )
    previous_response_id = serializers.CharField(required=False, allow_null=True)
    store = serializers.BooleanField(required=False, default=True)
    stream = serializers.BooleanField(required=False, allow_null=True, default=False)
    tools = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)
    tool_choice = AnyJSONField(required=False, allow_null=True)
    text = serializers.DictField(required=False, allow_null=True)
    reasoning = serializers.DictField(required=False, allow_null=True)
    max_output_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    temperature = serializers.FloatField(
        min_value=0.0, max_value=2.0, required=False, allow_null=True
    )
    top_p = serializers.FloatField(min_value=0.0, max_value=1.0, required=False, allow_null=True)
    parallel_tool_calls = serializers.BooleanField(required=False, allow_null=True)
    metadata = serializers.DictField(required=False, allow_null=True)
    user = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    include = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        allow_null=True,
        help_text="Accepted and ignored, except `message.output_text.logprobs`: refused (400).",
    )
    top_logprobs = RefusedIntegerField(LOGPROBS_REFUSED)
    truncation = serializers.CharField(required=False, allow_null=True)
    stream_options = serializers.DictField(required=False, allow_null=True)

    def validate_include(self, value: list[str] | None) -> list[str] | None:
        if value and "message.output_text.logprobs" in value:
            refuse(LOGPROBS_REFUSED)
        return value


class ResponseUsageSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField()
    input_tokens_details = serializers.DictField()
    output_tokens = serializers.IntegerField()
    output_tokens_details = serializers.DictField()
    total_tokens = serializers.IntegerField()


class ResponseOutputItemSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.ChoiceField(choices=["message", "function_call", "reasoning"])
    status = serializers.CharField(required=False)
    role = serializers.CharField(required=False)
    content = serializers.ListField(child=serializers.DictField(), required=False)
    call_id = serializers.CharField(required=False, help_text="function_call: the call's id.")
    name = serializers.CharField(required=False)
    arguments = serializers.CharField(required=False, help_text="A JSON object, as text.")
    summary = serializers.ListField(child=serializers.DictField(), required=False)


class ResponseObjectSerializer(serializers.Serializer):
    """A `response`; with `stream: true`, the Responses SSE events instead."""

    id = serializers.CharField()
    object = serializers.CharField(default="response")
    created_at = serializers.IntegerField()
    status = serializers.CharField(help_text="completed, incomplete, in_progress or failed.")
    error = serializers.DictField(allow_null=True)
    incomplete_details = serializers.DictField(allow_null=True)
    instructions = serializers.CharField(allow_null=True)
    max_output_tokens = serializers.IntegerField(allow_null=True)
    model = serializers.CharField()
    output = ResponseOutputItemSerializer(many=True)
    parallel_tool_calls = serializers.BooleanField()
    previous_response_id = serializers.CharField(allow_null=True)
    store = serializers.BooleanField()
    temperature = serializers.FloatField(allow_null=True)
    text = serializers.DictField()
    tool_choice = serializers.JSONField()
    tools = serializers.ListField(child=serializers.DictField())
    top_p = serializers.FloatField(allow_null=True)
    usage = ResponseUsageSerializer(allow_null=True)
    metadata = serializers.DictField()


class ResponseDeletedSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="response.deleted")
    deleted = serializers.BooleanField()


class ResponseStreamEventSerializer(serializers.Serializer):
    """One named SSE event: `event: <type>` then `data: <json>` with the same `type`."""

    event = serializers.CharField(help_text="response.created, response.output_text.delta, ...")
    data = serializers.CharField(help_text="The event's JSON object.")
