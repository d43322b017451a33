"""The inference service: the one entry point viewsets, consumers and the
OpenAI/Ollama adapters call. None of them builds a backend client.

Functions are keyword-only, typed, and raise only `gateway.errors` errors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from functools import cache
from typing import Any, TypeVar

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
from gateway.errors import APIError, BadRequestError, ModelNotFoundError
from gateway.metering import UsageMeter
from gateway.metrics import backend_error, backend_up_source, in_flight, queue_depth_source

T = TypeVar("T")


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
        _health.clear()


# --- metrics: in-flight generations and backend failures -------------------------


def backend_name(backend: InferenceBackend) -> str:
    """The name metrics give a backend (`ollama` unless it names itself)."""
    return str(getattr(backend, "name", "ollama"))


def _failed(name: str, exc: APIError) -> None:
    # The backend's own failures (5xx), not a client's unknown model.
    if exc.status >= 500:
        backend_error(backend=name, code=exc.code)


async def _counted(name: str, call: Awaitable[T]) -> T:
    with in_flight(name):
        try:
            return await call
        except APIError as exc:
            _failed(name, exc)
            raise


async def _counted_stream(name: str, chunks: AsyncIterator[T]) -> AsyncIterator[T]:
    """`chunks`, in flight until they end; same contract (errors, `aclose`) as `chunks`."""
    with in_flight(name):
        try:
            async for chunk in chunks:
                yield chunk
        except APIError as exc:
            _failed(name, exc)
            raise
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]


# Backend name -> (answered, when checked): the last health check of this process.
_health: dict[str, tuple[bool, float]] = {}
HEALTH_CHECK_TIMEOUT = 2.0
HEALTH_CHECK_MAX_AGE = 5.0


async def backends_health() -> dict[str, bool]:
    """Whether each backend answers (its version), checked at most every 5 s per process.

    `/metrics` and the admin dashboard ask before they read
    `localai_backend_up`, so a scrape sees a fresh answer.
    """
    backend = backend_get()
    name = backend_name(backend)
    known = _health.get(name)
    if known is None or time.monotonic() - known[1] > HEALTH_CHECK_MAX_AGE:
        try:
            await asyncio.wait_for(backend.version(), timeout=HEALTH_CHECK_TIMEOUT)
            up = True
        except Exception:
            up = False
        _health[name] = (up, time.monotonic())
    return {name: up for name, (up, _) in _health.items()}


backend_up_source(lambda: {name: float(up) for name, (up, _) in _health.items()})
# The scheduler will report its queues here; until it exists nothing waits.
queue_depth_source(lambda: {backend_name(backend_get()): 0.0})


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
    backend = backend_get()
    result = await _counted(backend_name(backend), backend.chat(request))
    if meter is not None:
        meter.charge(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens)
    return result


def chat_stream(*, request: ChatRequest) -> AsyncIterator[ChatChunk]:
    """Chunks as the backend produces them; the last has `done=True`.

    Errors before the first chunk (unknown model, busy, down) are raised by
    the first `__anext__`, so callers can still answer with a status code.
    Closing the iterator (`aclose`) closes the backend request.
    """
    backend = backend_get()
    return _counted_stream(backend_name(backend), backend.chat_stream(request))


def generate_stream(*, request: GenerateRequest) -> AsyncIterator[GenerateChunk]:
    """A raw prompt completion as it is produced; same contract as `chat_stream`."""
    backend = backend_get()
    return _counted_stream(backend_name(backend), backend.generate_stream(request))


async def generate_complete(
    *, request: GenerateRequest, meter: UsageMeter | None = None
) -> GenerateResult:
    """A whole raw prompt completion with the backend's token counts (charged to `meter`)."""
    backend = backend_get()
    result = await _counted(backend_name(backend), backend.generate(request))
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
    backend = backend_get()
    result = await _counted(
        backend_name(backend),
        backend.embed(
            model=model,
            inputs=inputs,
            dimensions=dimensions,
            truncate=truncate,
            extra=extra,
            keep_alive=keep_alive,
            normalize=normalize,
        ),
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
    await _model_manager().model_delete(model=model_id)


async def model_copy(*, source: str, destination: str) -> None:
    """Copy a model under a new name; `ModelNotFoundError` if `source` is unknown."""
    await _model_manager().model_copy(source=source, destination=destination)


async def backend_version() -> str:
    """The backend's version string; raises if it is unreachable."""
    return await backend_get().version()
