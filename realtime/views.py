"""The browser chat page and the one JSON endpoint it needs besides the WebSocket."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from gateway import service
from gateway.errors import APIError, error_response
from keys import services as key_services
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


def _allowed_model_ids(*, owner: auth.ChatOwner, model_ids: list[str]) -> list[str]:
    allowed = []
    for model_id in model_ids:
        try:
            auth.chat_owner_authorize(owner=owner, model=model_id)
        except APIError:
            continue
        allowed.append(model_id)
    return allowed


@require_GET
async def chat_models(request: HttpRequest) -> JsonResponse:
    """`/chat/models`: model ids for the page's picker.

    Signed-in users are authenticated by their session (the REST `/v1/models`
    takes only keys); a pasted key works too, as `Authorization: Bearer <key>`,
    with the WebSocket's rules (a key restricted to some models sees those)
    and counted against the key's `models` rate limit.
    """
    header = request.headers.get("Authorization")
    raw_key = auth.bearer_token(header) if header is not None else None
    try:
        user = await request.auser()
        owner = await sync_to_async(auth.chat_owner_authenticate)(
            raw_key=raw_key, user=user, client_addr=request.META.get("REMOTE_ADDR")
        )
        if owner.api_key is not None:
            await sync_to_async(key_services.rate_limit_hit)(api_key=owner.api_key, group="models")
        # Only models that can chat: an embedding-only model would fail in the page.
        model_ids = [model.id for model in await service.chat_models_list()]
        if owner.api_key is not None:
            model_ids = await sync_to_async(_allowed_model_ids)(owner=owner, model_ids=model_ids)
    except APIError as exc:
        return error_response(exc)
    default = await service.default_model(kind="chat")
    return JsonResponse({"models": model_ids, "default": default})
