"""Several backends behind one: each request goes to the backend that has its model.

The pool implements the same protocol as each of its members, so the service
and every surface stay unaware of how many backends there are. Model lists
are merged (first member wins a name both have); a member that is down
contributes nothing, and only when every member is down does a list fail.
Which member has which model is remembered for a few seconds, so routing
costs no extra backend call per request.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
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
from gateway.errors import APIError, BadRequestError, ModelNotFoundError

# Seconds a model -> member map is trusted; a pull or delete through the pool
# forgets it at once, a model changed behind the gateway's back waits this long.
ROUTE_TTL_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class BackendHealth:
    """One member's state: `problem` is None when it answers."""

    name: str
    problem: str | None
    version: str = ""


@dataclass(slots=True)
class _Routes:
    models: list[ModelInfo]
    owner: dict[str, str]  # normalized model name -> member name
    failures: dict[str, APIError]
    expires: float


class BackendPool:
    """An `InferenceBackend` (and `ModelManager`) over named member backends."""

    def __init__(self, members: list[tuple[str, InferenceBackend]]) -> None:
        if not members:
            raise ValueError("a backend pool needs at least one backend")
        self.members = dict(members)
        self._routes: _Routes | None = None
        # The refresh in flight, per event loop (tests run several loops).
        self._refreshing: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Future[_Routes]
        ] = weakref.WeakKeyDictionary()

    # --- routing ---------------------------------------------------------------

    def forget_routes(self) -> None:
        self._routes = None

    async def _current_routes(self) -> tuple[_Routes, bool]:
        """The routes, and whether they were fetched just now."""
        routes = self._routes
        if routes is not None and routes.expires > time.monotonic():
            return routes, False
        return await self._refresh(), True

    async def _refresh(self) -> _Routes:
        # Requests arriving while a refresh runs share it: one list call per member.
        loop = asyncio.get_running_loop()
        future = self._refreshing.get(loop)
        if future is None:
            future = self._refreshing[loop] = asyncio.ensure_future(self._fetch_routes())
            future.add_done_callback(lambda _: self._refreshing.pop(loop, None))
        return await asyncio.shield(future)

    async def _fetch_routes(self) -> _Routes:
        results = await asyncio.gather(
            *(member.list_models() for member in self.members.values()), return_exceptions=True
        )
        models: list[ModelInfo] = []
        owner: dict[str, str] = {}
        failures: dict[str, APIError] = {}
        for name, result in zip(self.members, results, strict=True):
            if isinstance(result, APIError):
                failures[name] = result
                continue
            if isinstance(result, BaseException):
                raise result
            for model in result:
                key = normalize_model_name(model.id)
                if key not in owner:
                    owner[key] = name
                    models.append(model)
        # Kept even when a member failed: asking a dead host on every request
        # would cost each one a connect timeout. It is asked again when the
        # map expires, or at once for a model no live member has.
        self._routes = _Routes(models, owner, failures, time.monotonic() + ROUTE_TTL_SECONDS)
        return self._routes

    async def _member_for(self, model: str) -> InferenceBackend:
        return (await self.route(model))[1]

    async def route(self, model: str) -> tuple[str, InferenceBackend]:
        """The member that serves `model`, with its name (for its slots and records)."""
        if len(self.members) == 1:
            return next(iter(self.members.items()))
        key = normalize_model_name(model)
        routes, fresh = await self._current_routes()
        name = routes.owner.get(key)
        if name is None and not fresh:
            routes = await self._refresh()  # pulled behind our back? look again
            name = routes.owner.get(key)
        if name is not None:
            return name, self.members[name]
        if routes.failures:
            # The model may be on the member that is down: say that, not 404.
            raise next(iter(routes.failures.values()))
        raise ModelNotFoundError(model)

    async def served_models(self) -> set[str]:
        """Normalized names of every model some member serves now (briefly cached)."""
        if len(self.members) == 1:
            try:
                models = await self.list_models()
            except APIError:
                return set()
            return {normalize_model_name(model.id) for model in models}
        routes, _ = await self._current_routes()
        return set(routes.owner)

    def _manager(self) -> tuple[str, ModelManager]:
        for name, member in self.members.items():
            if isinstance(member, ModelManager):
                return name, member
        raise BadRequestError("This inference backend cannot manage models.", code="not_supported")

    # --- InferenceBackend --------------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        if len(self.members) == 1:
            return await next(iter(self.members.values())).list_models()
        routes = await self._refresh()
        if len(routes.failures) == len(self.members):
            raise next(iter(routes.failures.values()))
        return list(routes.models)

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
        results = await asyncio.gather(
            *(member.running_models() for member in self.members.values()),
            return_exceptions=True,
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
        if failures and len(failures) == len(self.members):
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
        members = list(self.members.values())
        return sorted(members, key=lambda m: not isinstance(m, ModelManager))

    async def health(self) -> list[BackendHealth]:
        """Each member's state, asked at once (a readiness probe shows them)."""

        async def probe(name: str, member: InferenceBackend) -> BackendHealth:
            try:
                return BackendHealth(name, None, await member.version())
            except APIError as exc:
                return BackendHealth(name, exc.message)

        return list(await asyncio.gather(*(probe(n, m) for n, m in self.members.items())))

    async def aclose(self) -> None:
        for member in self.members.values():
            await member.aclose()

    # --- ModelManager: the member that can manage models ------------------------------

    async def model_pull(
        self, *, model: str, insecure: bool = False
    ) -> AsyncIterator[ProgressUpdate]:
        _, manager = self._manager()
        try:
            async for update in manager.model_pull(model=model, insecure=insecure):
                yield update
        finally:
            self.forget_routes()

    async def model_push(
        self, *, model: str, insecure: bool = False
    ) -> AsyncIterator[ProgressUpdate]:
        _, manager = self._manager()
        async for update in manager.model_push(model=model, insecure=insecure):
            yield update

    async def model_create(
        self, *, model: str, spec: dict[str, Any]
    ) -> AsyncIterator[ProgressUpdate]:
        _, manager = self._manager()
        try:
            async for update in manager.model_create(model=model, spec=spec):
                yield update
        finally:
            self.forget_routes()

    async def model_delete(self, *, model: str) -> None:
        manager = await self._manager_of(model)
        try:
            await manager.model_delete(model=model)
        finally:
            self.forget_routes()

    async def model_copy(self, *, source: str, destination: str) -> None:
        manager = await self._manager_of(source)
        try:
            await manager.model_copy(source=source, destination=destination)
        finally:
            self.forget_routes()

    async def _manager_of(self, model: str) -> ModelManager:
        """The managing member, refusing models another member serves (built-in files)."""
        name, manager = self._manager()
        if len(self.members) > 1:
            routes, _ = await self._current_routes()
            owner = routes.owner.get(normalize_model_name(model))
            if owner is not None and owner != name:
                raise BadRequestError(
                    f"'{model}' is served by the {owner} backend, which cannot change its models.",
                    code="not_supported",
                    param="model",
                )
        return manager
