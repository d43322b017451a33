"""The OpenAI-compatible API (`/openai/v1/`): thin async viewsets.

Each action validates its input serializer, translates to the service's
typed request (`compat.openai_translate`), calls `gateway.service`, and
answers in OpenAI's shapes. Errors are the gateway envelope, a superset of
OpenAI's error object, so the openai SDK maps statuses to its exceptions.
Keys, limits and usage records come from the global DRF settings, keyed off
`endpoint_group`; views fill `meter_for(request)` for the usage record.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from compat import openai_docs as docs
from compat import openai_translate as translate
from compat.openai_serializers import (
    ChatCompletionInputSerializer,
    CompletionInputSerializer,
    OpenAIEmbeddingInputSerializer,
)
from gateway import service
from gateway.relay import relay
from gateway.streaming import sse_response, stream_primed
from gateway.viewsets import ViewSet
from keys.authentication import model_authorize, models_visible


def _include_usage(data: dict[str, Any]) -> bool:
    return bool((data.get("stream_options") or {}).get("include_usage"))


class OpenAIModelViewSet(ViewSet):
    """`GET /openai/v1/models`, `GET /openai/v1/models/<model_id>`."""

    lookup_field = "model_id"
    # Model ids carry ':', '.', '/' and '-' (hf.co/org/name:Q4_K_M).
    lookup_value_regex = r"[^\s?#]+"
    endpoint_group = "models"

    @docs.models_list
    async def list(self, request: Request) -> Response:
        models = models_visible(request, await service.models_list())
        return Response(
            {"object": "list", "data": [translate.model_object(model) for model in models]}
        )

    @docs.models_retrieve
    async def retrieve(self, request: Request, model_id: str) -> Response:
        model_authorize(request, endpoint_group=self.endpoint_group, model=model_id)
        model = await service.model_get(model_id=model_id)
        return Response(translate.model_object(model, model_id=model_id))


class OpenAIChatCompletionViewSet(ViewSet):
    """`POST /openai/v1/chat/completions`, whole or streamed."""

    endpoint_group = "chat"

    @docs.chat_create
    async def create(self, request: Request) -> Any:
        serializer = ChatCompletionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        chat = translate.chat_request_from(data)
        n = translate.choices_wanted(data)
        meter = model_authorize(
            request, endpoint_group=self.endpoint_group, model=chat.model, choices=n
        )
        completion_id, created = translate.new_id("chatcmpl"), translate.unix_now()
        logprobs = translate.chat_logprobs_wanted(data)

        if data.get("stream"):
            chunks = await stream_primed(
                service.chat_stream(
                    request=chat, meter=meter, caller=request.auth, notices=True, n=n
                )
            )
            encoder = translate.ChatCompletionEncoder(
                completion_id=completion_id,
                created=created,
                model=chat.model,
                include_usage=_include_usage(data),
                choices=n,
                logprobs=logprobs,
            )
            return sse_response(relay(chunks, encoder, meter, choices=n))

        results = await service.chat_complete_choices(
            request=chat, n=n, meter=meter, caller=request.auth
        )
        return Response(
            translate.chat_completion(
                results,
                completion_id=completion_id,
                created=created,
                model=chat.model,
                logprobs=logprobs,
            )
        )


class OpenAICompletionViewSet(ViewSet):
    """`POST /openai/v1/completions` (legacy text completions), whole or streamed."""

    endpoint_group = "chat"

    @docs.completions_create
    async def create(self, request: Request) -> Any:
        serializer = CompletionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        generate = translate.completion_request_from(data)
        n = translate.choices_wanted(data)
        meter = model_authorize(
            request, endpoint_group=self.endpoint_group, model=generate.model, choices=n
        )
        completion_id, created = translate.new_id("cmpl"), translate.unix_now()
        logprobs = translate.completion_logprobs_wanted(data)

        if data.get("stream"):
            chunks = await stream_primed(
                service.generate_stream(
                    request=generate, meter=meter, caller=request.auth, notices=True, n=n
                )
            )
            encoder = translate.CompletionEncoder(
                completion_id=completion_id,
                created=created,
                model=generate.model,
                include_usage=_include_usage(data),
                choices=n,
                logprobs=logprobs,
            )
            return sse_response(relay(chunks, encoder, meter, choices=n))

        results = await service.generate_complete_choices(
            request=generate, n=n, meter=meter, caller=request.auth
        )
        return Response(
            translate.completion_object(
                results,
                completion_id=completion_id,
                created=created,
                model=generate.model,
                logprobs=logprobs,
            )
        )


class OpenAIEmbeddingViewSet(ViewSet):
    """`POST /openai/v1/embeddings`: every input in ONE backend call."""

    endpoint_group = "embeddings"

    @docs.embeddings_create
    async def create(self, request: Request) -> Response:
        serializer = OpenAIEmbeddingInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = data["model"]
        inputs = data["input"]
        meter = model_authorize(request, endpoint_group=self.endpoint_group, model=model)
        result = await service.embeddings_create(
            model=model,
            inputs=inputs,
            dimensions=data.get("dimensions"),
            meter=meter,
            caller=request.auth,
        )
        return Response(
            translate.embedding_list(
                result.embeddings,
                model=model,
                encoding_format=data.get("encoding_format") or "float",
                prompt_tokens=result.prompt_tokens,
            )
        )
