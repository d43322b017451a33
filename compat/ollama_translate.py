"""Ollama shapes <-> the inference service's typed requests and results.

Pure functions and async generators, no I/O. Responses follow Ollama's own
server (`spec/wire.md` A): `created_at` RFC 3339 in UTC, metrics as integer
nanoseconds and counts, omitted when zero (Go's `omitempty`), NDJSON lines
with no blank lines and no terminator, and a failure after the first line as
one last `{"error": "..."}` line.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from gateway.backends import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    GenerateChunk,
    GenerateRequest,
    GenerateResult,
    GenerationParams,
    ModelDescription,
    ModelInfo,
    ProgressUpdate,
    RunningModel,
    Timings,
    ToolCall,
)
from gateway.backends.ollama import OLLAMA_OPTION_NAMES
from gateway.errors import APIError
from gateway.relay import BaseEncoder
from gateway.streaming import compact_json, iso_utc, json_object_head, json_string


def rfc3339(value: datetime | None = None) -> str:
    """`2025-10-26T17:21:21.196249Z`, as Ollama stamps its answers."""
    return _now_rfc3339() if value is None else iso_utc(value)


_second_stamp: tuple[int, str] = (0, "")


def _now_rfc3339() -> str:
    """Now, with microseconds: every streamed line is stamped, so the date and
    time of day are formatted once a second, not once a line."""
    global _second_stamp
    now = time.time()
    second = int(now)
    cached, text = _second_stamp
    if cached != second:
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second_stamp = (second, text)
    return f"{text}.{int((now - second) * 1e6):06d}Z"


def ndjson_line(payload: dict[str, Any]) -> bytes:
    return (compact_json(payload) + "\n").encode()


def error_line(exc: APIError) -> bytes:
    """The line Ollama writes when a stream fails after it began."""
    return ndjson_line({"error": exc.message})


def _metrics(prompt_tokens: int, completion_tokens: int, timings: Timings) -> dict[str, int]:
    metrics = {
        "total_duration": timings.total_ns,
        "load_duration": timings.load_ns,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": timings.prompt_ns,
        "eval_count": completion_tokens,
        "eval_duration": timings.completion_ns,
    }
    return {key: value for key, value in metrics.items() if value}


# --- requests -------------------------------------------------------------------


def params_from_options(
    options: dict[str, Any] | None, data: dict[str, Any] | None = None
) -> GenerationParams:
    """Ollama's `options`: the ones with a typed field go there, the rest in `extra`;
    `logprobs` / `top_logprobs` from the body `data`."""
    remaining = dict(options or {})
    typed = {
        field_name: remaining.pop(option)
        for field_name, option in OLLAMA_OPTION_NAMES.items()
        if option in remaining
    }
    logprobs = bool((data or {}).get("logprobs"))
    return GenerationParams(
        **typed,
        logprobs=logprobs,
        top_logprobs=(data or {}).get("top_logprobs") if logprobs else None,
        extra=remaining,
    )


def logprobs_list(logprobs: Any) -> list[dict[str, Any]]:
    """Ollama's `logprobs`: `[{"token", "logprob", "bytes", "top_logprobs"?}]`."""
    entries = []
    for item in logprobs:
        entry: dict[str, Any] = {"token": item.token, "logprob": item.logprob, "bytes": item.bytes}
        if item.top:
            entry["top_logprobs"] = [
                {"token": top.token, "logprob": top.logprob, "bytes": top.bytes} for top in item.top
            ]
        entries.append(entry)
    return entries


def chat_request_from(data: dict[str, Any]) -> ChatRequest:
    """The backend request for a validated `/api/chat` body."""
    messages: list[dict[str, Any]] = []
    for message in data.get("messages") or []:
        native = {key: value for key, value in message.items() if value not in (None, "", [])}
        native["role"] = message["role"]
        native.setdefault("content", "")
        messages.append(native)
    return ChatRequest(
        model=data["model"],
        messages=messages,
        params=params_from_options(data.get("options"), data),
        format=data.get("format"),
        tools=data.get("tools") or None,
        think=data.get("think"),
        keep_alive=data.get("keep_alive"),
    )


def generate_request_from(data: dict[str, Any]) -> GenerateRequest:
    """The backend request for a validated `/api/generate` body."""
    return GenerateRequest(
        model=data["model"],
        prompt=data.get("prompt") or "",
        suffix=data.get("suffix") or None,
        system=data.get("system") or None,
        template=data.get("template") or None,
        context=data.get("context") or None,
        raw=data.get("raw"),
        images=list(data.get("images") or []),
        params=params_from_options(data.get("options"), data),
        format=data.get("format"),
        think=data.get("think"),
        keep_alive=data.get("keep_alive"),
    )


# --- models ---------------------------------------------------------------------


def _details(model: ModelInfo, parent_model: str = "") -> dict[str, Any]:
    return {
        "parent_model": parent_model,
        "format": model.format,
        "family": model.family,
        "families": list(model.families) or None,
        "parameter_size": model.parameter_size,
        "quantization_level": model.quantization_level,
    }


def tag_entry(model: ModelInfo) -> dict[str, Any]:
    """One model as `/api/tags` lists it."""
    entry: dict[str, Any] = {
        "name": model.id,
        "model": model.id,
        "modified_at": rfc3339(model.modified_at) if model.modified_at else None,
        "size": model.size_bytes,
        "digest": model.digest,
        "details": _details(model),
    }
    if model.capabilities:
        entry["capabilities"] = list(model.capabilities)
    if model.backends:  # several backends: the ones that have it
        entry["backends"] = list(model.backends)
    return {key: value for key, value in entry.items() if value is not None}


def running_entry(running: RunningModel) -> dict[str, Any]:
    """One model as `/api/ps` lists it."""
    model = running.model
    entry: dict[str, Any] = {
        "name": model.id,
        "model": model.id,
        "size": model.size_bytes,
        "digest": model.digest,
        "details": _details(model),
        "expires_at": rfc3339(running.expires_at) if running.expires_at else None,
        "size_vram": running.size_vram,
        "context_length": running.context_length,
    }
    return {key: value for key, value in entry.items() if value is not None}


def show_body(description: ModelDescription) -> dict[str, Any]:
    """`/api/show`: empty strings omitted, `model_info` always present."""
    model = description.model
    body: dict[str, Any] = {
        "license": description.license,
        "modelfile": description.modelfile,
        "parameters": description.parameters,
        "template": description.template,
        "system": description.system,
    }
    body = {key: value for key, value in body.items() if value}
    body["details"] = _details(model, description.parent_model)
    body["model_info"] = description.model_info
    if model.capabilities:
        body["capabilities"] = list(model.capabilities)
    if model.modified_at:
        body["modified_at"] = rfc3339(model.modified_at)
    for key, value in description.extra.items():
        body.setdefault(key, value)
    return body


def progress_line(update: ProgressUpdate) -> dict[str, Any]:
    line: dict[str, Any] = {"status": update.status}
    if update.digest:
        line["digest"] = update.digest
    if update.total is not None:
        line["total"] = update.total
    if update.completed is not None:
        line["completed"] = update.completed
    return line


# --- responses ------------------------------------------------------------------


def _tool_calls(calls: list[ToolCall], first_index: int = 0) -> list[dict[str, Any]]:
    converted = []
    for offset, call in enumerate(calls):
        item: dict[str, Any] = {
            "function": {
                "index": first_index + offset,
                "name": call.name,
                "arguments": call.arguments,
            }
        }
        if call.id:
            item = {"id": call.id, **item}
        converted.append(item)
    return converted


def _message(
    content: str, thinking: str | None, tool_calls: list[ToolCall], first_tool_index: int = 0
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    if tool_calls:
        message["tool_calls"] = _tool_calls(tool_calls, first_tool_index)
    return message


def chat_body(result: ChatResult, *, model: str) -> dict[str, Any]:
    """A whole `/api/chat` answer."""
    return {
        "model": model,
        "created_at": rfc3339(),
        "message": _message(result.content, result.thinking, result.tool_calls),
        "done": True,
        "done_reason": result.done_reason or "stop",
        **_metrics(result.prompt_tokens, result.completion_tokens, result.timings),
        **({"logprobs": logprobs_list(result.logprobs)} if result.logprobs else {}),
    }


def generate_body(result: GenerateResult, *, model: str) -> dict[str, Any]:
    """A whole `/api/generate` answer."""
    body: dict[str, Any] = {"model": model, "created_at": rfc3339(), "response": result.text}
    if result.thinking:
        body["thinking"] = result.thinking
    body["done"] = True
    body["done_reason"] = result.done_reason or "stop"
    if result.context is not None:
        body["context"] = result.context
    body.update(_metrics(result.prompt_tokens, result.completion_tokens, result.timings))
    if result.logprobs:
        body["logprobs"] = logprobs_list(result.logprobs)
    return body


class _LinesEncoder(BaseEncoder[Any, bytes]):
    """NDJSON lines; a failure after the stream began is Ollama's `{"error": ...}` line."""

    __slots__ = ()

    def failure(self, error: APIError) -> bytes:
        return error_line(error)


class ChatLinesEncoder(_LinesEncoder):
    """`/api/chat` NDJSON: one line per backend chunk as it arrives."""

    __slots__ = ("model", "start", "tools")

    def __init__(self, *, model: str) -> None:
        self.model = model
        # A token's line differs only in its time and text: the rest is encoded once.
        self.start = json_object_head({"model": model}) + ',"created_at":"'
        self.tools = 0

    def piece(self, chunk: ChatChunk) -> bytes:
        if not (chunk.done or chunk.thinking or chunk.tool_calls or chunk.logprobs):
            return (
                f'{self.start}{rfc3339()}","message":{{"role":"assistant","content":'
                f'{json_string(chunk.content)}}},"done":false}}\n'
            ).encode()
        line: dict[str, Any] = {
            "model": self.model,
            "created_at": rfc3339(),
            "message": _message(chunk.content, chunk.thinking, chunk.tool_calls, self.tools),
            "done": chunk.done,
        }
        self.tools += len(chunk.tool_calls)
        if chunk.done:
            line["done_reason"] = chunk.done_reason or "stop"
            line.update(_metrics(chunk.prompt_tokens, chunk.completion_tokens, chunk.timings))
        if chunk.logprobs:
            line["logprobs"] = logprobs_list(chunk.logprobs)
        return ndjson_line(line)


class GenerateLinesEncoder(_LinesEncoder):
    """`/api/generate` NDJSON: one line per backend chunk as it arrives."""

    __slots__ = ("model", "start")

    def __init__(self, *, model: str) -> None:
        self.model = model
        self.start = json_object_head({"model": model}) + ',"created_at":"'

    def piece(self, chunk: GenerateChunk) -> bytes:
        if not (chunk.done or chunk.thinking or chunk.logprobs):
            return (
                f'{self.start}{rfc3339()}","response":{json_string(chunk.text)},"done":false}}\n'
            ).encode()
        line: dict[str, Any] = {
            "model": self.model,
            "created_at": rfc3339(),
            "response": chunk.text,
        }
        if chunk.thinking:
            line["thinking"] = chunk.thinking
        line["done"] = chunk.done
        if chunk.done:
            line["done_reason"] = chunk.done_reason or "stop"
            if chunk.context is not None:
                line["context"] = chunk.context
            line.update(_metrics(chunk.prompt_tokens, chunk.completion_tokens, chunk.timings))
        if chunk.logprobs:
            line["logprobs"] = logprobs_list(chunk.logprobs)
        return ndjson_line(line)


class ProgressLinesEncoder(_LinesEncoder):
    """Pull / push / create progress as NDJSON, as Ollama streams it."""

    __slots__ = ()

    def piece(self, chunk: ProgressUpdate) -> bytes:
        return ndjson_line(progress_line(chunk))
