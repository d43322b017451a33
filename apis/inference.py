"""The inference service: the one entry point viewsets, consumers and the
OpenAI/Ollama adapters call. None of them builds a backend client.

Functions are keyword-only, typed, and raise only `apis.errors` errors.
Inference streams and calls end with `ServerShuttingDownError` when the
process's drain window is over (`apis.drain`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from apis.backends import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    EmbedResult,
    GenerateChunk,
    GenerateRequest,
    GenerateResult,
    InferenceBackend,
    ModelDescription,
    ModelInfo,
    ModelManager,
    ProgressUpdate,
    RunningModel,
    normalize_model_name,
)
from apis.backends.ollama import OllamaBackend
from apis.drain import call_drainable, stream_drainable
from apis.errors import BadRequestError, ModelNotFoundError


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
    return await call_drainable(backend_get().chat(request))


def chat_stream(*, request: ChatRequest) -> AsyncIterator[ChatChunk]:
    """Chunks as the backend produces them; the last has `done=True`.

    Errors before the first chunk (unknown model, busy, down) are raised by
    the first `__anext__`, so callers can still answer with a status code.
    Closing the iterator (`aclose`) closes the backend request.
    """
    return stream_drainable(backend_get().chat_stream(request))


def generate_stream(*, request: GenerateRequest) -> AsyncIterator[GenerateChunk]:
    """A raw prompt completion as it is produced; same contract as `chat_stream`."""
    return stream_drainable(backend_get().generate_stream(request))


async def generate_complete(*, request: GenerateRequest) -> GenerateResult:
    """A whole raw prompt completion with the backend's token counts."""
    return await call_drainable(backend_get().generate(request))


async def embeddings_create(
    *,
    model: str,
    inputs: list[str],
    dimensions: int | None = None,
    truncate: bool | None = None,
    options: dict[str, Any] | None = None,
    keep_alive: float | str | None = None,
    normalize: bool = True,
) -> EmbedResult:
    """One vector per input, in order, from ONE backend call.

    `normalize=False` asks for the model's raw vectors (Ollama's legacy
    embeddings endpoint); the backend may then need one call per input.
    """
    return await call_drainable(
        backend_get().embed(
            model=model,
            inputs=inputs,
            dimensions=dimensions,
            truncate=truncate,
            options=options,
            keep_alive=keep_alive,
            normalize=normalize,
        )
    )


async def models_running() -> list[RunningModel]:
    """Models loaded in the backend's memory now."""
    return await backend_get().running_models()


async def model_describe(*, model_id: str, verbose: bool = False) -> ModelDescription:
    """Everything the backend knows about one model; `ModelNotFoundError` if unknown."""
    return await backend_get().describe_model(model=model_id, verbose=verbose)


def _model_manager() -> ModelManager:
    backend = backend_get()
    if not isinstance(backend, ModelManager):
        raise BadRequestError("This inference backend cannot manage models.", code="not_supported")
    return backend


def model_pull(*, model_id: str, insecure: bool = False) -> AsyncIterator[ProgressUpdate]:
    """Fetch a model from its registry; progress as it goes."""
    return stream_drainable(_model_manager().model_pull(model=model_id, insecure=insecure))


def model_push(*, model_id: str, insecure: bool = False) -> AsyncIterator[ProgressUpdate]:
    """Upload a model to its registry; progress as it goes."""
    return stream_drainable(_model_manager().model_push(model=model_id, insecure=insecure))


def model_create(*, model_id: str, spec: dict[str, Any]) -> AsyncIterator[ProgressUpdate]:
    """Build a model from `spec` (`from`, `files`, `system`, ...); progress as it goes."""
    return stream_drainable(_model_manager().model_create(model=model_id, spec=spec))


async def model_delete(*, model_id: str) -> None:
    """Remove a model from the backend; `ModelNotFoundError` if unknown."""
    await _model_manager().model_delete(model=model_id)


async def model_copy(*, source: str, destination: str) -> None:
    """Copy a model under a new name; `ModelNotFoundError` if `source` is unknown."""
    await _model_manager().model_copy(source=source, destination=destination)


async def backend_version() -> str:
    """The backend's version string; raises if it is unreachable."""
    return await backend_get().version()
