"""The Ollama backend: the only code that talks to Ollama.

It goes through the official `ollama.AsyncClient` and turns every failure the
client can raise (see `spec/wire.md` C.4: they differ between streamed and
whole calls) into the gateway's own errors.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import weakref
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, NoReturn

import aiohttp
import httpx
import ollama
import pydantic
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions

from gateway.backends.base import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    EmbedResult,
    GenerateChunk,
    GenerateRequest,
    GenerateResult,
    GenerationParams,
    ModelDescription,
    ModelInfo,
    ProgressUpdate,
    RunningModel,
    Timings,
    TokenLogprob,
    ToolCall,
)
from gateway.errors import (
    APIError,
    BackendBusyError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    BadRequestError,
    InsufficientResourcesError,
    ModelNotFoundError,
)

logger = logging.getLogger(__name__)

_OOM_MARKERS = ("more system memory", "out of memory", "insufficient memory", "cudaMalloc")


def _keep_tool_call_ids() -> None:
    """Let the ollama client keep the `id` Ollama gives each tool call (since v0.12.10).

    ollama-python (0.6.3, pinned) models a tool call without `id`, and its
    pydantic models drop unknown keys, both in answers and in the history it
    sends: so every surface lost the ids. Allowing extra keys on that one
    model (pydantic's public config, then rebuilding the models that hold it;
    the request model is only in `ollama._types`, hence the pin) keeps them
    both ways. Guarded by tests/test_tool_call_ids.py, which fails if an
    upgrade changes this.
    """
    from ollama import _types

    ollama.Message.ToolCall.model_config["extra"] = "allow"
    for model in (ollama.Message.ToolCall, ollama.Message, ollama.ChatResponse, _types.ChatRequest):
        model.model_rebuild(force=True)


_keep_tool_call_ids()


class OllamaBackend:
    """An `InferenceBackend` over one Ollama host."""

    def __init__(
        self,
        *,
        host: str,
        connect_timeout: float,
        read_timeout: float,
        busy_retry_after: int,
        parallel: int = 1,
    ) -> None:
        self.host = host
        # Requests this host runs at once per model (Ollama's OLLAMA_NUM_PARALLEL).
        self.parallel = parallel
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
                # The whole connect phase (aiohttp's `connect`, which the
                # transport takes from httpx's `pool`) gets the connect timeout,
                # not the read timeout httpx would give it.
                timeout=httpx.Timeout(
                    self.read_timeout, connect=self.connect_timeout, pool=self.connect_timeout
                ),
                # httpx's API over aiohttp's connection pool: httpcore's pool
                # scans every open connection on each request, which made it
                # the largest cost per call at 50 concurrent requests.
                transport=_Transport(client=_aiohttp_session),
            )
            self._clients[loop] = client
            _close_when_loop_ends(client)
        return client

    def _translate(self, exc: BaseException, model: str | None = None) -> APIError:
        """The gateway error for anything the ollama client raised."""
        if isinstance(exc, APIError):
            return exc
        if isinstance(exc, ollama.ResponseError):
            return self._translate_response_error(exc, model)
        # The aiohttp transport maps aiohttp's errors to httpx's coarsely (a
        # connection the server dropped becomes ConnectTimeout); the original,
        # kept as the cause, says which it was.
        cause = exc.__cause__
        if isinstance(exc, httpx.TransportError) and isinstance(cause, aiohttp.ClientError):
            if isinstance(cause, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
                return self._unavailable()
            if isinstance(cause, aiohttp.ServerTimeoutError):
                return self._timed_out()
            return self._broke(cause)
        if isinstance(exc, (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout)):
            return self._unavailable()
        if isinstance(exc, httpx.TimeoutException):
            return self._timed_out()
        if isinstance(exc, httpx.TransportError):
            return self._broke(exc)
        if isinstance(exc, (json.JSONDecodeError, pydantic.ValidationError, ValueError, KeyError)):
            return BackendError("Ollama sent a response the gateway could not read.")
        logger.exception("Unexpected error from the Ollama client", exc_info=exc)
        return BackendError("Unexpected error talking to Ollama.")

    def _broke(self, exc: BaseException) -> BackendConnectionError:
        """A connection that failed after Ollama was reached, said in words a user follows.

        The client library's own text (`TransferEncodingError: 400, message=
        'Not enough data to satisfy transfer length header.'`) goes to the log.
        """
        logger.warning("The connection to Ollama broke: %r", exc)
        if isinstance(exc, aiohttp.ClientPayloadError):
            return BackendConnectionError(
                "Ollama's answer was cut off: the connection closed before all of it arrived."
            )
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return BackendConnectionError("Ollama closed the connection before answering.")
        return BackendConnectionError(
            "The connection to Ollama broke before its answer was complete."
        )

    def _unavailable(self) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"Cannot reach Ollama at {self.host} (OLLAMA_HOST). Start it with "
            "'ollama serve', or set OLLAMA_HOST to the address where it runs."
        )

    def _timed_out(self) -> BackendTimeoutError:
        return BackendTimeoutError(
            f"Ollama at {self.host} did not answer within {self.read_timeout:g} s "
            "(OLLAMA_READ_TIMEOUT)."
        )

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
            logprobs=_logprobs(response.logprobs),
            prompt_tokens=response.prompt_eval_count or 0,
            completion_tokens=response.eval_count or 0,
            timings=_timings(response),
        )

    async def chat_stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        client, model = self._client(), request.model
        try:
            parts = await client.chat(stream=True, **_chat_kwargs(request))
        except Exception as exc:
            raise self._translate(exc, model) from exc
        # The request (the whole conversation) is sent: not held while streaming.
        request = None  # type: ignore[assignment]
        try:
            async for part in parts:
                chunk = _chat_chunk(part)
                # A held stream waits here: keep the small chunk, not the
                # client's pydantic model of the line.
                part = None
                yield chunk
        except Exception as exc:
            raise self._translate(exc, model) from exc
        finally:
            # Closes the HTTP response: Ollama stops generating when its
            # connection closes (client gone, cancel, or error).
            await parts.aclose()

    async def generate(self, request: GenerateRequest) -> GenerateResult:
        try:
            response = await self._client().generate(stream=False, **_generate_kwargs(request))
        except Exception as exc:
            raise self._translate(exc, request.model) from exc
        return GenerateResult(
            model=request.model,
            text=response.response or "",
            thinking=response.thinking,
            done_reason=response.done_reason,
            context=list(response.context) if response.context is not None else None,
            logprobs=_logprobs(response.logprobs),
            prompt_tokens=response.prompt_eval_count or 0,
            completion_tokens=response.eval_count or 0,
            timings=_timings(response),
        )

    async def generate_stream(self, request: GenerateRequest) -> AsyncIterator[GenerateChunk]:
        client, model = self._client(), request.model
        try:
            parts = await client.generate(stream=True, **_generate_kwargs(request))
        except Exception as exc:
            raise self._translate(exc, model) from exc
        request = None  # type: ignore[assignment]  # sent: not held while streaming
        try:
            async for part in parts:
                chunk = _generate_chunk(part)
                part = None  # as in chat_stream: not held while waiting
                yield chunk
        except Exception as exc:
            raise self._translate(exc, model) from exc
        finally:
            await parts.aclose()

    async def embed(
        self,
        *,
        model: str,
        inputs: list[str],
        dimensions: int | None = None,
        truncate: bool | None = None,
        extra: dict[str, Any] | None = None,
        keep_alive: float | str | None = None,
        normalize: bool = True,
    ) -> EmbedResult:
        options = extra or None
        if not normalize:
            return await self._embed_raw(
                model=model, inputs=inputs, options=options, keep_alive=keep_alive
            )
        try:
            response = await self._client().embed(
                model=model,
                input=inputs,
                dimensions=dimensions,
                truncate=truncate,
                options=options,
                keep_alive=keep_alive,
            )
        except Exception as exc:
            raise self._translate(exc, model) from exc
        embeddings = [list(vector) for vector in response.embeddings]
        if len(embeddings) != len(inputs):
            raise BackendError(
                f"The backend returned {len(embeddings)} vectors for {len(inputs)} inputs."
            )
        return EmbedResult(
            model=model,
            embeddings=embeddings,
            prompt_tokens=response.prompt_eval_count or 0,
            timings=_timings(response),
        )

    async def _embed_raw(
        self,
        *,
        model: str,
        inputs: list[str],
        options: dict[str, Any] | None,
        keep_alive: float | str | None,
    ) -> EmbedResult:
        # Ollama's legacy endpoint: one prompt per call, vectors as the model
        # produced them (not normalised), no token count.
        embeddings: list[list[float]] = []
        for prompt in inputs:
            try:
                response = await self._client().embeddings(
                    model=model, prompt=prompt, options=options or None, keep_alive=keep_alive
                )
            except Exception as exc:
                raise self._translate(exc, model) from exc
            embeddings.append(list(response.embedding))
        return EmbedResult(model=model, embeddings=embeddings)

    async def running_models(self) -> list[RunningModel]:
        try:
            response = await self._client().ps()
        except Exception as exc:
            raise self._translate(exc) from exc
        return [
            RunningModel(
                model=_model_info(m),
                size_vram=int(m.size_vram or 0),
                expires_at=m.expires_at if isinstance(m.expires_at, datetime) else None,
                context_length=m.context_length or 0,
            )
            for m in response.models
        ]

    async def describe_model(self, *, model: str, verbose: bool = False) -> ModelDescription:
        # The raw body: ollama-python's ShowResponse drops fields (`system`,
        # `projector_info`, `tensors`, ...) that Ollama clients may want.
        body: dict[str, Any] = {"model": model}
        if verbose:
            body["verbose"] = True
        try:
            response = await self._client()._request_raw("POST", "/api/show", json=body)
            data = response.json()
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except Exception as exc:
            raise self._translate(exc, model) from exc
        return _model_description(model, data)

    # --- ModelManager --------------------------------------------------------

    async def model_pull(
        self, *, model: str, insecure: bool = False
    ) -> AsyncIterator[ProgressUpdate]:
        async for update in self._progress(
            lambda: self._client().pull(model=model, insecure=insecure, stream=True), model
        ):
            yield update

    async def model_push(
        self, *, model: str, insecure: bool = False
    ) -> AsyncIterator[ProgressUpdate]:
        async for update in self._progress(
            lambda: self._client().push(model=model, insecure=insecure, stream=True), model
        ):
            yield update

    async def model_create(
        self, *, model: str, spec: dict[str, Any]
    ) -> AsyncIterator[ProgressUpdate]:
        kwargs = {
            "quantize": spec.get("quantize"),
            "from_": spec.get("from"),
            "files": spec.get("files"),
            "adapters": spec.get("adapters"),
            "template": spec.get("template"),
            "license": spec.get("license"),
            "system": spec.get("system"),
            "parameters": spec.get("parameters"),
            "messages": spec.get("messages"),
        }
        async for update in self._progress(
            lambda: self._client().create(model=model, stream=True, **kwargs), model
        ):
            yield update

    async def model_delete(self, *, model: str) -> None:
        try:
            await self._client().delete(model)
        except Exception as exc:
            raise self._translate(exc, model) from exc

    async def model_copy(self, *, source: str, destination: str) -> None:
        try:
            await self._client().copy(source, destination)
        except Exception as exc:
            raise self._translate(exc, source) from exc

    async def _progress(self, start: Any, model: str) -> AsyncIterator[ProgressUpdate]:
        try:
            parts = await start()
        except Exception as exc:
            raise self._translate(exc, model) from exc
        try:
            async for part in parts:
                yield ProgressUpdate(
                    status=part.status or "",
                    digest=part.digest,
                    total=part.total,
                    completed=part.completed,
                )
        except Exception as exc:
            raise self._translate(exc, model) from exc
        finally:
            await parts.aclose()

    async def version(self) -> str:
        try:
            response = await self._client()._request_raw("GET", "/api/version")
            return str(response.json()["version"])
        except Exception as exc:
            raise self._translate(exc) from exc

    async def aclose(self) -> None:
        """Close the current event loop's client (others close when their loop ends)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()


# Strong references to the closers below: the loop tracks async generators weakly.
_loop_closers: set[AsyncIterator[None]] = set()


def _close_when_loop_ends(client: ollama.AsyncClient) -> None:
    """Close `client` (its aiohttp session) when its event loop shuts down.

    `asyncio.run()` and every runner built on it (uvicorn, pytest-asyncio)
    end by closing the async generators still open on the loop
    (`loop.shutdown_asyncgens()`), after cancelling the loop's tasks: this
    generator, started here and parked at its `yield`, is one of them. Without
    it the session stays open and asyncio reports "Unclosed client session"
    when the loop is gone. Costs nothing per request: one generator per loop.
    """

    async def closer() -> AsyncIterator[None]:
        try:
            yield
        finally:
            _loop_closers.discard(agen)
            await client.close()

    agen = closer()
    _loop_closers.add(agen)
    # Run it to its `yield` now: the first step registers it with the running
    # loop (sys.set_asyncgen_hooks' firstiter) and awaits nothing, so it
    # completes synchronously.
    step = agen.asend(None)
    try:
        step.send(None)
    except StopIteration:
        pass
    else:  # pragma: no cover - the generator awaits nothing before its yield
        raise RuntimeError("the loop closer did not stop at its yield")


class _ResponseStream(httpx.AsyncByteStream):
    """An aiohttp response body as httpx reads it, one object per response.

    httpx-aiohttp's own stream is an async generator over `iter_chunked`
    inside a context manager: four objects more per open stream, held for as
    long as the answer lasts, and one more generator step per chunk.
    """

    __slots__ = ("_response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    def __aiter__(self) -> _ResponseStream:
        return self

    async def __anext__(self) -> bytes:
        try:
            data = await self._response.content.readany()
        except Exception as exc:
            _raise_as_httpx(exc)
        if not data:
            raise StopAsyncIteration
        return data

    async def aclose(self) -> None:
        try:
            await self._response.__aexit__(None, None, None)
        except Exception as exc:
            _raise_as_httpx(exc)


def _raise_as_httpx(exc: Exception) -> NoReturn:
    """Raise `exc` as httpx-aiohttp maps it (an httpx error caused by aiohttp's)."""
    with map_aiohttp_exceptions():
        raise exc
    raise exc  # pragma: no cover - the context manager always raises


class _Transport(AiohttpTransport):
    """httpx-aiohttp's transport, with the lighter response stream above."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        stream = response.stream
        if isinstance(stream, AiohttpResponseStream):
            response.stream = _ResponseStream(stream._aiohttp_response)
        return response


def _aiohttp_session() -> aiohttp.ClientSession:
    """The connection pool to Ollama, made in the event loop that uses it.

    Unlimited connections: Ollama queues requests itself (and says 503 when
    full); a client-side limit would only add a second, silent queue.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=5.0),
        auto_decompress=False,
    )


def _chat_chunk(part: ollama.ChatResponse) -> ChatChunk:
    message = part.message
    calls = message.tool_calls
    chunk = ChatChunk(message.content or "", message.thinking, _tool_calls(calls) if calls else ())
    if part.logprobs:
        chunk.logprobs = _logprobs(part.logprobs)
    if part.done:  # only the last line carries the reason, counts and timings
        _finish(chunk, part)
    return chunk


def _generate_chunk(part: ollama.GenerateResponse) -> GenerateChunk:
    chunk = GenerateChunk(part.response or "", part.thinking)
    if part.logprobs:
        chunk.logprobs = _logprobs(part.logprobs)
    if part.done:
        _finish(chunk, part)
        chunk.context = list(part.context) if part.context is not None else None
    return chunk


def _finish(chunk: ChatChunk | GenerateChunk, part: Any) -> None:
    """The last line of a stream: done, with Ollama's reason, counts and timings."""
    chunk.done = True
    chunk.done_reason = part.done_reason
    chunk.prompt_tokens = part.prompt_eval_count or 0
    chunk.completion_tokens = part.eval_count or 0
    chunk.timings = _timings(part)


def _token_logprob(item: Any) -> TokenLogprob:
    token = item.token
    # ollama-python's model has no `bytes` (Ollama sends them): the token's own.
    return TokenLogprob(token=token, logprob=item.logprob, bytes=list(token.encode("utf-8")))


def _logprobs(items: Any) -> tuple[TokenLogprob, ...]:
    """Ollama's `logprobs` (one per generated token) in the core's terms."""
    if not items:
        return ()
    converted = []
    for item in items:
        entry = _token_logprob(item)
        top = item.top_logprobs
        if top:
            entry = TokenLogprob(
                token=entry.token,
                logprob=entry.logprob,
                bytes=entry.bytes,
                top=tuple(_token_logprob(alternative) for alternative in top),
            )
        converted.append(entry)
    return tuple(converted)


def _logprob_kwargs(params: GenerationParams) -> dict[str, Any]:
    """`logprobs` / `top_logprobs` for the client, only when asked for."""
    if not params.logprobs:
        return {}
    return {"logprobs": True, "top_logprobs": params.top_logprobs or None}


def _decoded_images(images: list[Any]) -> list[bytes]:
    """Base64 strings to bytes, strictly.

    ollama-python treats an image *string* that names an existing file as a
    path and uploads that file; handing it bytes means no string a caller
    sends can ever make the gateway read its own files.
    """
    decoded: list[bytes] = []
    for index, image in enumerate(images):
        if isinstance(image, bytes):
            decoded.append(image)
            continue
        try:
            decoded.append(base64.b64decode(str(image), validate=True))
        except (binascii.Error, ValueError):
            raise BadRequestError(
                f"Image {index} is not valid base64 data.", param="images"
            ) from None
    return decoded


def _safe_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**message, "images": _decoded_images(message["images"])}
        if message.get("images")
        else message
        for message in messages
    ]


# GenerationParams field -> Ollama option of the same meaning.
OLLAMA_OPTION_NAMES = {
    "max_tokens": "num_predict",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "stop": "stop",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "repeat_penalty": "repeat_penalty",
    "context_length": "num_ctx",
}


def ollama_options(params: GenerationParams) -> dict[str, Any] | None:
    """Ollama's `options` dict: the typed fields under Ollama's names, then `extra`."""
    options = dict(params.extra)
    for field_name, option in OLLAMA_OPTION_NAMES.items():
        value = getattr(params, field_name)
        if value is not None:
            options[option] = value
    return options or None


def _chat_kwargs(request: ChatRequest) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": request.model,
        "messages": _safe_messages(request.messages),
        "options": ollama_options(request.params),
        "format": request.format,
        "tools": request.tools,
        "think": request.think,
        "keep_alive": request.keep_alive,
        **_logprob_kwargs(request.params),
    }
    return {key: value for key, value in kwargs.items() if value is not None}


def _generate_kwargs(request: GenerateRequest) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": request.model,
        "prompt": request.prompt,
        "suffix": request.suffix,
        "system": request.system,
        "template": request.template,
        "context": request.context,
        "raw": request.raw,
        "images": _decoded_images(request.images) or None,
        "options": ollama_options(request.params),
        "format": request.format,
        "think": request.think,
        "keep_alive": request.keep_alive,
        **_logprob_kwargs(request.params),
    }
    return {key: value for key, value in kwargs.items() if value is not None}


def _timings(response: Any) -> Timings:
    return Timings(
        total_ns=response.total_duration or 0,
        load_ns=response.load_duration or 0,
        prompt_ns=getattr(response, "prompt_eval_duration", None) or 0,
        completion_ns=getattr(response, "eval_duration", None) or 0,
    )


def _model_description(model: str, data: dict[str, Any]) -> ModelDescription:
    details = data.get("details") or {}
    modified_at = data.get("modified_at")
    known = {
        "details", "modified_at", "capabilities", "template", "system", "license",
        "parameters", "modelfile", "model_info",
    }  # fmt: skip
    try:
        modified = datetime.fromisoformat(modified_at) if modified_at else None
    except (TypeError, ValueError):
        modified = None
    return ModelDescription(
        model=ModelInfo(
            id=model,
            family=details.get("family") or "",
            families=tuple(details.get("families") or ()),
            parameter_size=details.get("parameter_size") or "",
            quantization_level=details.get("quantization_level") or "",
            format=details.get("format") or "",
            modified_at=modified,
            capabilities=tuple(data.get("capabilities") or ()),
        ),
        parent_model=details.get("parent_model") or "",
        template=data.get("template") or "",
        system=data.get("system") or "",
        license=_text(data.get("license")),
        parameters=data.get("parameters") or "",
        modelfile=data.get("modelfile") or "",
        model_info=dict(data.get("model_info") or {}),
        extra={key: value for key, value in data.items() if key not in known},
    )


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(item) for item in value)
    return str(value or "")


def _tool_calls(calls: Any) -> list[ToolCall]:
    if not calls:
        return []
    return [
        ToolCall(
            name=call.function.name,
            arguments=dict(call.function.arguments or {}),
            id=(call.model_extra or {}).get("id"),
        )
        for call in calls
    ]


def _model_info(model: Any) -> ModelInfo:
    details = model.details
    modified_at = getattr(model, "modified_at", None)  # /api/ps entries have none
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
