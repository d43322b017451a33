"""The Ollama-compatible API (`/ollama/...`): Ollama's own routes behind keys.

So `ollama.Client(host=".../ollama", headers={"Authorization": "Bearer ..."})`
and tools configured with an Ollama URL work unchanged. Views are thin: they
validate, translate (`compat.ollama_translate`) and call `gateway.service`.

Errors on this surface are Ollama's: `{"error": "<message>"}` with the real
status (and the gateway's `Retry-After` / `WWW-Authenticate` headers), so
ollama-python's `ResponseError` carries a readable message and the status.
That is the one deliberate exception to the gateway-wide envelope.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from operator import attrgetter
from typing import Any

from adrf.views import APIView
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from rest_framework import exceptions as drf_exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from compat import ollama_docs as docs
from compat import ollama_translate as translate
from compat.ollama_serializers import (
    OllamaChatSerializer,
    OllamaCopySerializer,
    OllamaCreateSerializer,
    OllamaEmbeddingsSerializer,
    OllamaEmbedSerializer,
    OllamaGenerateSerializer,
    OllamaModelOperationSerializer,
    OllamaShowSerializer,
)
from gateway import service
from gateway.backends import ProgressUpdate
from gateway.errors import BadRequestError, ModelNotFoundError, as_api_error
from gateway.metering import meter_for
from gateway.relay import relay
from gateway.streaming import stream_primed, stream_response
from gateway.validation import json_body_parse
from keys.authentication import model_authorize, models_visible
from keys.models import OLLAMA_ADMIN_GROUP

NDJSON = "application/x-ndjson"


def ollama_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Ollama's error shape: `{"error": "<message>"}` with the real status.

    Bad input is a 400 (as Ollama answers it), not the gateway's 422.
    """
    error = as_api_error(exc)
    request = context.get("request")
    if request is not None:
        # The usage record cannot read a code from a string `error`.
        meter_for(request).error_code = error.code
    headers = dict(error.headers)
    if isinstance(exc, drf_exceptions.APIException) and getattr(exc, "auth_header", None):
        headers.setdefault("WWW-Authenticate", exc.auth_header)
    status = 400 if error.status == 422 else error.status
    return Response({"error": error.message}, status=status, headers=headers)


class OllamaView(APIView):
    """Base of the `/ollama/api/...` views: Ollama's error shape, lenient body."""

    endpoint_group = "models"

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response]:
        return ollama_exception_handler

    def body(self, request: Request) -> dict[str, Any]:
        """The JSON body whatever its Content-Type says, as Ollama reads it.

        `curl -d '{...}'` (the example in Ollama's docs) sends a form content
        type; Ollama decodes the body as JSON anyway, and so does this.
        """
        raw = request.body  # DRF's Request reads through to Django's
        if not raw.strip():
            raise BadRequestError("missing request body")
        try:
            data = json_body_parse(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequestError(f"invalid JSON body: {exc}") from None
        if not isinstance(data, dict):
            raise BadRequestError("the request body must be a JSON object")
        return data


def _ndjson(lines: AsyncIterator[bytes]) -> StreamingHttpResponse:
    return stream_response(lines, NDJSON)


def _model_required(model: str, *, status: int = 400) -> None:
    """Ollama's answer to a missing model: 400 on chat/show, 404 on generate/embed."""
    if model:
        return
    if status == 404:
        raise ModelNotFoundError("", message="model '' not found")
    raise BadRequestError("model is required", param="model")


# --- GET /ollama/ ---------------------------------------------------------------


# Exempt from CSRF so that any other method gets its 405 (with Allow), not a CSRF page.
@csrf_exempt
@require_http_methods(["GET", "HEAD"])
def ollama_root(request: HttpRequest) -> HttpResponse:
    """`GET /ollama/`: "Ollama is running", the health check Ollama clients use.

    No key needed, like the gateway's own probes: it says nothing about models.
    """
    return HttpResponse("Ollama is running", content_type="text/plain; charset=utf-8")


@csrf_exempt
def ollama_not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Unknown `/ollama/...` routes: 404 with Ollama's text, as a string `error`."""
    return JsonResponse({"error": "404 page not found"}, status=404)


# --- inference ------------------------------------------------------------------


class OllamaChatView(OllamaView):
    """`POST /ollama/api/chat`."""

    endpoint_group = "chat"

    @docs.chat
    async def post(self, request: Request) -> Any:
        serializer = OllamaChatSerializer(data=self.body(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        _model_required(data["model"])
        chat = translate.chat_request_from(data)
        meter = model_authorize(request, endpoint_group=self.endpoint_group, model=chat.model)
        if data.get("stream") is False:
            result = await service.chat_complete(request=chat, meter=meter, caller=request.auth)
            return Response(translate.chat_body(result, model=chat.model))
        chunks = await stream_primed(
            service.chat_stream(request=chat, meter=meter, caller=request.auth)
        )
        return _ndjson(relay(chunks, translate.ChatLinesEncoder(model=chat.model), meter))


class OllamaGenerateView(OllamaView):
    """`POST /ollama/api/generate`."""

    endpoint_group = "chat"

    @docs.generate
    async def post(self, request: Request) -> Any:
        serializer = OllamaGenerateSerializer(data=self.body(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        _model_required(data["model"], status=404)
        generate = translate.generate_request_from(data)
        meter = model_authorize(request, endpoint_group=self.endpoint_group, model=generate.model)
        if data.get("stream") is False:
            result = await service.generate_complete(
                request=generate, meter=meter, caller=request.auth
            )
            return Response(translate.generate_body(result, model=generate.model))
        chunks = await stream_primed(
            service.generate_stream(request=generate, meter=meter, caller=request.auth)
        )
        encoder = translate.GenerateLinesEncoder(model=generate.model)
        return _ndjson(relay(chunks, encoder, meter))


class OllamaEmbedView(OllamaView):
    """`POST /ollama/api/embed`: every input in ONE backend call."""

    endpoint_group = "embeddings"

    @docs.embed
    async def post(self, request: Request) -> Response:
        serializer = OllamaEmbedSerializer(data=self.body(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = data["model"]
        _model_required(model, status=404)
        meter = model_authorize(request, endpoint_group=self.endpoint_group, model=model)
        result = await service.embeddings_create(
            model=model,
            inputs=data["input"],
            dimensions=data.get("dimensions"),
            truncate=data.get("truncate"),
            extra=data.get("options"),
            keep_alive=data.get("keep_alive"),
            meter=meter,
            caller=request.auth,
        )
        body: dict[str, Any] = {"model": model, "embeddings": result.embeddings}
        timings = result.timings
        metrics = {
            "total_duration": timings.total_ns,
            "load_duration": timings.load_ns,
            "prompt_eval_count": result.prompt_tokens,
        }
        body.update({key: value for key, value in metrics.items() if value})
        return Response(body)


class OllamaEmbeddingsView(OllamaView):
    """`POST /ollama/api/embeddings`: Ollama's legacy endpoint (one raw vector)."""

    endpoint_group = "embeddings"

    @docs.embeddings
    async def post(self, request: Request) -> Response:
        serializer = OllamaEmbeddingsSerializer(data=self.body(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = data["model"]
        _model_required(model)
        meter = model_authorize(request, endpoint_group=self.endpoint_group, model=model)
        prompt = data.get("prompt") or ""
        result = await service.embeddings_create(
            model=model,
            inputs=[prompt] if prompt else [],
            extra=data.get("options"),
            keep_alive=data.get("keep_alive"),
            normalize=False,
            meter=meter,
            caller=request.auth,
        )
        return Response({"embedding": result.embeddings[0] if result.embeddings else []})


# --- models ---------------------------------------------------------------------


class OllamaTagsView(OllamaView):
    """`GET /ollama/api/tags`: the models the backend has."""

    endpoint_group = "models"

    @docs.tags
    async def get(self, request: Request) -> Response:
        models = models_visible(request, await service.models_list())
        return Response({"models": [translate.tag_entry(model) for model in models]})


class OllamaShowView(OllamaView):
    """`POST /ollama/api/show`: one model's details."""

    endpoint_group = "models"

    @docs.show
    async def post(self, request: Request) -> Response:
        serializer = OllamaShowSerializer(data=self.body(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = data["model"] or data["name"]
        _model_required(model)
        model_authorize(request, endpoint_group=self.endpoint_group, model=model)
        description = await service.model_describe(
            model_id=model, verbose=bool(data.get("verbose"))
        )
        return Response(translate.show_body(description))


class OllamaPsView(OllamaView):
    """`GET /ollama/api/ps`: models loaded in memory."""

    endpoint_group = "models"

    @docs.ps
    async def get(self, request: Request) -> Response:
        running = models_visible(request, await service.models_running(), attrgetter("model.id"))
        return Response({"models": [translate.running_entry(entry) for entry in running]})


class OllamaVersionView(OllamaView):
    """`GET /ollama/api/version`: the backend's version (clients gate features on it)."""

    endpoint_group = "models"

    @docs.version
    async def get(self, request: Request) -> Response:
        return Response({"version": await service.backend_version()})


# --- model management (ollama_admin) --------------------------------------------


class OllamaAdminView(OllamaView):
    """Model management: refused unless the key lists `ollama_admin` explicitly."""

    endpoint_group = OLLAMA_ADMIN_GROUP

    async def progress(
        self, request: Request, updates: AsyncIterator[ProgressUpdate], *, stream: bool
    ) -> Any:
        """NDJSON progress, or (`stream: false`) only the last status, as Ollama answers."""
        meter = meter_for(request)
        primed = await stream_primed(updates)
        if stream:
            return _ndjson(relay(primed, translate.ProgressLinesEncoder(), meter, tokens=False))
        last = ProgressUpdate(status="success")
        async for update in primed:
            last = update
        return Response(translate.progress_line(last))


def target_backend(request: Request) -> str | None:
    """The backend a model operation targets: the `X-Backend` header (needed only
    when several backends can manage models); None lets the service choose."""
    return request.headers.get("X-Backend") or None


def _operation_model(data: dict[str, Any]) -> str:
    model = data["model"] or data["name"]
    _model_required(model)
    return model


class OllamaPullView(OllamaAdminView):
    """`POST /ollama/api/pull`."""

    @docs.pull
    async def post(self, request: Request) -> Any:
        serializer = OllamaModelOperationSerializer(data=self.body(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = _operation_model(data)
        meter_for(request).model = model
        updates = service.model_pull(
            model_id=model, insecure=bool(data.get("insecure")), backend=target_backend(request)
        )
        return await self.progress(request, updates, stream=data.get("stream") is not False)


class OllamaPushView(OllamaAdminView):
    """`POST /ollama/api/push`."""

    @docs.push
    async def post(self, request: Request) -> Any:
        serializer = OllamaModelOperationSerializer(data=self.body(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = _operation_model(data)
        meter_for(request).model = model
        updates = service.model_push(
            model_id=model, insecure=bool(data.get("insecure")), backend=target_backend(request)
        )
        return await self.progress(request, updates, stream=data.get("stream") is not False)


class OllamaCreateView(OllamaAdminView):
    """`POST /ollama/api/create`."""

    @docs.create
    async def post(self, request: Request) -> Any:
        body = self.body(request)
        serializer = OllamaCreateSerializer(data=body)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = _operation_model(data)
        meter_for(request).model = model
        spec = {key: body[key] for key in OllamaCreateSerializer.SPEC_FIELDS if key in body}
        updates = service.model_create(model_id=model, spec=spec, backend=target_backend(request))
        return await self.progress(request, updates, stream=data.get("stream") is not False)


class OllamaDeleteView(OllamaAdminView):
    """`DELETE /ollama/api/delete`."""

    @docs.delete
    async def delete(self, request: Request) -> HttpResponse:
        serializer = OllamaModelOperationSerializer(data=self.body(request))
        serializer.is_valid(raise_exception=True)
        model = _operation_model(serializer.validated_data)
        meter_for(request).model = model
        await service.model_delete(model_id=model, backend=target_backend(request))
        return HttpResponse(status=200)


class OllamaCopyView(OllamaAdminView):
    """`POST /ollama/api/copy`."""

    @docs.copy
    async def post(self, request: Request) -> HttpResponse:
        serializer = OllamaCopySerializer(data=self.body(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        meter_for(request).model = data["source"]
        await service.model_copy(
            source=data["source"],
            destination=data["destination"],
            backend=target_backend(request),
        )
        return HttpResponse(status=200)
