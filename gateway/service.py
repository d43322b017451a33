"""The inference service: the one entry point viewsets, consumers and the
OpenAI/Ollama adapters call. None of them builds a backend client.

Functions are keyword-only, typed, and raise only `gateway.errors` errors.
Inference streams and calls end with `ServerShuttingDownError` when the
process's drain window is over (`gateway.drain`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar

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
    ProgressUpdate,
    RunningModel,
    normalize_model_name,
)
from gateway.backends.embedded import EmbeddedBackend, EmbeddedModelSpec, model_name_from_file
from gateway.backends.ollama import OllamaBackend
from gateway.backends.pool import BackendHealth, BackendPool, is_member_failure
from gateway.backends.shared import RedisPoolState
from gateway.coalesce import Batch, BatchKey, Coalescer, frozen, shares_of
from gateway.drain import call_drainable, stream_drainable
from gateway.errors import APIError, ModelNotFoundError
from gateway.metering import UsageMeter
from gateway.metrics import backend_error, backend_up_source, in_flight, queue_depth_source
from gateway.scheduler import (
    Anonymous,
    CallerQueueFullError,
    Lease,
    LocalScheduler,
    Queued,
    RedisScheduler,
    SchedulerSettings,
    SchedulingCaller,
)

R = TypeVar("R", ChatRequest, GenerateRequest)
T = TypeVar("T")

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

    Each Ollama of OLLAMA_HOSTS (else the one at OLLAMA_HOST, named "ollama"),
    and the embedded engine when it is on: each request goes to a backend that
    lists its model (see `BackendPool.route`).
    """
    hosts = settings.OLLAMA_HOSTS or [
        {"name": "ollama", "url": settings.OLLAMA_HOST, "weight": 1.0, "parallel": None}
    ]
    members: list[tuple[str, InferenceBackend]] = [
        (
            host["name"],
            OllamaBackend(
                host=host["url"],
                connect_timeout=settings.OLLAMA_CONNECT_TIMEOUT,
                read_timeout=settings.OLLAMA_READ_TIMEOUT,
                busy_retry_after=settings.OLLAMA_BUSY_RETRY_AFTER,
                parallel=host["parallel"] or settings.OLLAMA_NUM_PARALLEL,
            ),
        )
        for host in hosts
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
    return BackendPool(
        members,
        weights={host["name"]: host["weight"] for host in hosts},
        probe_interval=settings.BACKEND_PROBE_INTERVAL,
        down_max=settings.BACKEND_DOWN_MAX,
        shared=_shared_pool_state() if len(members) > 1 else None,
    )


def _shared_pool_state() -> RedisPoolState | None:
    """With REDIS_URL, backend health and in-flight counts shared by every process."""
    if not settings.REDIS_URL:
        return None
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    return RedisPoolState(
        settings.REDIS_URL,
        prefix=f"{prefix}:pool:",
        ttl=max(3 * settings.BACKEND_PROBE_INTERVAL, 5.0),
    )


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
    if setting.startswith(("OLLAMA_", "EMBEDDED_", "BACKEND_", "REDIS_URL")):
        if backend_get.cache_info().currsize:
            backend_get().close()  # its pollers stop
        backend_get.cache_clear()
    if setting.startswith(("SCHEDULER_", "OLLAMA_NUM_PARALLEL", "REDIS_URL")):
        scheduler_get.cache_clear()
    if setting.startswith("EMBED_"):
        embed_coalescer.cache_clear()


# --- metrics: calls in flight, backend failures, health and queues ----------------


@contextlib.contextmanager
def _backend_call(name: str) -> Iterator[None]:
    """A generation call of backend `name`: in flight while it runs; its 5xx failures counted."""
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


Acquired = tuple[str, InferenceBackend, Lease | None]


async def _acquire(
    *,
    model: str,
    caller: SchedulingCaller | None,
    meter: UsageMeter | None,
    exclude: tuple[str, ...] = (),
) -> Acquired:
    """The backend that serves `model` (not one of `exclude`), with its name
    and a slot of it in fair order. `_release` gives both back.

    Routing comes first, so an unknown model is a 404 and a backend that is
    down a 503 without waiting in any queue.
    """
    name, member = await backend_get().route(model, exclude=exclude)
    if meter is not None:
        meter.backend = name
    return await _acquire_routed(name=name, member=member, model=model, caller=caller, meter=meter)


async def _acquire_routed(
    *,
    name: str,
    member: InferenceBackend,
    model: str,
    caller: SchedulingCaller | None,
    meter: UsageMeter | None,
) -> Acquired:
    """A slot of backend `name` (routed already) for `model`, in fair order."""
    scheduler = scheduler_get()
    lease = None
    if scheduler is not None:
        # A wait the end of the drain window cuts short, as it does a backend
        # call: the slot may be held where this drain cannot interrupt it.
        lease = await call_drainable(
            scheduler.acquire(
                resource=f"{name}/{normalize_model_name(model)}",
                slots=getattr(member, "parallel", 1),
                caller=caller or INTERNAL_CALLER,
            )
        )
        if meter is not None:
            meter.queued_ms = round(lease.queued_seconds * 1000)
    backend_get().started(name)
    return name, member, lease


def _fails_over(name: str, exc: APIError, *, model: str, tried: list[str]) -> bool:
    """Whether a request that failed on `name` before its first byte goes to
    another backend: once, when the backend itself failed and another has the
    model. The failed backend is marked down either way."""
    pool = backend_get()
    if pool.single or not is_member_failure(exc):
        return False
    pool.mark_down(name, exc)
    tried.append(name)
    return len(tried) == 1 and pool.has_other(model, exclude=tried)


async def _with_failover(
    *,
    model: str,
    caller: SchedulingCaller | None,
    meter: UsageMeter | None,
    call: Any,
    acquired: Acquired | None = None,
) -> Any:
    """`await call(member)` on the routed backend; again on another once (see `_fails_over`).

    `acquired`: a slot taken already, for the first attempt (released here).
    """
    tried: list[str] = []
    while True:
        if acquired is not None:
            (name, member, lease), acquired = acquired, None
        else:
            name, member, lease = await _acquire(
                model=model, caller=caller, meter=meter, exclude=tuple(tried)
            )
        try:
            with _backend_call(name):
                return await call_drainable(call(member))
        except APIError as exc:
            if not _fails_over(name, exc, model=model, tried=tried):
                raise
        finally:
            await _release(name, lease)


async def _acquire_with_notices(
    *,
    model: str,
    caller: SchedulingCaller | None,
    meter: UsageMeter | None,
    exclude: tuple[str, ...] = (),
) -> AsyncIterator[Queued | Acquired]:
    """`_acquire`, yielding `Queued` every SCHEDULER_NOTICE_INTERVAL while it waits."""
    waiting = asyncio.ensure_future(
        _acquire(model=model, caller=caller, meter=meter, exclude=exclude)
    )
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
                name, _ = await backend_get().route(model, exclude=exclude)
                position = scheduler.position(f"{name}/{normalize_model_name(model)}", caller.id)
            yield Queued(position=position)
    finally:
        if not waiting.done():
            waiting.cancel()  # leaves the queue at once; the backend never sees it
            with contextlib.suppress(BaseException):
                await waiting
        elif not handed and not waiting.cancelled() and waiting.exception() is None:
            name, _, lease = waiting.result()
            await _release(name, lease)  # granted just as the client left


async def _release(name: str, lease: Lease | None) -> None:
    backend_get().finished(name)
    if lease is not None:
        # At once, not in a task of its own: the next waiter's turn starts now.
        await lease.release()


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
    result = await _with_failover(
        model=request.model, caller=caller, meter=meter, call=lambda m: m.chat(request)
    )
    if meter is not None:
        meter.charge(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens)
    return result


async def chat_complete_choices(
    *,
    request: ChatRequest,
    n: int,
    meter: UsageMeter | None = None,
    caller: SchedulingCaller | None = None,
) -> list[ChatResult]:
    """`n` whole answers (choice i with seed + i, see `choice_requests`), generated at
    once, each waiting for its own slot; `meter` is charged their summed tokens.
    The first failure fails the call (and stops the other generations)."""
    return await _choices(
        [
            lambda choice=choice: chat_complete(request=choice, meter=meter, caller=caller)
            for choice in choice_requests(request, n)
        ]
    )


def chat_stream(
    *,
    request: ChatRequest,
    meter: UsageMeter | None = None,
    caller: SchedulingCaller | None = None,
    notices: bool = False,
    n: int = 1,
) -> AsyncIterator[ChatChunk | Queued]:
    """Chunks as the backend produces them; the last has `done=True`.

    Errors before the first chunk (unknown model, busy, down) are raised by
    the first `__anext__`, so callers can still answer with a status code.
    Closing the iterator (`aclose`) leaves the queue or closes the backend
    request, and gives the slot back. `notices=True`: while the stream waits
    for a slot it yields `Queued` now and then (the surface can say so).
    `n` > 1: n generations (see `choice_requests`), their chunks interleaved
    as they come, each marked with its choice's `index`; n final chunks.
    """
    return _choice_streams(
        [
            _scheduled_stream(choice, _open_chat, meter, caller, notices)
            for choice in choice_requests(request, n)
        ]
    )


def generate_stream(
    *,
    request: GenerateRequest,
    meter: UsageMeter | None = None,
    caller: SchedulingCaller | None = None,
    notices: bool = False,
    n: int = 1,
) -> AsyncIterator[GenerateChunk | Queued]:
    """A raw prompt completion as it is produced; same contract as `chat_stream`."""
    return _choice_streams(
        [
            _scheduled_stream(choice, _open_generate, meter, caller, notices)
            for choice in choice_requests(request, n)
        ]
    )


# --- n choices: n generations of one request ---------------------------------------


def choice_requests(request: R, n: int) -> list[R]:
    """The requests of `n` choices: choice i with seed + i when a seed is given.

    So a seeded request is repeatable, and its choices still differ from one
    another. Each is generated, scheduled and charged like a request of its own.
    """
    if n <= 1:
        return [request]
    seed = request.params.seed
    return [
        dataclasses.replace(
            request,
            params=dataclasses.replace(request.params, seed=None if seed is None else seed + i),
        )
        for i in range(n)
    ]


async def _choices(calls: list[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run whole generations at once; the first failure cancels the others."""
    if len(calls) == 1:
        return [await calls[0]()]
    tasks = [asyncio.ensure_future(call()) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


_ENDED: Any = object()


async def _next_or_end(stream: AsyncIterator[Any]) -> Any:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return _ENDED


def _choice_streams(streams: list[AsyncIterator[Any]]) -> AsyncIterator[Any]:
    """One stream; n choices' streams interleaved as their chunks come (see `chat_stream`)."""
    if len(streams) == 1:
        return streams[0]  # the common case: not a step more per token
    return _interleaved(streams)


async def _interleaved(streams: list[AsyncIterator[Any]]) -> AsyncIterator[Any]:
    """Each stream's chunks, marked with the stream's index, as they arrive.

    One step of each stream is awaited at a time: a slow client slows every
    generation, as it slows one. A failure of any stream is raised at once
    (and the others closed); closing this closes all of them, so every
    backend stops generating and every slot is given back.
    """
    pending: dict[asyncio.Future[Any], int] = {}

    def step(index: int) -> None:
        pending[asyncio.ensure_future(_next_or_end(streams[index]))] = index

    for index in range(len(streams)):
        step(index)
    try:
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=pending.__getitem__):
                index = pending.pop(task)
                item = task.result()
                if item is _ENDED:
                    continue
                if item.__class__ is not Queued:
                    item.index = index
                step(index)
                yield item
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for stream in streams:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]


def _open_chat(member: InferenceBackend, request: ChatRequest) -> AsyncIterator[ChatChunk]:
    return member.chat_stream(request)


def _open_generate(
    member: InferenceBackend, request: GenerateRequest
) -> AsyncIterator[GenerateChunk]:
    return member.generate_stream(request)


async def _scheduled_stream(
    request: ChatRequest | GenerateRequest,
    open_stream: Any,
    meter: UsageMeter | None,
    caller: SchedulingCaller | None,
    notices: bool,
) -> AsyncIterator[Any]:
    # Before its first chunk a stream may go to another backend once (see
    # `_fails_over`); after it, never: the surface ends it with its error event.
    tried: list[str] = []
    while True:
        if notices:
            acquired = None
            steps = _acquire_with_notices(
                model=request.model, caller=caller, meter=meter, exclude=tuple(tried)
            )
            async with contextlib.aclosing(steps):
                async for step in steps:
                    if isinstance(step, Queued):
                        yield step
                    else:
                        acquired = step
            assert acquired is not None
            name, member, lease = acquired
        else:
            name, member, lease = await _acquire(
                model=request.model, caller=caller, meter=meter, exclude=tuple(tried)
            )
        try:
            stream = stream_drainable(open_stream(member, request))
            try:
                with _backend_call(name):
                    try:
                        first = await anext(stream)
                    except StopAsyncIteration:
                        return
                    except APIError as exc:
                        if _fails_over(name, exc, model=request.model, tried=tried):
                            continue
                        raise
                    yield first
                    async for chunk in stream:
                        yield chunk
                    return
            except APIError as exc:
                if is_member_failure(exc) and not backend_get().single:
                    backend_get().mark_down(name, exc)
                raise
            finally:
                await stream.aclose()
        finally:
            await _release(name, lease)


async def generate_complete(
    *,
    request: GenerateRequest,
    meter: UsageMeter | None = None,
    caller: SchedulingCaller | None = None,
) -> GenerateResult:
    """A whole raw prompt completion with the backend's token counts (charged to `meter`)."""
    result = await _with_failover(
        model=request.model, caller=caller, meter=meter, call=lambda m: m.generate(request)
    )
    if meter is not None:
        meter.charge(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens)
    return result


async def generate_complete_choices(
    *,
    request: GenerateRequest,
    n: int,
    meter: UsageMeter | None = None,
    caller: SchedulingCaller | None = None,
) -> list[GenerateResult]:
    """`n` whole completions; same contract as `chat_complete_choices`."""
    return await _choices(
        [
            lambda choice=choice: generate_complete(request=choice, meter=meter, caller=caller)
            for choice in choice_requests(request, n)
        ]
    )


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
    """One vector per input, in order (tokens charged to `meter`).

    With EMBED_COALESCE on, requests for the same backend, model and options
    that wait for a slot together share ONE backend call (`gateway.coalesce`):
    each gets exactly its own vectors, and its own token count (the backend's
    per-input counts, or its total split by characters). Otherwise, and for
    a request with no inputs, one call of its own. `normalize=False` asks for
    the model's raw vectors (Ollama's legacy embeddings endpoint); the
    backend may then need one call per input.
    """
    options = {
        "dimensions": dimensions,
        "truncate": truncate,
        "extra": extra,
        "keep_alive": keep_alive,
        "normalize": normalize,
    }
    if settings.EMBED_COALESCE and inputs:
        name, member = await backend_get().route(model)
        if meter is not None:
            meter.backend = name
        key = BatchKey(
            backend=name,
            model=normalize_model_name(model),
            dimensions=dimensions,
            truncate=truncate,
            normalize=normalize,
            keep_alive=frozen(keep_alive),
            extra=frozen(extra or None),
        )
        share = await embed_coalescer().submit(
            key=key,
            inputs=inputs,
            caller=caller or INTERNAL_CALLER,
            serve=lambda batch: _embed_batch(batch, name, member, model, options),
        )
        if share is not None:
            result = share.result
            result.model = model
            if meter is not None:
                meter.backend = share.backend
                meter.queued_ms = round(share.queued_seconds * 1000)
                meter.charge(prompt_tokens=result.prompt_tokens)
            return result
    result = await _with_failover(
        model=model,
        caller=caller,
        meter=meter,
        call=lambda member: member.embed(model=model, inputs=inputs, **options),
    )
    if meter is not None:
        meter.charge(prompt_tokens=result.prompt_tokens)
    return result


@cache
def embed_coalescer() -> Coalescer:
    """This process's embedding batches (EMBED_BATCH_MAX_INPUTS, EMBED_COALESCE_WINDOW_MS)."""
    return Coalescer(
        max_inputs=settings.EMBED_BATCH_MAX_INPUTS,
        window=settings.EMBED_COALESCE_WINDOW_MS / 1000,
    )


# A batched call that the backend refuses as a bad request may owe it to one
# member's input (too long, say): each member is then tried alone, in the same
# slot, so the error reaches only the request that caused it.
_ALONE_AFTER = frozenset({400, 413, 422})


async def _embed_batch(
    batch: Batch, name: str, member: InferenceBackend, model: str, options: dict[str, Any]
) -> None:
    """Serve one batch: a slot in its first member's turn, then one backend call
    (with failover, as any request), each member answered with its own share."""
    acquired: Acquired | None = None
    while acquired is None:
        leader = batch.leader()
        if leader is None:
            return  # everyone left while it waited
        try:
            acquired = await _acquire_routed(
                name=name, member=member, model=model, caller=leader.caller, meter=None
            )
        except CallerQueueFullError as exc:
            batch.fail([leader], exc)  # that caller's cap, not the others'
            batch.remove(leader)
    try:
        await batch.gathered(embed_coalescer().window)
        members = batch.launch()
    except BaseException:
        await _release(acquired[0], acquired[2])
        raise
    if not members:
        await _release(acquired[0], acquired[2])
        return
    served: list[InferenceBackend] = []

    async def call(backend: InferenceBackend) -> list[EmbedResult | APIError]:
        served.append(backend)
        inputs = [text for m in members for text in m.inputs]
        try:
            return list(
                shares_of(await backend.embed(model=model, inputs=inputs, **options), members)
            )
        except APIError as exc:
            if len(members) == 1 or exc.status not in _ALONE_AFTER:
                raise
        outcomes: list[EmbedResult | APIError] = []
        for one in members:
            try:
                outcomes.append(await backend.embed(model=model, inputs=one.inputs, **options))
            except APIError as exc:
                outcomes.append(exc)
        return outcomes

    outcomes = await _with_failover(
        model=model, caller=members[0].caller, meter=None, call=call, acquired=acquired
    )
    backend = next(n for n, b in backend_get().members.items() if b is served[-1])
    batch.deliver(members, outcomes, backend=backend)


async def models_running() -> list[RunningModel]:
    """Models loaded in the backend's memory now."""
    return await backend_get().running_models()


async def model_describe(*, model_id: str, verbose: bool = False) -> ModelDescription:
    """Everything the backend knows about one model; `ModelNotFoundError` if unknown."""
    return await backend_get().describe_model(model=model_id, verbose=verbose)


# Model management goes to ONE backend, never retried elsewhere: `backend`
# names it (the X-Backend header); it may be omitted when only one backend can
# manage models (or, for an existing model, only one has it).


def model_pull(
    *, model_id: str, insecure: bool = False, backend: str | None = None
) -> AsyncIterator[ProgressUpdate]:
    """Fetch a model from its registry onto `backend`; progress as it goes."""
    return stream_drainable(
        backend_get().model_pull(model=model_id, insecure=insecure, backend=backend)
    )


def model_push(
    *, model_id: str, insecure: bool = False, backend: str | None = None
) -> AsyncIterator[ProgressUpdate]:
    """Upload a model from `backend` to its registry; progress as it goes."""
    return stream_drainable(
        backend_get().model_push(model=model_id, insecure=insecure, backend=backend)
    )


def model_create(
    *, model_id: str, spec: dict[str, Any], backend: str | None = None
) -> AsyncIterator[ProgressUpdate]:
    """Build a model on `backend` from `spec` (`from`, `files`, `system`, ...)."""
    return stream_drainable(backend_get().model_create(model=model_id, spec=spec, backend=backend))


async def model_delete(*, model_id: str, backend: str | None = None) -> None:
    """Remove a model from `backend`; `ModelNotFoundError` if unknown."""
    try:
        await backend_get().model_delete(model=model_id, backend=backend)
    except ModelNotFoundError:
        raise _missing(model_id) from None


async def model_copy(*, source: str, destination: str, backend: str | None = None) -> None:
    """Copy a model on `backend` under a new name; `ModelNotFoundError` if `source` is unknown."""
    try:
        await backend_get().model_copy(source=source, destination=destination, backend=backend)
    except ModelNotFoundError:
        raise _missing(source) from None


def _missing(model_id: str) -> ModelNotFoundError:
    # Not the default "pull it first": pulling a model to delete or copy it is no advice.
    return ModelNotFoundError(model_id, f"model '{model_id}' not found")


async def backend_version() -> str:
    """The backend's version string; raises if it is unreachable."""
    return await backend_get().version()


async def backends_health() -> list[BackendHealth]:
    """Each configured backend's state (for the readiness probe)."""
    return await backend_get().health()


def backends_state() -> list[BackendHealth]:
    """Each configured backend's state as last seen, asking no one (operators' pages)."""
    return backend_get().health_now()
