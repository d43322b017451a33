"""The inference service: the one entry point viewsets, consumers and the
OpenAI/Ollama adapters call. None of them builds a backend client.

Functions are keyword-only, typed, and raise only `gateway.errors` errors.
Inference streams and calls end with `ServerShuttingDownError` when the
process's drain window is over (`gateway.drain`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from functools import cache
from pathlib import Path
from typing import Any, Literal

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
from gateway.backends.embedded import EmbeddedBackend, EmbeddedModelSpec, model_name_from_file
from gateway.backends.ollama import OllamaBackend
from gateway.backends.pool import BackendHealth, BackendPool
from gateway.drain import call_drainable, stream_drainable
from gateway.errors import APIError, BadRequestError, ModelNotFoundError
from gateway.metering import UsageMeter
from gateway.metrics import backend_error, backend_up_source, in_flight, queue_depth_source
from gateway.scheduler import (
    Anonymous,
    Lease,
    LocalScheduler,
    Queued,
    RedisScheduler,
    SchedulerSettings,
    SchedulingCaller,
)

# Requests the gateway makes for itself (no caller): one share like anyone.
INTERNAL_CALLER = Anonymous()

ModelKind = Literal["chat", "embedding"]


def _embedded_models() -> list[EmbeddedModelSpec]:
    """The GGUF files the embedded backend serves, from settings (none when it is off)."""
    if not settings.EMBEDDED_BACKEND:
        return []
    chat_path, embedding_path = (
        settings.EMBEDDED_CHAT_MODEL_PATH,
        settings.EMBEDDED_EMBEDDING_MODEL_PATH,
    )
    configured = (
        ("chat", chat_path, settings.EMBEDDED_CHAT_MODEL_NAME),
        ("embedding", embedding_path, settings.EMBEDDED_EMBEDDING_MODEL_NAME),
    )
    return [
        EmbeddedModelSpec(
            name=normalize_model_name(name or model_name_from_file(path)),
            path=Path(path),
            kind=kind,  # type: ignore[arg-type]
        )
        for kind, path, name in configured
        if path
    ]


@cache
def backend_get() -> BackendPool:
    """The configured backends behind one pool (built once per process from settings).

    Ollama at OLLAMA_HOST, and the embedded engine when it is on: each request
    goes to the backend that lists its model (Ollama first when both do).
    """
    members: list[tuple[str, InferenceBackend]] = [
        (
            "ollama",
            OllamaBackend(
                host=settings.OLLAMA_HOST,
                connect_timeout=settings.OLLAMA_CONNECT_TIMEOUT,
                read_timeout=settings.OLLAMA_READ_TIMEOUT,
                busy_retry_after=settings.OLLAMA_BUSY_RETRY_AFTER,
                parallel=settings.OLLAMA_NUM_PARALLEL,
            ),
        )
    ]
    if embedded := _embedded_models():
        members.append(
            (
                "embedded",
                EmbeddedBackend(
                    models=embedded,
                    threads=settings.EMBEDDED_THREADS,
                    context_length=settings.EMBEDDED_CONTEXT_LENGTH,
                ),
            )
        )
    return BackendPool(members)


@cache
def scheduler_get() -> LocalScheduler | RedisScheduler | None:
    """The scheduler of the backends' slots: in Redis with REDIS_URL (every
    process shares it), else in this process; None when SCHEDULER_ENABLED is off."""
    if not settings.SCHEDULER_ENABLED:
        return None
    config = SchedulerSettings(
        queue_timeout=settings.SCHEDULER_QUEUE_TIMEOUT,
        max_queue=settings.SCHEDULER_MAX_QUEUE,
        notice_interval=settings.SCHEDULER_NOTICE_INTERVAL,
        lease_seconds=settings.SCHEDULER_LEASE_SECONDS,
    )
    if settings.REDIS_URL:
        return RedisScheduler(settings.REDIS_URL, config)
    return LocalScheduler(config)


@receiver(setting_changed)
def _backend_reset(*, setting: str, **kwargs: object) -> None:
    if setting.startswith(("OLLAMA_", "EMBEDDED_")):
        backend_get.cache_clear()
        _health.clear()
    if setting.startswith(("SCHEDULER_", "OLLAMA_NUM_PARALLEL", "REDIS_URL")):
        scheduler_get.cache_clear()


# --- metrics: calls in flight, backend failures, health and queues ----------------


def _member_name(member: InferenceBackend) -> str:
    return next((n for n, m in backend_get().members.items() if m is member), "unknown")


@contextlib.contextmanager
def _backend_call(member: InferenceBackend) -> Iterator[None]:
    """A generation call of `member`: in flight while it runs; its 5xx failures counted."""
    name = _member_name(member)
    with in_flight(name):
        try:
            yield
        except APIError as exc:
            if exc.status >= 500:  # the backend's failure, not a client's unknown model
                backend_error(backend=name, code=exc.code)
            raise


# Backend name -> answered at the last check; requests waiting per backend.
_health: dict[str, bool] = {}
_health_checked = 0.0
_waiting: dict[str, int] = {}
HEALTH_CHECK_MAX_AGE = 5.0


async def backends_status() -> dict[str, bool]:
    """Whether each backend answers (checked at most every 5 s per process), and
    the scheduler's queues, for `localai_backend_up` and `localai_queue_depth`.

    `/metrics` and the admin dashboard ask before they read them. Queues are
    the scheduler's: every process's with Redis, this process's without.
    """
    global _health_checked
    pool = backend_get()
    if not _health or time.monotonic() - _health_checked > HEALTH_CHECK_MAX_AGE:
        states = await pool.health()
        _health.clear()
        _health.update({state.name: state.problem is None for state in states})
        _health_checked = time.monotonic()
    scheduler = scheduler_get()
    waiting = dict.fromkeys(pool.members, 0)
    if scheduler is not None:
        stats = (
            await scheduler.stats_async()
            if isinstance(scheduler, RedisScheduler)
            else scheduler.stats()
        )
        for queue in stats:
            backend = queue.resource.split("/", 1)[0]
            waiting[backend] = waiting.get(backend, 0) + sum(queue.waiting.values())
    _waiting.clear()
    _waiting.update(waiting)
    return dict(_health)


backend_up_source(lambda: {name: float(up) for name, up in _health.items()})
queue_depth_source(lambda: {name: float(count) for name, count in _waiting.items()})


async def _acquire(
    *, model: str, caller: SchedulingCaller | None, meter: UsageMeter | None
) -> tuple[InferenceBackend, Lease | None]:
    """The backend that serves `model`, and a slot of it in fair order.

    Routing comes first, so an unknown model is a 404 and a backend that is
    down a 503 without waiting in any queue.
    """
    name, member = await backend_get().route(model)
    if meter is not None:
        meter.backend = name
    scheduler = scheduler_get()
    if scheduler is None:
        return member, None
    lease = await scheduler.acquire(
        resource=f"{name}/{normalize_model_name(model)}",
        slots=getattr(member, "parallel", 1),
        caller=caller or INTERNAL_CALLER,
    )
    if meter is not None:
        meter.queued_ms = round(lease.queued_seconds * 1000)
    return member, lease


async def _acquire_with_notices(
    *, model: str, caller: SchedulingCaller | None, meter: UsageMeter | None
) -> AsyncIterator[Queued | tuple[InferenceBackend, Lease | None]]:
    """`_acquire`, yielding `Queued` every SCHEDULER_NOTICE_INTERVAL while it waits."""
    waiting = asyncio.ensure_future(_acquire(model=model, caller=caller, meter=meter))
    handed = False
    try:
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=settings.SCHEDULER_NOTICE_INTERVAL)
            if done:
                result = waiting.result()
                handed = True
                yield result
                return
            scheduler = scheduler_get()
            position = 0
            if isinstance(scheduler, LocalScheduler) and caller is not None:
                name, _ = await backend_get().route(model)
                position = scheduler.position(f"{name}/{normalize_model_name(model)}", caller.id)
            yield Queued(position=position)
    finally:
        if not waiting.done():
            waiting.cancel()  # leaves the queue at once; the backend never sees it
            with contextlib.suppress(BaseException):
                await waiting
        elif not handed and not waiting.cancelled() and waiting.exception() is None:
            await _release(waiting.result()[1])  # granted just as the client left


async def _release(lease: Lease | None) -> None:
    if lease is not None:
        await asyncio.shield(lease.release())


@contextlib.asynccontextmanager
async def _served(
    *, model: str, caller: SchedulingCaller | None, meter: UsageMeter | None
) -> AsyncIterator[InferenceBackend]:
    """The backend serving `model`, holding one of its slots for the block."""
    member, lease = await _acquire(model=model, caller=caller, meter=meter)
    try:
        with _backend_call(member):
            yield member
    finally:
        await _release(lease)


async def default_model(*, kind: ModelKind) -> str:
    """The model for a request that names none.

    DEFAULT_CHAT_MODEL / DEFAULT_EMBEDDING_MODEL while a backend serves it;
    otherwise (no Ollama, or the model not pulled) the embedded model of that
    kind, when the embedded backend serves one.
    """
    configured = settings.DEFAULT_CHAT_MODEL if kind == "chat" else settings.DEFAULT_EMBEDDING_MODEL
    fallback = next((spec.name for spec in _embedded_models() if spec.kind == kind), None)
    if fallback is None:
        return configured
    served = await backend_get().served_models()
    if normalize_model_name(configured) in served or fallback not in served:
        return configured
    return fallback


async def chat_models_list() -> list[ModelInfo]:
    """The models that can chat (capability `completion`), newest first.

    Ollama's model list carries no capabilities: they come from one describe
    call per model, remembered per model and digest.
    """
    models = await models_list()
    capable = await asyncio.gather(*(_can_chat(model) for model in models))
    return [model for model, can in zip(models, capable, strict=True) if can]


_capabilities: dict[tuple[str, str], tuple[str, ...]] = {}


async def _can_chat(model: ModelInfo) -> bool:
    capabilities = model.capabilities or _capabilities.get((model.id, model.digest))
    if capabilities is None:
        try:
            description = await model_describe(model_id=model.id)
        except APIError:
            return True  # not known to be unable: offer it
        capabilities = description.model.capabilities
        if model.digest:
            _capabilities[(model.id, model.digest)] = capabilities
    # A backend that reports no capabilities at all says nothing against chat.
    return not capabilities or "completion" in capabilities


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


async def chat_complete(
    *,
    request: ChatRequest,
    meter: UsageMeter | None = None,
    caller: SchedulingCaller | None = None,
) -> ChatResult:
    """A whole chat answer with the backend's token counts (charged to `meter`).

    Waits for a slot of the backend in fair order between callers.
    """
    async with _served(model=request.model, caller=caller, meter=meter) as member:
        result = await call_drainable(member.chat(request))
    if meter is not None:
        meter.charge(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens)
    return result


def chat_stream(
    *,
    request: ChatRequest,
    meter: UsageMeter | None = None,
    caller: SchedulingCaller | None = None,
    notices: bool = False,
) -> AsyncIterator[ChatChunk | Queued]:
    """Chunks as the backend produces them; the last has `done=True`.

    Errors before the first chunk (unknown model, busy, down) are raised by
    the first `__anext__`, so callers can still answer with a status code.
    Closing the iterator (`aclose`) leaves the queue or closes the backend
    request, and gives the slot back. `notices=True`: while the stream waits
    for a slot it yields `Queued` now and then (the surface can say so).
    """
    return _scheduled_stream(
        request, lambda member: member.chat_stream(request), meter, caller, notices
    )


def generate_stream(
    *,
    request: GenerateRequest,
    meter: UsageMeter | None = None,
    caller: SchedulingCaller | None = None,
    notices: bool = False,
) -> AsyncIterator[GenerateChunk | Queued]:
    """A raw prompt completion as it is produced; same contract as `chat_stream`."""
    return _scheduled_stream(
        request, lambda member: member.generate_stream(request), meter, caller, notices
    )


async def _scheduled_stream(
    request: ChatRequest | GenerateRequest,
    open_stream: Any,
    meter: UsageMeter | None,
    caller: SchedulingCaller | None,
    notices: bool,
) -> AsyncIterator[Any]:
    if notices:
        acquired = None
        steps = _acquire_with_notices(model=request.model, caller=caller, meter=meter)
        async with contextlib.aclosing(steps):
            async for step in steps:
                if isinstance(step, Queued):
                    yield step
                else:
                    acquired = step
        assert acquired is not None
        member, lease = acquired
    else:
        member, lease = await _acquire(model=request.model, caller=caller, meter=meter)
    try:
        stream = stream_drainable(open_stream(member))
        try:
            with _backend_call(member):
                async for chunk in stream:
                    yield chunk
        finally:
            await stream.aclose()
    finally:
        await _release(lease)


async def generate_complete(
    *,
    request: GenerateRequest,
    meter: UsageMeter | None = None,
    caller: SchedulingCaller | None = None,
) -> GenerateResult:
    """A whole raw prompt completion with the backend's token counts (charged to `meter`)."""
    async with _served(model=request.model, caller=caller, meter=meter) as member:
        result = await call_drainable(member.generate(request))
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
    caller: SchedulingCaller | None = None,
) -> EmbedResult:
    """One vector per input, in order, from ONE backend call (tokens charged to `meter`).

    `normalize=False` asks for the model's raw vectors (Ollama's legacy
    embeddings endpoint); the backend may then need one call per input.
    """
    async with _served(model=model, caller=caller, meter=meter) as member:
        result = await call_drainable(
            member.embed(
                model=model,
                inputs=inputs,
                dimensions=dimensions,
                truncate=truncate,
                extra=extra,
                keep_alive=keep_alive,
                normalize=normalize,
            )
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


async def backends_health() -> list[BackendHealth]:
    """Each configured backend's state, asked at once (for the readiness probe)."""
    return await backend_get().health()
