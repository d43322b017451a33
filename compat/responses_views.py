"""OpenAI's Responses API (`/openai/v1/responses`, mirrored at `/ollama/v1/responses`).

Create (whole or streamed), retrieve and delete. With `store` (the default,
as OpenAI has it) an answer and the conversation that led to it are kept for
the caller, so `previous_response_id` continues it: that goes beyond Ollama's
own stateless `/v1/responses`. Views validate, translate
(`compat.responses_translate`), call `gateway.service` and the store
(`compat.responses_store`); keys, limits and usage come from the DRF settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from compat import responses_docs as docs
from compat import responses_translate as translate
from compat.responses_serializers import ResponseCreateInputSerializer
from compat.responses_store import (
    stored_response_create,
    stored_response_delete,
    stored_response_get,
)
from gateway import service
from gateway.relay import relay
from gateway.streaming import sse_response, stream_primed
from gateway.viewsets import ViewSet
from keys.authentication import model_authorize, request_caller
from keys.policy import Caller


async def _stored_when_complete(
    frames: AsyncIterator[bytes],
    encoder: translate.ResponseStreamEncoder,
    *,
    caller: Caller,
    model: str,
    messages: list[dict[str, Any]],
) -> AsyncIterator[bytes]:
    """The stream's frames; a complete answer is stored before its last events go out,
    so a client that reads `response.completed` can continue from it at once."""
    stored = False
    async for frame in frames:
        if encoder.final is not None and not stored:
            stored = True
            await stored_response_create(
                caller=caller,
                response_id=encoder.frame.id,
                model=model,
                messages=[*messages, translate.assistant_message(encoder.final["output"])],
                body=encoder.final,
            )
        yield frame


class ResponseViewSet(ViewSet):
    """`POST /openai/v1/responses`, `GET` and `DELETE /openai/v1/responses/<response_id>`."""

    endpoint_group = "chat"
    lookup_field = "response_id"
    lookup_value_regex = r"[A-Za-z0-9_-]+"

    @docs.responses_create
    async def create(self, request: Request) -> Any:
        serializer = ResponseCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        caller = request_caller(request)
        history: list[dict[str, Any]] = []
        if data.get("previous_response_id"):
            previous = await stored_response_get(
                caller=caller,
                response_id=data["previous_response_id"],
                param="previous_response_id",
            )
            history = previous.messages
        chat, turn = translate.chat_request_from(data, history)
        meter = model_authorize(request, endpoint_group=self.endpoint_group, model=chat.model)
        frame = translate.ResponseFrame(
            data=data, model=chat.model, response_id=translate.new_id("resp")
        )
        reasoning = bool(chat.think)
        conversation = [*history, *turn]

        if data.get("stream"):
            chunks = await stream_primed(service.chat_stream(request=chat))
            encoder = translate.ResponseStreamEncoder(frame=frame, reasoning=reasoning)
            frames = relay(chunks, encoder, meter)
            if data.get("store", True):
                frames = _stored_when_complete(
                    frames, encoder, caller=caller, model=chat.model, messages=conversation
                )
            return sse_response(frames)

        result = await service.chat_complete(request=chat, meter=meter)
        body = translate.response_object(result, frame, reasoning=reasoning)
        if data.get("store", True):
            await stored_response_create(
                caller=caller,
                response_id=frame.id,
                model=chat.model,
                messages=[*conversation, translate.assistant_message(body["output"])],
                body=body,
            )
        return Response(body)

    @docs.responses_retrieve
    async def retrieve(self, request: Request, response_id: str) -> Response:
        stored = await stored_response_get(caller=request_caller(request), response_id=response_id)
        return Response(stored.body)

    @docs.responses_delete
    async def destroy(self, request: Request, response_id: str) -> Response:
        await stored_response_delete(caller=request_caller(request), response_id=response_id)
        return Response({"id": response_id, "object": "response.deleted", "deleted": True})
