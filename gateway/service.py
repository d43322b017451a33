"""The inference service: the one entry point viewsets, consumers and the
OpenAI/Ollama adapters call. None of them builds a backend client.

Functions are keyword-only, typed, and raise only `gateway.errors` errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from gateway.backends import (
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
from gateway.backends.ollama import OllamaBackend
from gateway.errors import BadRequestError, ModelNotFoundError
from gateway.metering import UsageMeter


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


async def chat_complete(*, request: ChatRequest, meter: UsageMeter | None = None) -> ChatResult:
    """A whole chat answer with the backend's token counts (charged to `meter`)."""
    result = await backend_get().chat(request)
    if meter is not None:
        meter.charge(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens)
    return result


def chat_stream(*, request: ChatRequest) -> AsyncIterator[ChatChunk]:
    """Chunks as the backend produces them; the last has `done=True`.

    Errors before the first chunk (unknown model, busy, down) are raised by
    the first `__anext__`, so callers can still answer with a status code.
    Closing the iterator (`aclose`) closes the backend request.
    """
    return backend_get().chat_stream(request)


def generate_stream(*, request: GenerateRequest) -> AsyncIterator[GenerateChunk]:
    """A raw prompt completion as it is produced; same contract as `chat_stream`."""
    return backend_get().generate_stream(request)


async def generate_complete(
    *, request: GenerateRequest, meter: UsageMeter | None = None
) -> GenerateResult:
    """A whole raw prompt completion with the backend's token counts (charged to `meter`)."""
    result = await backend_get().generate(request)
    if meter is not None:
        meter.charge(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens)
    return result


async def embeddings_create(
    *,
    model: str,
    inputs: list[str],
    dimensions: int | None = None,
    truncate: bool | None = None,
    extra: dict[str, Any] | None = None,
    keep_alive: float | str | None = None,
    normalize: bool = True,
    meter: UsageMeter | None = None,
) -> EmbedResult:
    """One vector per input, in order, from ONE backend call (tokens charged to `meter`).

    `normalize=False` asks for the model's raw vectors (Ollama's legacy
    embeddings endpoint); the backend may then need one call per input.
    """
    result = await backend_get().embed(
        model=model,
        inputs=inputs,
        dimensions=dimensions,
        truncate=truncate,
        extra=extra,
        keep_alive=keep_alive,
        normalize=normalize,
    )
    if meter is not None:
        meter.charge(prompt_tokens=result.prompt_tokens)
    return result


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
    return _model_manager().model_pull(model=model_id, insecure=insecure)


def model_push(*, model_id: str, insecure: bool = False) -> AsyncIterator[ProgressUpdate]:
    """Upload a model to its registry; progress as it goes."""
    return _model_manager().model_push(model=model_id, insecure=insecure)


def model_create(*, model_id: str, spec: dict[str, Any]) -> AsyncIterator[ProgressUpdate]:
    """Build a model from `spec` (`from`, `files`, `system`, ...); progress as it goes."""
    return _model_manager().model_create(model=model_id, spec=spec)


async def model_delete(*, model_id: str) -> None:
    """Remove a model from the backend; `ModelNotFoundError` if unknown."""
    try:
        await _model_manager().model_delete(model=model_id)
    except ModelNotFoundError:
        raise _missing(model_id) from None


async def model_copy(*, source: str, destination: str) -> None:
    """Copy a model under a new name; `ModelNotFoundError` if `source` is unknown."""
    try:
        await _model_manager().model_copy(source=source, destination=destination)
    except ModelNotFoundError:
        raise _missing(source) from None


def _missing(model_id: str) -> ModelNotFoundError:
    # Not the default "pull it first": pulling a model to delete or copy it is no advice.
    return ModelNotFoundError(model_id, f"model '{model_id}' not found")


async def backend_version() -> str:
    """The backend's version string; raises if it is unreachable."""
    return await backend_get().version()
