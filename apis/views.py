"""The native REST API (`/v1/`): thin async viewsets over `gateway.service`.

Each action validates its input serializer, calls the service, and renders
an output serializer. Streaming answers are async generators (under ASGI a
sync iterator would be buffered whole before the first byte).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from apis import docs
from apis.serializers import (
    ChatInputSerializer,
    EmbeddingInputSerializer,
    ModelSerializer,
)
from gateway import service
from gateway.backends import ChatChunk, ChatRequest, GenerationParams
from gateway.errors import APIError, error_body
from gateway.relay import BaseEncoder, relay
from gateway.scheduler import Queued
from gateway.streaming import (
    iso_utc,
    json_object_head,
    json_string,
    sse_event,
    sse_queued,
    sse_response,
    stream_primed,
)
from gateway.viewsets import ViewSet
from keys.authentication import model_authorize, models_visible


class ModelViewSet(ViewSet):
    """`GET /v1/models`, `GET /v1/models/<model_id>`."""

    lookup_field = "model_id"
    # Model ids carry ':', '.', '/' and '-' (hf.co/org/name:Q4_K_M).
    lookup_value_regex = r"[^\s?#]+"
    endpoint_group = "models"

    @docs.models_list
    async def list(self, request: Request) -> Response:
        models = models_visible(request, await service.models_list())
        return Response(ModelSerializer(models, many=True).data)

    @docs.models_retrieve
    async def retrieve(self, request: Request, model_id: str) -> Response:
        model_authorize(request, endpoint_group=self.endpoint_group, model=model_id)
        model = await service.model_get(model_id=model_id)
        return Response(ModelSerializer(model).data)


def chat_request_from(data: dict[str, Any]) -> ChatRequest:
    """The backend request for a validated native chat body."""
    return ChatRequest(
        model=data["model"],
        messages=[{"role": m["role"], "content": m["content"]} for m in data["messages"]],
        params=GenerationParams(temperature=data["temperature"], max_tokens=data.get("max_tokens")),
    )


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class ChatCompletionViewSet(ViewSet):
    """`POST /v1/chat/completions`, whole or streamed."""

    endpoint_group = "chat"

    @docs.chat_create
    async def create(self, request: Request) -> Any:
        serializer = ChatInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        chat = chat_request_from(serializer.validated_data)
        chat.model = chat.model or await service.default_model(kind="chat")
        meter = model_authorize(request, endpoint_group=self.endpoint_group, model=chat.model)
        completion_id = str(uuid.uuid4())
        created = datetime.now(UTC)

        if serializer.validated_data["stream"]:
            chunks = await stream_primed(
                service.chat_stream(request=chat, meter=meter, caller=request.auth, notices=True)
            )
            encoder = NativeChatEncoder(
                completion_id=completion_id, created=created, model=chat.model
            )
            return sse_response(relay(chunks, encoder, meter))

        result = await service.chat_complete(request=chat, meter=meter, caller=request.auth)
        # The shape of ChatOutputSerializer (which documents it), built as a
        # dict: a serializer deep-copies its fields for every answer.
        return Response(
            {
                "id": completion_id,
                "model": chat.model,
                "created": iso_utc(created),
                "message": {"role": "assistant", "content": result.content},
                "finish_reason": result.done_reason,
                "usage": _usage(result.prompt_tokens, result.completion_tokens),
            }
        )


class NativeChatEncoder(BaseEncoder[ChatChunk, bytes]):
    """SSE events: one per backend chunk, a final `done` event, `[DONE]`.

    A backend failure after the stream began ends it with an error event and
    no `[DONE]` (the relay's rule), so clients can tell a failure from a
    finished answer.
    """

    __slots__ = ("created", "id", "model", "token_prefix")

    def __init__(self, *, completion_id: str, created: datetime, model: str) -> None:
        self.id, self.model = completion_id, model
        self.created = iso_utc(created)  # the same form as the whole answer's
        head = json_object_head({"id": completion_id, "model": model, "created": self.created})
        # Every event but the last differs only in its text: its bytes are this
        # prefix, the text as a JSON string, and a constant end.
        self.token_prefix = f'data: {head},"message":{{"role":"assistant","content":'

    def piece(self, chunk: ChatChunk) -> bytes:
        return f'{self.token_prefix}{json_string(chunk.content)}}},"done":false}}\n\n'.encode()

    def closing(self, chunk: ChatChunk) -> tuple[bytes]:
        event: dict[str, Any] = {
            "id": self.id,
            "model": self.model,
            "created": self.created,
            "message": {"role": "assistant", "content": chunk.content},
            "done": True,
            "finish_reason": chunk.done_reason,
            "usage": _usage(chunk.prompt_tokens, chunk.completion_tokens),
        }
        return (sse_event(event),)

    def failure(self, error: APIError) -> bytes:
        return sse_event(error_body(error))

    def success(self) -> bytes:
        return sse_event("[DONE]")

    def queued(self, notice: Queued) -> bytes:
        return sse_queued(notice)


class EmbeddingViewSet(ViewSet):
    """`POST /v1/embeddings`: every input in ONE backend call."""

    endpoint_group = "embeddings"

    @docs.embeddings_create
    async def create(self, request: Request) -> Response:
        serializer = EmbeddingInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model, inputs = serializer.validated_data["model"], serializer.validated_data["input"]
        model = model or await service.default_model(kind="embedding")
        meter = model_authorize(request, endpoint_group=self.endpoint_group, model=model)
        result = await service.embeddings_create(
            model=model, inputs=inputs, meter=meter, caller=request.auth
        )
        # Shaped as EmbeddingOutputSerializer; built directly because running
        # thousands of floats through FloatField costs more than the backend call.
        return Response(
            {
                "model": model,
                "embeddings": result.embeddings,
                "usage": {
                    "prompt_tokens": result.prompt_tokens,
                    "total_tokens": result.prompt_tokens,
                },
            }
        )
