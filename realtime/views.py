"""The browser chat page and the one JSON endpoint it needs besides the WebSocket."""

from __future__ import annotations

from operator import attrgetter

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from gateway import service
from gateway.errors import APIError, error_response
from keys import policy
from realtime import auth
from realtime.protocol import SUBPROTOCOL


@require_GET
def chat_page(request: HttpRequest) -> HttpResponse:
    """`/`: the chat page. Works signed in (session) or with a pasted API key."""
    return render(
        request,
        "realtime/chat.html",
        {"default_model": settings.DEFAULT_CHAT_MODEL, "subprotocol": SUBPROTOCOL},
    )


@require_GET
async def chat_models(request: HttpRequest) -> JsonResponse:
    """`/chat/models`: model ids for the page's picker.

    Signed-in users are authenticated by their session (the REST `/v1/models`
    takes only keys); a pasted key works too, as `Authorization: Bearer <key>`,
    with the WebSocket's rules (a key restricted to some models sees those)
    and counted against the key's `models` rate limit.
    """
    raw_key = policy.parse_bearer(request.headers.get("Authorization"))
    try:
        user = await request.auser()
        caller = await sync_to_async(auth.chat_caller_authenticate)(
            raw_key=raw_key, user=user, client_addr=request.META.get("REMOTE_ADDR")
        )
        await sync_to_async(policy.request_count)(caller=caller, group="models")
        # Only models that can chat: an embedding-only model would fail in the page.
        models = policy.models_visible(
            caller=caller, models=await service.chat_models_list(), model_id=attrgetter("id")
        )
        model_ids = [model.id for model in models]
    except APIError as exc:
        return error_response(exc)
    default = await service.default_model(kind="chat")
    return JsonResponse({"models": model_ids, "default": default})
