"""The native REST API (`/v1/`): thin async viewsets over `gateway.service`.

Each action validates its input serializer, calls the service, and renders
an output serializer. Streaming answers are async generators (under ASGI a
sync iterator would be buffered whole before the first byte).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
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
from gateway.metering import UsageMeter, meter_for
from gateway.streaming import (
    iso_utc,
    json_object_head,
    json_string,
    sse_event,
    sse_response,
    stream_primed,
)
from gateway.viewsets import ViewSet
from keys.services import api_key_allows_model, api_key_authorize


class ModelViewSet(ViewSet):
    """`GET /v1/models`, `GET /v1/models/<model_id>`."""

    lookup_field = "model_id"
    # Model ids carry ':', '.', '/' and '-' (hf.co/org/name:Q4_K_M).
    lookup_value_regex = r"[^\s?#]+"
    endpoint_group = "models"

    @docs.models_list
    async def list(self, request: Request) -> Response:
        models = await service.models_list()
        # A key limited to some models sees only those.
        models = [m for m in models if api_key_allows_model(api_key=request.auth, model=m.id)]
        return Response(ModelSerializer(models, many=True).data)

    @docs.models_retrieve
    async def retrieve(self, request: Request, model_id: str) -> Response:
        api_key_authorize(api_key=request.auth, endpoint_group=self.endpoint_group, model=model_id)
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
        api_key_authorize(
            api_key=request.auth, endpoint_group=self.endpoint_group, model=chat.model
        )
        meter = meter_for(request)
        meter.model = chat.model
        completion_id = str(uuid.uuid4())
        created = datetime.now(UTC)

        if serializer.validated_data["stream"]:
            chunks = await stream_primed(service.chat_stream(request=chat))
            return sse_response(
                _chat_events(
                    chunks,
                    completion_id=completion_id,
                    created=created,
                    model=chat.model,
                    meter=meter,
                )
            )

        result = await service.chat_complete(request=chat)
        meter.charge(
            model=chat.model,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
        )
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


async def _chat_events(
    chunks: AsyncIterator[ChatChunk],
    *,
    completion_id: str,
    created: datetime,
    model: str,
    meter: UsageMeter,
) -> AsyncIterator[bytes]:
    """SSE events: one per backend chunk, a final `done` event, `[DONE]`.

    A backend failure after the stream began ends it with an error event and
    no `[DONE]`, so clients can tell a failure from a finished answer.
    """
    created_text = iso_utc(created)  # the same form as the whole answer's
    head = json_object_head({"id": completion_id, "model": model, "created": created_text})
    # Every event but the last differs only in its text: its bytes are this
    # prefix, the text as a JSON string, and a constant end.
    token_prefix = f'data: {head},"message":{{"role":"assistant","content":'
    try:
        async for chunk in chunks:
            if not chunk.done:
                yield f'{token_prefix}{json_string(chunk.content)}}},"done":false}}\n\n'.encode()
                continue
            event: dict[str, Any] = {
                "id": completion_id,
                "model": model,
                "created": created_text,
                "message": {"role": "assistant", "content": chunk.content},
                "done": True,
                "finish_reason": chunk.done_reason,
                "usage": _usage(chunk.prompt_tokens, chunk.completion_tokens),
            }
            meter.charge(
                model=model,
                prompt_tokens=chunk.prompt_tokens,
                completion_tokens=chunk.completion_tokens,
            )
            yield sse_event(event)
    except APIError as exc:
        meter.error_code = exc.code
        yield sse_event(error_body(exc))
        return
    yield sse_event("[DONE]")


class EmbeddingViewSet(ViewSet):
    """`POST /v1/embeddings`: every input in ONE backend call."""

    endpoint_group = "embeddings"

    @docs.embeddings_create
    async def create(self, request: Request) -> Response:
        serializer = EmbeddingInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model, inputs = serializer.validated_data["model"], serializer.validated_data["input"]
        model = model or await service.default_model(kind="embedding")
        api_key_authorize(api_key=request.auth, endpoint_group=self.endpoint_group, model=model)
        meter = meter_for(request)
        meter.model = model
        result = await service.embeddings_create(model=model, inputs=inputs)
        meter.charge(model=model, prompt_tokens=result.prompt_tokens)
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
