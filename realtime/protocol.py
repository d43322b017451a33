"""The WebSocket chat protocol: frame validation and frame building.

Kept apart from the consumer so the consumer only routes frames. Every error
frame carries the same content as the REST envelope (`gateway.errors.error_body`)
flattened into `{"type": "error", "message", "code", ...}`.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework import serializers

from gateway.errors import (
    APIError,
    BadRequestError,
    RequestTooLargeError,
    error_body,
    validation_error,
)
from gateway.validation import json_body_parse

# The subprotocol the server accepts. A browser offers it together with
# `bearer.<key>`; the server answers with this one only, so the key is never
# echoed back.
SUBPROTOCOL = "localai.v1"
BEARER_SUBPROTOCOL_PREFIX = "bearer."

# Close codes (4000-4999 are for applications; these mirror HTTP statuses).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_IDLE = 4408
CLOSE_RATE_LIMITED = 4429

CLIENT_TYPES = ("chat", "cancel", "clear", "ping", "history")


def offered_subprotocols(scope: dict[str, Any]) -> list[str]:
    """The subprotocols the client offered, one per item.

    Some servers pass the raw `Sec-WebSocket-Protocol` header values
    (`"localai.v1, bearer.x"`) instead of splitting them.
    """
    offered: list[str] = []
    for value in scope.get("subprotocols") or []:
        offered.extend(part.strip() for part in value.split(",") if part.strip())
    return offered


class StrictCharField(serializers.CharField):
    """A string, and only a string (DRF's CharField turns 42 into "42")."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ChatFrameSerializer(serializers.Serializer):
    """`{"type": "chat", "message": "...", "model": "...", ...}`."""

    message = StrictCharField(trim_whitespace=False)
    model = StrictCharField(required=False, max_length=200)
    temperature = serializers.FloatField(required=False, min_value=0.0, max_value=2.0)
    max_tokens = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=32768
    )

    def validate_message(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.", code="blank")
        return value

    def validate_model(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.", code="blank")
        return value.strip()


class GenerationInProgressError(APIError):
    """A second `chat` while one is still being answered."""

    status, type, code = 409, "invalid_request_error", "generation_in_progress"
    default_message = (
        "A reply is still being generated on this connection. Wait for assistant_end, "
        'or send {"type": "cancel"} first.'
    )


class NothingToCancelError(APIError):
    status, type, code = 409, "invalid_request_error", "nothing_to_cancel"
    default_message = "No reply is being generated, so there is nothing to cancel."


class IdleTimeoutError(APIError):
    status, type, code = 408, "invalid_request_error", "idle_timeout"
    default_message = "Closing the connection: no message for a while."


def frame_parse(text: str | None, raw_bytes: bytes | None) -> dict[str, Any]:
    """The client's frame as a dict with a known `type`; raises `APIError`."""
    if text is None:
        raise BadRequestError(
            "Binary frames are not supported; send JSON as a text frame.", param="frame"
        )
    limit = settings.WS_MAX_MESSAGE_BYTES
    if len(text.encode()) > limit:
        raise RequestTooLargeError(
            f"Message too large: the limit is {limit} bytes (WS_MAX_MESSAGE_BYTES)."
        )
    try:
        data = json_body_parse(text)
    except ValueError as exc:
        raise BadRequestError(f"Malformed JSON: {exc}.", param="frame") from exc
    if not isinstance(data, dict):
        raise BadRequestError("A frame must be a JSON object with a 'type'.", param="frame")
    frame_type = data.get("type")
    if frame_type not in CLIENT_TYPES:
        shown = json.dumps(frame_type) if frame_type is not None else "missing"
        raise BadRequestError(
            f"Unknown message type ({shown}); expected one of: {', '.join(CLIENT_TYPES)}.",
            code="unknown_type",
            param="type",
        )
    return data


def chat_frame_validate(data: dict[str, Any]) -> dict[str, Any]:
    """The validated fields of a `chat` frame; raises a 422-style error."""
    serializer = ChatFrameSerializer(data=data)
    if not serializer.is_valid():
        raise validation_error(serializer.errors)
    return dict(serializer.validated_data)


def error_frame(exc: APIError) -> dict[str, Any]:
    """The `error` event for an API error: the REST envelope's content, flattened."""
    body = error_body(exc)["error"]
    frame: dict[str, Any] = {
        "type": "error",
        "message": body["message"],
        "code": body["code"],
        "error_type": body["type"],
        "status": exc.status,
        "param": body["param"],
        "timestamp": body["timestamp"],
    }
    if "details" in body:
        frame["details"] = body["details"]
    if "request_id" in body:
        frame["request_id"] = body["request_id"]
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        frame["retry_after"] = retry_after
    return frame


def usage_payload(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
