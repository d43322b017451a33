"""OpenAI shapes <-> the inference service's typed requests and results.

Pure functions and async generators, no I/O: the views call these and
`gateway.service`. Mapping (see `spec/wire.md` D.6): `max_tokens` /
`max_completion_tokens` -> `options.num_predict`, `stop` -> `options.stop`,
image data URLs -> `images`, usage from the backend's own token counts.
Requests arrive checked by `compat.openai_serializers`, whose fields already
give `response_format` as `format`, tools and tool-call arguments as objects.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import struct
import time
import uuid
from typing import Any

from gateway.backends import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    GenerateChunk,
    GenerateRequest,
    GenerateResult,
    GenerationParams,
    ModelInfo,
    ToolCall,
)
from gateway.errors import BadRequestError
from gateway.relay import SSEEncoder
from gateway.streaming import (
    compact_json,
    json_object_head,
    json_string,
    sse_event,
)

# OpenAI's reasoning_effort -> Ollama's `think`.
_THINK = {"none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high"}
_ALPHANUM = string.ascii_lowercase + string.digits


def unix_now() -> int:
    return int(time.time())


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def tool_call_id() -> str:
    """`call_` + 8 lowercase alphanumerics, as Ollama makes them."""
    return "call_" + "".join(secrets.choice(_ALPHANUM) for _ in range(8))


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


# --- models ---------------------------------------------------------------------


def owned_by(model_id: str) -> str:
    """The namespace of a model name: `library` for official models."""
    parts = model_id.split(":", 1)[0].split("/")
    return parts[-2] if len(parts) > 1 else "library"


def model_object(model: ModelInfo, *, model_id: str | None = None) -> dict[str, Any]:
    """One model as OpenAI lists it; `owned_by` is the backend that has it when
    there are several (the first, when several have it), else its namespace."""
    return {
        "id": model_id or model.id,
        "object": "model",
        "created": int(model.modified_at.timestamp()) if model.modified_at else 0,
        "owned_by": model.backends[0] if model.backends else owned_by(model.id),
    }


# --- requests -------------------------------------------------------------------


def _params(data: dict[str, Any]) -> GenerationParams:
    return GenerationParams(
        max_tokens=data.get("max_completion_tokens") or data.get("max_tokens"),
        temperature=data.get("temperature"),
        top_p=data.get("top_p"),
        seed=data.get("seed"),
        frequency_penalty=data.get("frequency_penalty"),
        presence_penalty=data.get("presence_penalty"),
        stop=data.get("stop") or None,
    )


def _content(content: Any) -> tuple[str, list[str]]:
    """Text and base64 images of one message's `content` (checked by `ContentField`)."""
    if not isinstance(content, list):
        return content or "", []
    texts: list[str] = []
    images: list[str] = []
    for part in content:
        if part["type"] == "image_url":
            image_url = part["image_url"]
            url = image_url["url"] if isinstance(image_url, dict) else image_url
            images.append(url.partition(",")[2])
        else:
            texts.append(part["text"] if part["type"] == "text" else str(part.get("refusal") or ""))
    return "".join(texts), images


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    converted: list[dict[str, Any]] = []
    names_by_id: dict[str, str] = {}
    for message in messages:
        role = "system" if message["role"] == "developer" else message["role"]
        text, images = _content(message.get("content"))
        native: dict[str, Any] = {"role": role, "content": text}
        if images:
            native["images"] = images
        for call in message.get("tool_calls") or ():
            if call.get("id"):
                names_by_id[str(call["id"])] = call["function"]["name"]
        if message.get("tool_calls") and role == "assistant":
            # Ollama reads tool calls from the assistant's messages only.
            native["tool_calls"] = [
                {
                    "function": call["function"],
                    **({"id": str(call["id"])} if call.get("id") else {}),
                }
                for call in message["tool_calls"]
            ]
        if role == "tool":
            # Ollama links a tool result to its call by the function's name.
            name = message.get("name") or names_by_id.get(str(message.get("tool_call_id")))
            if name:
                native["tool_name"] = name
        converted.append(native)
    return converted


def _tools(tools: list[dict[str, Any]] | None, tool_choice: Any) -> list[dict[str, Any]] | None:
    """The tools (Ollama-shaped by `ToolsField`), narrowed by `tool_choice`.

    Ollama has no `tool_choice`: `none` sends no tools, a named function sends
    only that one; `auto` and `required` send them all (the model decides).
    """
    if not tools or tool_choice == "none":
        return None
    if isinstance(tool_choice, dict):
        wanted = tool_choice["function"]["name"]
        chosen = [tool for tool in tools if tool["function"]["name"] == wanted]
        if not chosen:
            raise BadRequestError(
                f"tool_choice names {wanted!r}, which is not in tools.", param="tool_choice"
            )
        return chosen
    return tools


def chat_request_from(data: dict[str, Any]) -> ChatRequest:
    """The backend request for a validated OpenAI chat body (400 if it can't be honoured)."""
    effort = data.get("reasoning_effort")
    return ChatRequest(
        model=data["model"],
        messages=_messages(data["messages"]),
        params=_params(data),
        format=data.get("response_format"),
        tools=_tools(data.get("tools"), data.get("tool_choice")),
        think=None if effort is None else _THINK[effort],
    )


def completion_request_from(data: dict[str, Any]) -> GenerateRequest:
    """The backend request for a validated OpenAI (legacy) completions body."""
    return GenerateRequest(
        model=data["model"],
        prompt=data["prompt"],
        suffix=data.get("suffix") or None,
        params=_params(data),
    )


# --- responses ------------------------------------------------------------------


def finish_reason(done_reason: str | None, *, tool_calls: bool) -> str:
    if done_reason == "length":
        return "length"
    return "tool_calls" if tool_calls else "stop"


def tool_call_object(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": call.id or tool_call_id(),
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
    }
    if index is not None:
        item = {"index": index, **item}
    return item


def chat_completion(
    result: ChatResult, *, completion_id: str, created: int, model: str
) -> dict[str, Any]:
    """A whole `chat.completion` object."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": result.content or (None if result.tool_calls else ""),
        "refusal": None,
    }
    if result.tool_calls:
        message["tool_calls"] = [tool_call_object(call) for call in result.tool_calls]
    if result.thinking:
        message["reasoning"] = result.thinking
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(
                    result.done_reason, tool_calls=bool(result.tool_calls)
                ),
            }
        ],
        "usage": usage(result.prompt_tokens, result.completion_tokens),
    }


def _event_frame(
    completion_id: str, kind: str, created: int, model: str, include_usage: bool, field: str
) -> tuple[str, str]:
    """The constant start (up to the choice's `field`) and end of a stream's events.

    `prefix + <field's JSON> + ',"logprobs":null,"finish_reason":...}]' + end`
    is the `data:` event `sse_event` would write for the whole object, byte for byte.
    """
    head = json_object_head(
        {
            "id": completion_id,
            "object": kind,
            "created": created,
            "model": model,
            "system_fingerprint": None,
        }
    )
    end = ',"usage":null}\n\n' if include_usage else "}\n\n"
    return f'data: {head},"choices":[{{"index":0,{field}', end


class ChatCompletionEncoder(SSEEncoder[ChatChunk]):
    """`chat.completion.chunk` SSE events in OpenAI's order, then `[DONE]`.

    Role chunk first, content (and tool-call, reasoning) deltas as the backend
    produces them, a finish chunk, the usage chunk when asked for, `[DONE]`.
    A failure after the first byte ends the stream with `data: {"error": ...}`
    and no `[DONE]` (the relay's rule), which the openai SDK raises as `APIError`.
    """

    __slots__ = ("created", "end", "id", "include_usage", "model", "prefix", "text_end", "tools")

    def __init__(
        self, *, completion_id: str, created: int, model: str, include_usage: bool
    ) -> None:
        self.id, self.created, self.model = completion_id, created, model
        self.include_usage = include_usage
        # The events differ only in their delta and finish reason: the rest is
        # encoded once per stream.
        self.prefix, self.end = _event_frame(
            completion_id, "chat.completion.chunk", created, model, include_usage, '"delta":'
        )
        self.text_end = f',"logprobs":null,"finish_reason":null}}]{self.end}'
        self.tools = 0

    def _event(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return (
            f'{self.prefix}{compact_json(delta)},"logprobs":null,'
            f'"finish_reason":{compact_json(finish)}}}]{self.end}'
        ).encode()

    def opening(self) -> tuple[bytes]:
        return (self._event({"role": "assistant", "content": ""}),)

    def piece(self, chunk: ChatChunk) -> bytes | None:
        if not (chunk.thinking or chunk.tool_calls):
            if not chunk.content:
                return None
            return (
                f'{self.prefix}{{"content":{json_string(chunk.content)}}}{self.text_end}'.encode()
            )
        events = []
        if chunk.thinking:
            events.append(
                f'{self.prefix}{{"reasoning":{json_string(chunk.thinking)}}}{self.text_end}'.encode()
            )
        if chunk.content:
            events.append(
                f'{self.prefix}{{"content":{json_string(chunk.content)}}}{self.text_end}'.encode()
            )
        if chunk.tool_calls:
            calls = [
                tool_call_object(call, self.tools + offset)
                for offset, call in enumerate(chunk.tool_calls)
            ]
            self.tools += len(calls)
            events.append(self._event({"tool_calls": calls}))
        return b"".join(events)

    def closing(self, chunk: ChatChunk) -> list[bytes]:
        events = []
        last_piece = self.piece(chunk)
        if last_piece is not None:
            events.append(last_piece)
        events.append(self._event({}, finish_reason(chunk.done_reason, tool_calls=self.tools > 0)))
        if self.include_usage:
            events.append(_usage_event(self, "chat.completion.chunk", chunk))
        return events


def _usage_event(
    encoder: ChatCompletionEncoder | CompletionEncoder, kind: str, chunk: ChatChunk | GenerateChunk
) -> bytes:
    """The extra usage chunk of `stream_options.include_usage`."""
    return sse_event(
        {
            "id": encoder.id,
            "object": kind,
            "created": encoder.created,
            "model": encoder.model,
            "system_fingerprint": None,
            "choices": [],
            "usage": usage(chunk.prompt_tokens, chunk.completion_tokens),
        }
    )


def completion_object(
    result: GenerateResult, *, completion_id: str, created: int, model: str
) -> dict[str, Any]:
    """A whole `text_completion` object."""
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "text": result.text,
                "logprobs": None,
                "finish_reason": finish_reason(result.done_reason, tool_calls=False),
            }
        ],
        "usage": usage(result.prompt_tokens, result.completion_tokens),
    }


class CompletionEncoder(SSEEncoder[GenerateChunk]):
    """`text_completion` SSE events, the finish reason on the last, then `[DONE]`."""

    __slots__ = ("created", "end", "id", "include_usage", "model", "prefix")

    def __init__(
        self, *, completion_id: str, created: int, model: str, include_usage: bool
    ) -> None:
        self.id, self.created, self.model = completion_id, created, model
        self.include_usage = include_usage
        self.prefix, self.end = _event_frame(
            completion_id, "text_completion", created, model, include_usage, '"text":'
        )

    def _event(self, text: str, finish: str | None = None) -> bytes:
        return (
            f'{self.prefix}{json_string(text)},"logprobs":null,'
            f'"finish_reason":{compact_json(finish)}}}]{self.end}'
        ).encode()

    def piece(self, chunk: GenerateChunk) -> bytes | None:
        return self._event(chunk.text) if chunk.text else None

    def closing(self, chunk: GenerateChunk) -> list[bytes]:
        events = [self._event(chunk.text, finish_reason(chunk.done_reason, tool_calls=False))]
        if self.include_usage:
            events.append(_usage_event(self, "text_completion", chunk))
        return events


def embedding_base64(vector: list[float]) -> str:
    """Little-endian float32 bytes, base64-encoded (what the openai SDK decodes)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def embedding_list(
    embeddings: list[list[float]], *, model: str, encoding_format: str, prompt_tokens: int
) -> dict[str, Any]:
    encode = embedding_base64 if encoding_format == "base64" else (lambda vector: vector)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": encode(vector), "index": index}
            for index, vector in enumerate(embeddings)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
