"""Several backends behind one: each request goes to the backend that has its model.

The pool implements the same protocol as each of its members, so the service
and every surface stay unaware of how many backends there are.

With several members a background poller (one task per event loop) asks each
member every `probe_interval` seconds for its models (`/api/tags`) and the
models it has loaded (`/api/ps`); routing reads only that state, so a request
costs no backend call to route. Among the live members that have a model the
pool picks, in order: one that has it loaded (no model swap), the fewest
requests in flight (the gateway's own count), the highest weight, the first
configured.

A member that refuses connections, times out connecting or answers 503 is
marked down (by the poller or by the service when a request fails) and probed
again after a cooldown that doubles with each failure, up to `down_max`; it
rejoins when a probe answers. A model found only on members that are down is
a 503 naming them, with Retry-After; a model no member has is a 404.

One member (a lone Ollama) skips all of this: the request goes straight to it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
import weakref
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.backends.base import (
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
from gateway.backends.shared import RedisPoolState
from gateway.errors import (
    APIError,
    BackendBusyError,
    BackendConnectionError,
    BackendUnavailableError,
    BadRequestError,
    ModelNotFoundError,
    NotFoundError,
    retry_after_seconds,
)

logger = logging.getLogger(__name__)

# A model no member lists is looked up again (one list call per member) at
# most this often: a model pulled behind the gateway's back is found, and a
# stream of requests for a model nobody has costs no backend calls.
RELIST_MIN_SECONDS = 1.0

# With REDIS_URL: how often the poller shares in-flight counts and reads the
# other processes' (and the backends they found down).
SHARED_SYNC_SECONDS = 0.5

# Errors recorded per member for operators (the admin Backends page).
ERRORS_KEPT = 5


def is_member_failure(exc: BaseException) -> bool:
    """The member itself failed (down, unreachable, full, connection broke):
    another member may serve the same request."""
    return isinstance(exc, (BackendUnavailableError, BackendBusyError, BackendConnectionError))


@dataclass(frozen=True, slots=True)
class BackendHealth:
    """One member's state: `problem` is None when it answers.

    `since` is the wall-clock time (epoch seconds) of its last change between
    up and down; `loaded` the models it has in memory; `in_flight` the
    requests this gateway has running on it; `errors` its last errors,
    newest last, as (epoch seconds, message).
    """

    name: str
    problem: str | None
    version: str = ""
    since: float = 0.0
    loaded: tuple[str, ...] = ()
    models: int = 0
    in_flight: int = 0
    weight: float = 1.0
    errors: tuple[tuple[float, str], ...] = ()


@dataclass(slots=True)
class MemberState:
    """What the pool knows of one member (read on every request, written by the poller)."""

    name: str
    backend: InferenceBackend
    weight: float = 1.0
    up: bool = True
    since: float = field(default_factory=time.time)
    problem: str | None = None
    retry_at: float = 0.0  # monotonic: when a down member is probed next
    failures: int = 0  # consecutive, for the backoff
    listed: bool = False  # its model list is known
    models: dict[str, ModelInfo] = field(default_factory=dict)  # normalized name -> info
    loaded: frozenset[str] = frozenset()
    in_flight: int = 0  # this process's requests
    others_in_flight: int = 0  # other processes' (with REDIS_URL, as of the last sync)
    version: str = ""
    errors: collections.deque[tuple[float, str]] = field(
        default_factory=lambda: collections.deque(maxlen=ERRORS_KEPT)
    )


class BackendPool:
    """An `InferenceBackend` (and `ModelManager`) over named member backends."""

    def __init__(
        self,
        members: list[tuple[str, InferenceBackend]],
        *,
        weights: dict[str, float] | None = None,
        probe_interval: float = 5.0,
        down_max: float = 60.0,
        shared: RedisPoolState | None = None,
    ) -> None:
        if not members:
            raise ValueError("a backend pool needs at least one backend")
        self.members = dict(members)
        weights = weights or {}
        self.states = {
            name: MemberState(name, backend, weights.get(name, 1.0)) for name, backend in members
        }
        self.probe_interval = probe_interval
        self.down_max = down_max
        self.shared = shared
        self._background: set[asyncio.Task[None]] = set()  # shared-state writes
        self._polled_at = 0.0  # monotonic time of the last complete poll; 0 = never
        self._closed = False
        # Per event loop (tests run several): the poller, and the poll in flight.
        self._pollers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
            weakref.WeakKeyDictionary()
        )
        self._polling: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Future[None]
        ] = weakref.WeakKeyDictionary()

    @property
    def single(self) -> bool:
        return len(self.members) == 1

    # --- state: up, down, in flight ---------------------------------------------

    def mark_down(self, name: str, error: APIError) -> None:
        """`name` failed as a member (see `is_member_failure`): out of routing until
        a probe answers, after a cooldown that doubles with each failure."""
        state = self.states[name]
        now = time.monotonic()
        if state.up:
            state.up, state.since = False, time.time()
            logger.warning("Backend %s is down: %s", name, error.message)
        state.failures += 1
        state.problem = error.message
        cooldown = self._cooldown(state.failures)
        state.retry_at = now + cooldown
        state.errors.append((time.time(), error.message))
        if self.shared is not None:
            self._spawn(
                self.shared.publish_down(
                    name, problem=error.message, since=state.since, seconds=cooldown
                )
            )

    def _spawn(self, work: Any) -> None:
        """Run `work` (a shared-state write) in the background; its failure is only logged."""

        async def run() -> None:
            try:
                await work
            except Exception:
                logger.warning("Could not share backend state through Redis", exc_info=True)

        try:
            task = asyncio.get_running_loop().create_task(run())
        except RuntimeError:
            work.close()
            return
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _cooldown(self, failures: int) -> float:
        return min(self.probe_interval * 2 ** (failures - 1), self.down_max)

    def _mark_up(self, state: MemberState) -> None:
        if not state.up:
            state.up, state.since = True, time.time()
            logger.info("Backend %s is back", state.name)
            if self.shared is not None:
                self._spawn(self.shared.publish_up(state.name))
        state.failures, state.problem, state.retry_at = 0, None, 0.0

    def started(self, name: str) -> None:
        self.states[name].in_flight += 1

    def finished(self, name: str) -> None:
        self.states[name].in_flight -= 1

    def retry_after(self, names: Iterable[str]) -> int:
        """Seconds until the first of `names` is probed again."""
        now = time.monotonic()
        waits = [self.states[name].retry_at - now for name in names]
        return retry_after_seconds(min(waits, default=self.probe_interval))

    # --- polling ------------------------------------------------------------------

    def forget_routes(self) -> None:
        """The next request looks at the members again (a model was added or removed)."""
        self._polled_at = 0.0

    async def _ensure_polled(self) -> None:
        loop = asyncio.get_running_loop()
        poller = self._pollers.get(loop)
        if (poller is None or poller.done()) and not self._closed:
            self._pollers[loop] = loop.create_task(self._poll_forever(), name="backend-poller")
        if not self._polled_at:
            await self.poll()

    async def poll(self) -> None:
        """Ask every member (a down one once its cooldown has passed) for its
        models and loaded models. Callers arriving meanwhile share the poll."""
        loop = asyncio.get_running_loop()
        future = self._polling.get(loop)
        if future is None:
            future = self._polling[loop] = asyncio.ensure_future(self._poll_members())
            future.add_done_callback(lambda _: self._polling.pop(loop, None))
        await asyncio.shield(future)

    async def _poll_members(self) -> None:
        now = time.monotonic()
        due = [s for s in self.states.values() if s.up or s.retry_at <= now]
        await asyncio.gather(*(self._poll_member(state) for state in due))
        self._polled_at = time.monotonic()

    async def _poll_member(self, state: MemberState) -> None:
        backend = state.backend
        try:
            models, running = await asyncio.gather(backend.list_models(), backend.running_models())
            if not state.version:
                state.version = await backend.version()
        except APIError as exc:
            self.mark_down(state.name, exc)
            return
        state.models = {normalize_model_name(m.id): m for m in models}
        state.loaded = frozenset(normalize_model_name(r.model.id) for r in running)
        state.listed = True
        self._mark_up(state)

    async def _poll_forever(self) -> None:
        while not self._closed:
            now = time.monotonic()
            down = [s.retry_at - now for s in self.states.values() if not s.up]
            next_poll = self._polled_at + self.probe_interval - now
            ticks = [next_poll, *down]
            if self.shared is not None:
                ticks.append(SHARED_SYNC_SECONDS)
            await asyncio.sleep(max(0.05, min(ticks)))
            if self._closed:
                return
            try:
                if self.shared is not None:
                    await self._sync_shared()
                now = time.monotonic()
                due = any(not s.up and s.retry_at <= now for s in self.states.values())
                if due or now - self._polled_at >= self.probe_interval:
                    await self.poll()
            except Exception:  # one bad poll must not end polling
                logger.exception("Polling the backends failed")

    async def _sync_shared(self) -> None:
        """Publish this process's in-flight counts; take the other processes'
        counts and the backends they found down."""
        assert self.shared is not None
        view = await self.shared.sync({n: s.in_flight for n, s in self.states.items()})
        now = time.monotonic()
        for name, state in self.states.items():
            state.others_in_flight = view.others_in_flight.get(name, 0)
            mark = view.down.get(name)
            if mark is not None and state.up:
                state.up, state.since, state.problem = False, mark.since, mark.problem
                state.failures = max(state.failures, 1)
                state.retry_at = now + mark.seconds_left
                state.errors.append((time.time(), f"(another process) {mark.problem}"))
                logger.warning("Backend %s is down (found by another process)", name)

    def close(self) -> None:
        """Stop polling (from any thread); the pool still answers from what it knows."""
        self._closed = True
        for loop, task in list(self._pollers.items()):
            with contextlib.suppress(RuntimeError):  # that loop has ended
                loop.call_soon_threadsafe(task.cancel)

    # --- routing ------------------------------------------------------------------

    async def route(
        self, model: str, *, exclude: Iterable[str] = ()
    ) -> tuple[str, InferenceBackend]:
        """The member that serves `model` best, with its name (for its slots and records).

        `exclude`: members a failed attempt already tried. Raises
        `ModelNotFoundError` when no member has the model, and
        `BackendUnavailableError` (with Retry-After) when only members that are
        down may have it.
        """
        if self.single:
            return next(iter(self.members.items()))
        await self._ensure_polled()
        key = normalize_model_name(model)
        chosen = self._choose(key, exclude)
        if chosen is None and time.monotonic() - self._polled_at > RELIST_MIN_SECONDS:
            await self.poll()  # pulled behind our back? look again
            chosen = self._choose(key, exclude)
        if chosen is not None:
            return chosen.name, chosen.backend
        excluded = set(exclude)
        # Down members that have it, or whose models are unknown, may serve it later.
        waiting = [
            s.name
            for s in self.states.values()
            if not s.up and s.name not in excluded and (key in s.models or not s.listed)
        ]
        if waiting:
            names = ", ".join(waiting)
            raise BackendUnavailableError(
                f"The model '{model}' is on backend {names}, which is down: "
                f"{self.states[waiting[0]].problem}",
                headers={"Retry-After": str(self.retry_after(waiting))},
                details=[{"backend": name} for name in waiting],
            )
        raise ModelNotFoundError(model)

    def _choose(self, key: str, exclude: Iterable[str]) -> MemberState | None:
        excluded = set(exclude)
        best: MemberState | None = None
        best_rank: tuple[bool, int, float] | None = None
        for state in self.states.values():
            if not state.up or state.name in excluded or key not in state.models:
                continue
            rank = (
                key not in state.loaded,
                state.in_flight + state.others_in_flight,
                -state.weight,
            )
            if best_rank is None or rank < best_rank:
                best, best_rank = state, rank
        return best

    def has_other(self, model: str, *, exclude: Iterable[str]) -> bool:
        """Another live member lists `model` (a failed request may try it)."""
        return self._choose(normalize_model_name(model), exclude) is not None

    async def _member_for(self, model: str) -> InferenceBackend:
        return (await self.route(model))[1]

    async def served_models(self) -> set[str]:
        """Normalized names of every model some member serves now."""
        if self.single:
            try:
                models = await self.list_models()
            except APIError:
                return set()
            return {normalize_model_name(model.id) for model in models}
        await self._ensure_polled()
        return {key for s in self.states.values() if s.up for key in s.models}

    # --- InferenceBackend --------------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        """The union of the live members' models, each once (the first member's
        details), with `backends` naming every live member that has it."""
        if self.single:
            return await next(iter(self.members.values())).list_models()
        await self._ensure_polled()
        live = [s for s in self.states.values() if s.up]
        if not live:
            raise BackendUnavailableError(
                "No backend answers: "
                + "; ".join(f"{s.name}: {s.problem}" for s in self.states.values()),
                headers={"Retry-After": str(self.retry_after(self.states))},
            )
        where: dict[str, list[str]] = {}
        infos: dict[str, ModelInfo] = {}
        for state in live:
            for key, info in state.models.items():
                infos.setdefault(key, info)
                where.setdefault(key, []).append(state.name)
        return [
            dataclasses.replace(info, backends=tuple(where[key])) for key, info in infos.items()
        ]

    async def chat(self, request: ChatRequest) -> ChatResult:
        return await (await self._member_for(request.model)).chat(request)

    async def chat_stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        stream = (await self._member_for(request.model)).chat_stream(request)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    async def generate(self, request: GenerateRequest) -> GenerateResult:
        return await (await self._member_for(request.model)).generate(request)

    async def generate_stream(self, request: GenerateRequest) -> AsyncIterator[GenerateChunk]:
        stream = (await self._member_for(request.model)).generate_stream(request)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    async def embed(self, *, model: str, **kwargs: Any) -> EmbedResult:
        return await (await self._member_for(model)).embed(model=model, **kwargs)

    async def running_models(self) -> list[RunningModel]:
        members = [s.backend for s in self.states.values() if s.up] or list(self.members.values())
        results = await asyncio.gather(
            *(member.running_models() for member in members), return_exceptions=True
        )
        running: list[RunningModel] = []
        failures: list[APIError] = []
        for result in results:
            if isinstance(result, APIError):
                failures.append(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                running.extend(result)
        if failures and len(failures) == len(members):
            raise failures[0]
        return running

    async def describe_model(self, *, model: str, verbose: bool = False) -> ModelDescription:
        member = await self._member_for(model)
        return await member.describe_model(model=model, verbose=verbose)

    async def version(self) -> str:
        """The first member's version that answers (Ollama clients read Ollama's)."""
        failure: APIError | None = None
        for member in self._ollama_first():
            try:
                return await member.version()
            except APIError as exc:
                failure = failure or exc
        assert failure is not None
        raise failure

    def _ollama_first(self) -> list[InferenceBackend]:
        members = [s.backend for s in self.states.values() if s.up] or list(self.members.values())
        return sorted(members, key=lambda m: not isinstance(m, ModelManager))

    async def health(self) -> list[BackendHealth]:
        """Each member's state. One member is asked now; several are as the
        poller last found them (a probe of its own would only repeat the poller)."""
        if self.single:
            state = self._one_state()
            member = state.backend
            try:
                state.version = await member.version()
                self._mark_up(state)
            except APIError as exc:
                if state.up:
                    state.up, state.since = False, time.time()
                state.problem = exc.message
                state.errors.append((time.time(), exc.message))
            return [self._health_of(state)]
        await self._ensure_polled()
        return [self._health_of(state) for state in self.states.values()]

    def _one_state(self) -> MemberState:
        return next(iter(self.states.values()))

    def health_now(self) -> list[BackendHealth]:
        """Each member's state as last seen, without asking anyone (the admin page)."""
        return [self._health_of(state) for state in self.states.values()]

    @staticmethod
    def _health_of(state: MemberState) -> BackendHealth:
        return BackendHealth(
            name=state.name,
            problem=None if state.up else (state.problem or "down"),
            version=state.version,
            since=state.since,
            loaded=tuple(sorted(state.loaded)),
            models=len(state.models),
            in_flight=state.in_flight + state.others_in_flight,
            weight=state.weight,
            errors=tuple(state.errors),
        )

    async def aclose(self) -> None:
        self.close()
        for member in self.members.values():
            await member.aclose()

    # --- ModelManager: the member the caller names --------------------------------

    def _manager(self, backend: str | None, model: str | None = None) -> ModelManager:
        """The member that manages models: the one named, else the only one that
        can (or, for an existing model, the only one that has it)."""
        if backend is not None:
            member = self.members.get(backend)
            if member is None:
                # Like any named thing that is not there: 404 (the header itself is valid).
                raise NotFoundError(
                    f"There is no backend named '{backend}' (backends: {', '.join(self.members)}).",
                    code="unknown_backend",
                    param="X-Backend",
                )
            if not isinstance(member, ModelManager):
                raise BadRequestError(
                    f"The {backend} backend cannot manage models.",
                    code="not_supported",
                    param="X-Backend",
                )
            return member
        managers = {n: m for n, m in self.members.items() if isinstance(m, ModelManager)}
        if not managers:
            raise BadRequestError(
                "This inference backend cannot manage models.", code="not_supported"
            )
        if len(managers) > 1 and model is not None:
            key = normalize_model_name(model)
            having = {n: m for n, m in managers.items() if key in self.states[n].models}
            if len(having) == 1:
                return next(iter(having.values()))
        if len(managers) > 1:
            raise BadRequestError(
                "Several backends can manage models: name one with the X-Backend header "
                f"({', '.join(managers)}).",
                code="backend_required",
                param="X-Backend",
            )
        return next(iter(managers.values()))

    async def model_pull(
        self, *, model: str, insecure: bool = False, backend: str | None = None
    ) -> AsyncIterator[ProgressUpdate]:
        manager = self._manager(backend)
        try:
            async for update in manager.model_pull(model=model, insecure=insecure):
                yield update
        finally:
            self.forget_routes()

    async def model_push(
        self, *, model: str, insecure: bool = False, backend: str | None = None
    ) -> AsyncIterator[ProgressUpdate]:
        manager = self._manager(backend, model)
        async for update in manager.model_push(model=model, insecure=insecure):
            yield update

    async def model_create(
        self, *, model: str, spec: dict[str, Any], backend: str | None = None
    ) -> AsyncIterator[ProgressUpdate]:
        manager = self._manager(backend)
        try:
            async for update in manager.model_create(model=model, spec=spec):
                yield update
        finally:
            self.forget_routes()

    async def model_delete(self, *, model: str, backend: str | None = None) -> None:
        manager = await self._manager_of(model, backend)
        try:
            await manager.model_delete(model=model)
        finally:
            self.forget_routes()

    async def model_copy(
        self, *, source: str, destination: str, backend: str | None = None
    ) -> None:
        manager = await self._manager_of(source, backend)
        try:
            await manager.model_copy(source=source, destination=destination)
        finally:
            self.forget_routes()

    async def _manager_of(self, model: str, backend: str | None) -> ModelManager:
        """The managing member for an existing model, refusing models only a
        member that cannot manage serves (the embedded engine's files)."""
        if self.single:
            return self._manager(backend)
        await self._ensure_polled()
        key = normalize_model_name(model)
        manager = self._manager(backend, model)
        if key not in next(s for s in self.states.values() if s.backend is manager).models:
            owners = [
                s.name
                for s in self.states.values()
                if key in s.models and not isinstance(s.backend, ModelManager)
            ]
            if owners:
                raise BadRequestError(
                    f"'{model}' is served by the {owners[0]} backend, which cannot change its "
                    "models.",
                    code="not_supported",
                    param="model",
                )
        return manager
