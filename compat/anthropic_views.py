"""The Anthropic Messages API (`/anthropic/v1/`, mirrored at `/ollama/v1/` as Ollama serves it).

So `anthropic.Anthropic(base_url=".../anthropic", api_key=<gateway key>)`
and tools written for Claude work with local models. Views validate,
translate (`compat.anthropic_translate`) and call `gateway.service`; keys,
limits and usage come from the DRF settings like every other surface (the
key may be sent as `x-api-key`, as Anthropic's SDKs do, or as a Bearer token).

Errors are Anthropic's shape, `{"type": "error", "error": {"type", "message"}}`
(plus the gateway's `code` and `param`), with the real status and the
gateway's headers, so the SDK raises its own exception class for each status.
Field validation answers 400, as Anthropic does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework import exceptions as drf_exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from compat import anthropic_docs as docs
from compat import anthropic_translate as translate
from compat.anthropic_serializers import CountTokensInputSerializer, MessagesInputSerializer
from gateway import service
from gateway.backends import ChatRequest, GenerationParams
from gateway.errors import as_api_error
from gateway.metering import meter_for
from gateway.relay import relay
from gateway.streaming import sse_response, stream_primed
from gateway.viewsets import ViewSet
from keys.authentication import model_authorize


def anthropic_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Anthropic's error shape with the real status (a field error is a 400)."""
    error = as_api_error(exc)
    status = 400 if error.status == 422 else error.status
    request = context.get("request")
    if request is not None:
        meter_for(request).error_code = error.code
    headers = dict(error.headers)
    if isinstance(exc, drf_exceptions.APIException) and getattr(exc, "auth_header", None):
        headers.setdefault("WWW-Authenticate", exc.auth_header)
    return Response(translate.error_object(error, status), status=status, headers=headers)


async def _think_if_able(chat: ChatRequest) -> None:
    """Drop `thinking` for a model that cannot think, instead of failing.

    Tools written for Claude (coding agents) ask for thinking by default; a
    local model without the capability then answers without it (Ollama would
    refuse the request). A backend that lists no capabilities is asked as is.
    """
    if not chat.think:
        return
    capabilities = (await service.model_describe(model_id=chat.model)).model.capabilities
    if capabilities and "thinking" not in capabilities:
        chat.think = None


class AnthropicViewSet(ViewSet):
    endpoint_group = "chat"

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response]:
        return anthropic_exception_handler


class AnthropicMessageViewSet(AnthropicViewSet):
    """`POST /anthropic/v1/messages`, whole or streamed."""

    @docs.messages_create
    async def create(self, request: Request) -> Any:
        serializer = MessagesInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        chat = translate.chat_request_from(data)
        meter = model_authorize(request, endpoint_group=self.endpoint_group, model=chat.model)
        await _think_if_able(chat)
        message_id = translate.new_id("msg_")
        thinking = bool(chat.think)

        if data.get("stream"):
            chunks = await stream_primed(service.chat_stream(request=chat))
            encoder = translate.MessageStreamEncoder(
                message_id=message_id, model=chat.model, thinking=thinking
            )
            return sse_response(relay(chunks, encoder, meter))

        result = await service.chat_complete(request=chat, meter=meter)
        return Response(
            translate.message_object(
                result, message_id=message_id, model=chat.model, thinking=thinking
            )
        )


class AnthropicCountTokensViewSet(AnthropicViewSet):
    """`POST /anthropic/v1/messages/count_tokens`: the prompt's tokens, as the backend counts."""

    @docs.count_tokens
    async def create(self, request: Request) -> Response:
        serializer = CountTokensInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        chat = translate.chat_request_from({**data, "max_tokens": 1})
        meter = model_authorize(request, endpoint_group=self.endpoint_group, model=chat.model)
        await _think_if_able(chat)
        # Ollama has no tokenizer endpoint: it counts the prompt while
        # evaluating it, so one generated token is the cheapest way to ask.
        chat.params = GenerationParams(max_tokens=1)
        result = await service.chat_complete(request=chat, meter=meter)
        return Response({"input_tokens": result.prompt_tokens})
