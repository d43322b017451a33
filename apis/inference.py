"""The inference service: the one entry point viewsets, consumers and the
OpenAI/Ollama adapters call. None of them builds a backend client.

Functions are keyword-only, typed, and raise only `apis.errors` errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from apis.backends import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    EmbedResult,
    InferenceBackend,
    ModelInfo,
    normalize_model_name,
)
from apis.backends.ollama import OllamaBackend
from apis.errors import ModelNotFoundError


@cache
def backend_get() -> InferenceBackend:
    """The configured backend (built once per process from settings)."""
    return OllamaBackend(
        host=settings.OLLAMA_HOST,
        connect_timeout=settings.OLLAMA_CONNECT_TIMEOUT,
        read_timeout=settings.OLLAMA_READ_TIMEOUT,
        busy_retry_after=settings.OLLAMA_BUSY_RETRY_AFTER,
    )


@receiver(setting_changed)
def _backend_reset(*, setting: str, **kwargs: object) -> None:
    if setting.startswith("OLLAMA_"):
        backend_get.cache_clear()


async def models_list() -> list[ModelInfo]:
    """Every model the backend has, newest first."""
    return await backend_get().list_models()


async def model_get(*, model_id: str) -> ModelInfo:
    """One model by id (`llama3.2` matches `llama3.2:latest`, any case).

    Raises `ModelNotFoundError` when the backend has no such model.
    """
    wanted = normalize_model_name(model_id)
    for model in await models_list():
        if normalize_model_name(model.id) == wanted:
            return model
    raise ModelNotFoundError(model_id)


async def chat_complete(*, request: ChatRequest) -> ChatResult:
    """A whole chat answer with the backend's token counts."""
    return await backend_get().chat(request)


def chat_stream(*, request: ChatRequest) -> AsyncIterator[ChatChunk]:
    """Chunks as the backend produces them; the last has `done=True`.

    Errors before the first chunk (unknown model, busy, down) are raised by
    the first `__anext__`, so callers can still answer with a status code.
    Closing the iterator (`aclose`) closes the backend request.
    """
    return backend_get().chat_stream(request)


async def embeddings_create(
    *, model: str, inputs: list[str], dimensions: int | None = None
) -> EmbedResult:
    """One vector per input, in order, from ONE backend call."""
    return await backend_get().embed(model=model, inputs=inputs, dimensions=dimensions)


async def backend_version() -> str:
    """The backend's version string; raises if it is unreachable."""
    return await backend_get().version()
