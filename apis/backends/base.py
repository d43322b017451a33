"""Typed results and the backend protocol shared by every kind of backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


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


@dataclass(slots=True)
class ToolCall:
    """A function call the model asked for; `arguments` is a JSON object."""

    name: str
    arguments: dict[str, Any]
    id: str | None = None


@dataclass(slots=True)
class ChatRequest:
    """A chat request in the backend's terms.

    `messages` are Ollama-shaped dicts (`role`, `content`, optional `images`,
    `tool_calls`, `tool_name`); `options` are Ollama options (`temperature`,
    `num_predict`, `top_p`, `seed`, `stop`, ...).
    """

    model: str
    messages: list[dict[str, Any]]
    options: dict[str, Any] = field(default_factory=dict)
    format: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    think: bool | str | None = None
    keep_alive: float | str | None = None


@dataclass(slots=True)
class ChatChunk:
    """One piece of a streamed answer; the last one has `done=True` and counts."""

    content: str = ""
    thinking: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    done: bool = False
    done_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


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


@dataclass(slots=True)
class EmbedResult:
    """One vector per input, in input order."""

    model: str
    embeddings: list[list[float]]
    prompt_tokens: int = 0


class InferenceBackend(Protocol):
    """What the service needs from a backend. Raise only `apis.errors` errors."""

    async def list_models(self) -> list[ModelInfo]: ...

    async def chat(self, request: ChatRequest) -> ChatResult: ...

    def chat_stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Chunks as the backend produces them. Closing the iterator closes
        the backend request (so the backend stops generating)."""
        ...

    async def embed(
        self, *, model: str, inputs: list[str], dimensions: int | None = None
    ) -> EmbedResult: ...

    async def version(self) -> str:
        """The backend's version; also the cheapest reachability probe."""
        ...

    async def aclose(self) -> None: ...
