"""`POST /v1/chat/completions` (the native chat request, proxied as is) and `/healthz`."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import ollama
from adrf.viewsets import ViewSet
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path
from httpx_aiohttp import AiohttpTransport
from rest_framework.request import Request
from rest_framework.response import Response

_clients: dict[asyncio.AbstractEventLoop, ollama.AsyncClient] = {}


def _client() -> ollama.AsyncClient:
    # The gateway's client and transport, through their public constructors:
    # ollama's AsyncClient over httpx-aiohttp's connection pool.
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
        )
        client = _clients[loop] = ollama.AsyncClient(
            host=settings.OLLAMA_HOST, transport=AiohttpTransport(client=session)
        )
    return client


class ChatViewSet(ViewSet):
    async def create(self, request: Request) -> Response:
        body: dict[str, Any] = request.data
        options = {"num_predict": body["max_tokens"]} if "max_tokens" in body else None
        result = await _client().chat(
            model=body["model"], messages=body["messages"], options=options, stream=False
        )
        return Response(
            {
                "id": str(uuid.uuid4()),
                "model": body["model"],
                "created": datetime.now(UTC).isoformat(),
                "message": {"role": "assistant", "content": result.message.content or ""},
                "finish_reason": result.done_reason,
                "usage": {
                    "prompt_tokens": result.prompt_eval_count or 0,
                    "completion_tokens": result.eval_count or 0,
                },
            }
        )


async def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("v1/chat/completions", ChatViewSet.as_view({"post": "create"})),
    path("healthz", healthz),
]
