"""The Ollama backend: the only code that talks to Ollama.

It goes through the official `ollama.AsyncClient` and turns every failure the
client can raise (see `spec/wire.md` C.4: they differ between streamed and
whole calls) into the gateway's own errors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import ollama
import pydantic

from apis.backends.base import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    EmbedResult,
    ModelInfo,
    ToolCall,
)
from apis.errors import (
    APIError,
    BackendBusyError,
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    BadRequestError,
    InsufficientResourcesError,
    ModelNotFoundError,
)

logger = logging.getLogger(__name__)

_OOM_MARKERS = ("more system memory", "out of memory", "insufficient memory", "cudaMalloc")


class OllamaBackend:
    """An `InferenceBackend` over one Ollama host."""

    def __init__(
        self,
        *,
        host: str,
        connect_timeout: float,
        read_timeout: float,
        busy_retry_after: int,
    ) -> None:
        self.host = host
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.busy_retry_after = busy_retry_after
        # httpx clients belong to the event loop that opened their connections;
        # a server has one loop, tests and management commands may have several.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ollama.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    # --- client and error translation ------------------------------------

    def _client(self) -> ollama.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = ollama.AsyncClient(
                host=self.host,
                timeout=httpx.Timeout(self.read_timeout, connect=self.connect_timeout),
                # Ollama queues requests itself (and says 503 when full); a
                # client-side pool limit would only add a second, silent queue.
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            )
            self._clients[loop] = client
        return client

    def _translate(self, exc: BaseException, model: str | None = None) -> APIError:
        """The gateway error for anything the ollama client raised."""
        if isinstance(exc, APIError):
            return exc
        if isinstance(exc, ollama.ResponseError):
            return self._translate_response_error(exc, model)
        if isinstance(exc, (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout)):
            return BackendUnavailableError(
                f"Cannot reach Ollama at {self.host} (OLLAMA_HOST). Start it with "
                "'ollama serve', or set OLLAMA_HOST to the address where it runs."
            )
        if isinstance(exc, httpx.TimeoutException):
            return BackendTimeoutError(
                f"Ollama at {self.host} did not answer within {self.read_timeout:g} s "
                "(OLLAMA_READ_TIMEOUT)."
            )
        if isinstance(exc, httpx.TransportError):
            return BackendError(f"The connection to Ollama broke: {exc}.")
        if isinstance(exc, (json.JSONDecodeError, pydantic.ValidationError, ValueError, KeyError)):
            return BackendError("Ollama sent a response the gateway could not read.")
        logger.exception("Unexpected error from the Ollama client", exc_info=exc)
        return BackendError("Unexpected error talking to Ollama.")

    def _translate_response_error(self, exc: ollama.ResponseError, model: str | None) -> APIError:
        status, text = exc.status_code, str(exc.error)
        if status == 404 and "not found" in text and model is not None:
            return ModelNotFoundError(model)
        if status == 503:
            return BackendBusyError(self.busy_retry_after)
        if status == 400:
            return BadRequestError(f"The backend refused the request: {text}")
        if any(marker in text for marker in _OOM_MARKERS):
            return InsufficientResourcesError(f"The backend is out of memory: {text}")
        if status == -1:
            return BackendError(f"The backend failed while generating: {text}")
        return BackendError(f"The backend failed (status {status}): {text}")

    # --- InferenceBackend --------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        try:
            response = await self._client().list()
        except Exception as exc:
            raise self._translate(exc) from exc
        return [_model_info(m) for m in response.models]

    async def chat(self, request: ChatRequest) -> ChatResult:
        try:
            response = await self._client().chat(stream=False, **_chat_kwargs(request))
        except Exception as exc:
            raise self._translate(exc, request.model) from exc
        message = response.message
        return ChatResult(
            model=request.model,
            content=message.content or "",
            thinking=message.thinking,
            tool_calls=_tool_calls(message.tool_calls),
            done_reason=response.done_reason,
            prompt_tokens=response.prompt_eval_count or 0,
            completion_tokens=response.eval_count or 0,
        )

    async def chat_stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        client = self._client()
        try:
            parts = await client.chat(stream=True, **_chat_kwargs(request))
        except Exception as exc:
            raise self._translate(exc, request.model) from exc
        try:
            async for part in parts:
                message = part.message
                yield ChatChunk(
                    content=message.content or "",
                    thinking=message.thinking,
                    tool_calls=_tool_calls(message.tool_calls),
                    done=bool(part.done),
                    done_reason=part.done_reason,
                    prompt_tokens=part.prompt_eval_count or 0,
                    completion_tokens=part.eval_count or 0,
                )
        except Exception as exc:
            raise self._translate(exc, request.model) from exc
        finally:
            # Closes the HTTP response: Ollama stops generating when its
            # connection closes (client gone, cancel, or error).
            await parts.aclose()

    async def embed(
        self, *, model: str, inputs: list[str], dimensions: int | None = None
    ) -> EmbedResult:
        try:
            response = await self._client().embed(model=model, input=inputs, dimensions=dimensions)
        except Exception as exc:
            raise self._translate(exc, model) from exc
        embeddings = [list(vector) for vector in response.embeddings]
        if len(embeddings) != len(inputs):
            raise BackendError(
                f"The backend returned {len(embeddings)} vectors for {len(inputs)} inputs."
            )
        return EmbedResult(
            model=model, embeddings=embeddings, prompt_tokens=response.prompt_eval_count or 0
        )

    async def version(self) -> str:
        try:
            response = await self._client()._request_raw("GET", "/api/version")
            return str(response.json()["version"])
        except Exception as exc:
            raise self._translate(exc) from exc

    async def aclose(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.close()


def _chat_kwargs(request: ChatRequest) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": request.model,
        "messages": request.messages,
        "options": request.options or None,
        "format": request.format,
        "tools": request.tools,
        "think": request.think,
        "keep_alive": request.keep_alive,
    }
    return {key: value for key, value in kwargs.items() if value is not None}


def _tool_calls(calls: Any) -> list[ToolCall]:
    if not calls:
        return []
    return [
        ToolCall(name=call.function.name, arguments=dict(call.function.arguments or {}))
        for call in calls
    ]


def _model_info(model: Any) -> ModelInfo:
    details = model.details
    modified_at = model.modified_at
    return ModelInfo(
        id=model.model or "",
        size_bytes=int(model.size or 0),
        family=(details.family if details else None) or "",
        families=tuple((details.families if details else None) or ()),
        parameter_size=(details.parameter_size if details else None) or "",
        quantization_level=(details.quantization_level if details else None) or "",
        format=(details.format if details else None) or "",
        digest=model.digest or "",
        modified_at=modified_at if isinstance(modified_at, datetime) else None,
        capabilities=tuple(getattr(model, "capabilities", None) or ()),
    )
