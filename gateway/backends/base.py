"""Typed results and the backend protocol shared by every kind of backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


def normalize_model_name(name: str) -> str:
    """The canonical form Ollama matches on: lower case, `:latest` by default.

    `llama3.2` and `LLaMA3.2:latest` are the same model; a tag is whatever
    follows the last `:` after the last `/` (`host:port/ns/model` keeps its port).
    """
    name = name.strip().lower()
    last_segment = name.rsplit("/", 1)[-1]
    if ":" not in last_segment:
        name += ":latest"
    return name


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model the backend can serve."""

    id: str
    size_bytes: int = 0
    family: str = ""
    families: tuple[str, ...] = ()
    parameter_size: str = ""
    quantization_level: str = ""
    format: str = ""
    digest: str = ""
    modified_at: datetime | None = None
    capabilities: tuple[str, ...] = ()
    # The backends that have it (filled in by the pool when it merges lists).
    backends: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Timings:
    """How long the backend spent, in nanoseconds; 0 means "not reported"."""

    total_ns: int = 0
    load_ns: int = 0
    prompt_ns: int = 0
    completion_ns: int = 0


@dataclass(slots=True)
class ToolCall:
    """A function call the model asked for; `arguments` is a JSON object."""

    name: str
    arguments: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token and how likely the model found it.

    `logprob` is the natural log of its probability under the model's raw
    distribution (before sampling settings reshape it); `bytes` are the
    token's UTF-8 bytes (a token may hold part of a character); `top` are the
    most likely tokens at that step, most likely first (empty unless asked).
    """

    token: str
    logprob: float
    bytes: list[int] | None = None
    top: tuple[TokenLogprob, ...] = ()


@dataclass(slots=True)
class GenerationParams:
    """How to generate, in no backend's terms; `None` leaves the backend's default.

    Every surface fills these typed fields from its own names (`max_tokens`,
    `max_completion_tokens`, Ollama's `num_predict`, ...); each backend maps
    them to its own. `extra` carries options that exist in one backend only
    (Ollama's `mirostat`, `num_gpu`, ...), sent through `/ollama/`: a backend
    that cannot honour one raises `BadRequestError` naming it.
    """

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repeat_penalty: float | None = None
    context_length: int | None = None
    # Log probabilities of the generated tokens; `top_logprobs` alternatives per token.
    logprobs: bool = False
    top_logprobs: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ChatRequest:
    """A chat request in the backend's terms.

    `messages` are Ollama-shaped dicts (`role`, `content`, optional `images`,
    `tool_calls`, `tool_name`); `params` say how to generate.
    """

    model: str
    messages: list[dict[str, Any]]
    params: GenerationParams = field(default_factory=GenerationParams)
    format: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    think: bool | str | None = None
    keep_alive: float | str | None = None


NO_TIMINGS = Timings()


@dataclass(slots=True)
class ChatChunk:
    """One piece of a streamed answer; the last one has `done=True` and counts.

    Built once per token, so its defaults are shared immutable values
    (`tool_calls` is a sequence: an empty tuple unless the model called tools).
    """

    content: str = ""
    thinking: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    done: bool = False
    done_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    timings: Timings = NO_TIMINGS
    # The log probabilities of this chunk's tokens (only when asked for).
    logprobs: Sequence[TokenLogprob] = ()
    # Which of a request's `n` choices this chunk belongs to (set by the service).
    index: int = 0


@dataclass(slots=True)
class ChatResult:
    """A whole answer, with the backend's own token counts."""

    model: str
    content: str
    done_reason: str | None = None
    thinking: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    timings: Timings = field(default_factory=Timings)
    logprobs: Sequence[TokenLogprob] = ()


@dataclass(slots=True)
class GenerateRequest:
    """A raw prompt completion (no chat template of the caller's making).

    `images` are base64 strings; `context` is the token memory a previous
    answer returned (backends without one ignore it); `raw` skips the model's
    prompt template; `suffix` asks for fill-in-the-middle.
    """

    model: str
    prompt: str = ""
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: bool | None = None
    images: list[str] = field(default_factory=list)
    params: GenerationParams = field(default_factory=GenerationParams)
    format: str | dict[str, Any] | None = None
    think: bool | str | None = None
    keep_alive: float | str | None = None


@dataclass(slots=True)
class GenerateChunk:
    """One piece of a streamed completion; the last one has `done=True` and counts."""

    text: str = ""
    thinking: str | None = None
    done: bool = False
    done_reason: str | None = None
    context: list[int] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    timings: Timings = NO_TIMINGS
    logprobs: Sequence[TokenLogprob] = ()
    index: int = 0  # as `ChatChunk.index`


@dataclass(slots=True)
class GenerateResult:
    """A whole completion, with the backend's own token counts."""

    model: str
    text: str
    thinking: str | None = None
    done_reason: str | None = None
    context: list[int] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    timings: Timings = field(default_factory=Timings)
    logprobs: Sequence[TokenLogprob] = ()


@dataclass(slots=True)
class EmbedResult:
    """One vector per input, in input order.

    `input_tokens`: each input's own token count, when the backend can tell
    (the embedded engine's tokenizer); they sum to `prompt_tokens`. None when
    the backend reports only the call's total (Ollama's /api/embed).
    """

    model: str
    embeddings: list[list[float]]
    prompt_tokens: int = 0
    timings: Timings = field(default_factory=Timings)
    input_tokens: list[int] | None = None


@dataclass(slots=True)
class RunningModel:
    """A model loaded in memory right now (`model.size_bytes` is its memory size)."""

    model: ModelInfo
    size_vram: int = 0
    expires_at: datetime | None = None
    context_length: int = 0


@dataclass(slots=True)
class ModelDescription:
    """Everything the backend knows about one model.

    `model_info` is the model file's metadata (architecture, context length,
    ...); `extra` holds any further backend-specific fields, passed on as is.
    """

    model: ModelInfo
    parent_model: str = ""
    template: str = ""
    system: str = ""
    license: str = ""
    parameters: str = ""
    modelfile: str = ""
    model_info: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProgressUpdate:
    """One step of a long model operation (pull, push, create)."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


class InferenceBackend(Protocol):
    """What the service needs from a backend. Raise only `gateway.errors` errors.

    `parallel`: how many requests it runs at once per model; the scheduler
    sends it no more than that.
    """

    parallel: int

    async def list_models(self) -> list[ModelInfo]: ...

    async def chat(self, request: ChatRequest) -> ChatResult: ...

    def chat_stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Chunks as the backend produces them. Closing the iterator closes
        the backend request (so the backend stops generating)."""
        ...

    async def generate(self, request: GenerateRequest) -> GenerateResult: ...

    def generate_stream(self, request: GenerateRequest) -> AsyncIterator[GenerateChunk]:
        """Like `chat_stream`, for a raw prompt completion."""
        ...

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
        """One vector per input. `normalize=False` asks for raw (not
        L2-normalised) vectors, as Ollama's legacy embeddings endpoint gives;
        `extra` holds backend-specific options (as `GenerationParams.extra`)."""
        ...

    async def running_models(self) -> list[RunningModel]:
        """Models loaded in memory now, latest expiry first."""
        ...

    async def describe_model(self, *, model: str, verbose: bool = False) -> ModelDescription:
        """Details of one model; raises `ModelNotFoundError` when unknown."""
        ...

    async def version(self) -> str:
        """The backend's version; also the cheapest reachability probe."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ModelManager(Protocol):
    """Optional: backends that can fetch, build, copy and remove models.

    Kept apart from `InferenceBackend` because not every backend can (an
    embedded single-file model cannot pull). Long operations stream progress.
    """

    def model_pull(
        self, *, model: str, insecure: bool = False
    ) -> AsyncIterator[ProgressUpdate]: ...

    def model_push(
        self, *, model: str, insecure: bool = False
    ) -> AsyncIterator[ProgressUpdate]: ...

    def model_create(self, *, model: str, spec: dict[str, Any]) -> AsyncIterator[ProgressUpdate]:
        """`spec` holds the build instructions (`from`, `files`, `system`, ...)."""
        ...

    async def model_delete(self, *, model: str) -> None: ...

    async def model_copy(self, *, source: str, destination: str) -> None: ...
