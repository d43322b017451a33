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
from collections.abc import Sequence
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
    TokenLogprob,
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


def _params(data: dict[str, Any], *, logprobs: bool, top_logprobs: int | None) -> GenerationParams:
    return GenerationParams(
        max_tokens=data.get("max_completion_tokens") or data.get("max_tokens"),
        temperature=data.get("temperature"),
        top_p=data.get("top_p"),
        seed=data.get("seed"),
        frequency_penalty=data.get("frequency_penalty"),
        presence_penalty=data.get("presence_penalty"),
        stop=data.get("stop") or None,
        logprobs=logprobs,
        top_logprobs=top_logprobs if logprobs else None,
    )


def choices_wanted(data: dict[str, Any]) -> int:
    """OpenAI's `n` (checked against GATEWAY_MAX_CHOICES by the serializer)."""
    return data.get("n") or 1


def chat_logprobs_wanted(data: dict[str, Any]) -> bool:
    return bool(data.get("logprobs"))


def completion_logprobs_wanted(data: dict[str, Any]) -> bool:
    """The legacy `logprobs` is a number of alternatives: 0 asks for the chosen tokens'."""
    return data.get("logprobs") is not None


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
        params=_params(
            data, logprobs=chat_logprobs_wanted(data), top_logprobs=data.get("top_logprobs")
        ),
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
        params=_params(
            data, logprobs=completion_logprobs_wanted(data), top_logprobs=data.get("logprobs")
        ),
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


def chat_logprobs(logprobs: Sequence[TokenLogprob]) -> dict[str, Any]:
    """A chat choice's `logprobs`: `{"content": [...], "refusal": null}`."""
    return {
        "content": [
            {
                "token": item.token,
                "logprob": item.logprob,
                "bytes": item.bytes,
                "top_logprobs": [
                    {"token": top.token, "logprob": top.logprob, "bytes": top.bytes}
                    for top in item.top
                ],
            }
            for item in logprobs
        ],
        "refusal": None,
    }


def completion_logprobs(logprobs: Sequence[TokenLogprob], offset: int = 0) -> dict[str, Any]:
    """A (legacy) completion choice's `logprobs`; offsets into the generated text
    start at `offset` (where the previous chunk of a stream ended)."""
    offsets = []
    for item in logprobs:
        offsets.append(offset)
        offset += len(item.token)
    return {
        "tokens": [item.token for item in logprobs],
        "token_logprobs": [item.logprob for item in logprobs],
        # The most likely tokens, and the chosen one (OpenAI: up to logprobs + 1).
        "top_logprobs": [
            {**{top.token: top.logprob for top in item.top}, item.token: item.logprob}
            for item in logprobs
        ],
        "text_offset": offsets,
    }


def _summed_usage(results: Sequence[ChatResult | GenerateResult]) -> dict[str, int]:
    """One usage for all choices: their prompt and completion tokens summed."""
    return usage(
        sum(result.prompt_tokens for result in results),
        sum(result.completion_tokens for result in results),
    )


def _chat_choice(index: int, result: ChatResult, logprobs: bool) -> dict[str, Any]:
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
        "index": index,
        "message": message,
        "logprobs": chat_logprobs(result.logprobs) if logprobs else None,
        "finish_reason": finish_reason(result.done_reason, tool_calls=bool(result.tool_calls)),
    }


def chat_completion(
    results: Sequence[ChatResult],
    *,
    completion_id: str,
    created: int,
    model: str,
    logprobs: bool = False,
) -> dict[str, Any]:
    """A whole `chat.completion` object: one choice per result (OpenAI's `n`)."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [_chat_choice(index, result, logprobs) for index, result in enumerate(results)],
        "usage": _summed_usage(results),
    }


def _event_frames(
    completion_id: str,
    kind: str,
    created: int,
    model: str,
    include_usage: bool,
    field: str,
    choices: int,
) -> tuple[list[str], str]:
    """The constant start (up to the choice's `field`) of each choice's events, and
    the end every event shares.

    `prefixes[i] + <field's JSON> + ',"logprobs":null,"finish_reason":...}]' + end`
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
    prefixes = [f'data: {head},"choices":[{{"index":{index},{field}' for index in range(choices)]
    return prefixes, end


class _ChoicesEncoder(SSEEncoder[Any]):
    """What the OpenAI stream encoders share: n choices, usage summed over them."""

    __slots__ = (
        "completion_tokens",
        "created",
        "end",
        "finished",
        "id",
        "include_usage",
        "logprobs",
        "model",
        "prefixes",
        "prompt_tokens",
    )  # fmt: skip

    # Each subclass's object type and the field its text goes in.
    kind = ""
    field = ""

    def __init__(
        self,
        *,
        completion_id: str,
        created: int,
        model: str,
        include_usage: bool,
        choices: int = 1,
        logprobs: bool = False,
    ) -> None:
        self.id, self.created, self.model = completion_id, created, model
        self.include_usage, self.logprobs = include_usage, logprobs
        # The events differ only in their choice, delta and finish reason: the
        # rest is encoded once per stream.
        self.prefixes, self.end = _event_frames(
            completion_id, self.kind, created, model, include_usage, self.field, choices
        )
        self.finished = 0
        self.prompt_tokens = self.completion_tokens = 0

    def _finished(self, chunk: ChatChunk | GenerateChunk) -> list[bytes]:
        """After a choice's final chunk: the usage chunk once the last choice has ended."""
        self.finished += 1
        self.prompt_tokens += chunk.prompt_tokens
        self.completion_tokens += chunk.completion_tokens
        if not self.include_usage or self.finished < len(self.prefixes):
            return []
        return [
            sse_event(
                {
                    "id": self.id,
                    "object": self.kind,
                    "created": self.created,
                    "model": self.model,
                    "system_fingerprint": None,
                    "choices": [],
                    "usage": usage(self.prompt_tokens, self.completion_tokens),
                }
            )
        ]


class ChatCompletionEncoder(_ChoicesEncoder):
    """`chat.completion.chunk` SSE events in OpenAI's order, then `[DONE]`.

    Role chunk first (one per choice), content (and tool-call, reasoning)
    deltas as the backend produces them, a finish chunk per choice, the usage
    chunk when asked for, `[DONE]`. With `n`, every event names its choice's
    `index`. A failure after the first byte ends the stream with `data:
    {"error": ...}` and no `[DONE]` (the relay's rule), which the openai SDK
    raises as `APIError`.
    """

    __slots__ = ("text_end", "tools")
    kind = "chat.completion.chunk"
    field = '"delta":'

    def __init__(self, *, choices: int = 1, **frame: Any) -> None:
        super().__init__(choices=choices, **frame)
        self.text_end = f',"logprobs":null,"finish_reason":null}}]{self.end}'
        self.tools = [0] * choices

    def _event(
        self,
        index: int,
        delta: dict[str, Any],
        finish: str | None = None,
        logprobs: Sequence[TokenLogprob] = (),
    ) -> bytes:
        logprobs_json = compact_json(chat_logprobs(logprobs)) if logprobs else "null"
        return (
            f'{self.prefixes[index]}{compact_json(delta)},"logprobs":{logprobs_json},'
            f'"finish_reason":{compact_json(finish)}}}]{self.end}'
        ).encode()

    def opening(self) -> list[bytes]:
        return [
            self._event(index, {"role": "assistant", "content": ""})
            for index in range(len(self.prefixes))
        ]

    def piece(self, chunk: ChatChunk) -> bytes | None:
        index = chunk.index
        if not (chunk.thinking or chunk.tool_calls or (self.logprobs and chunk.logprobs)):
            if not chunk.content:
                return None
            return (
                f'{self.prefixes[index]}{{"content":{json_string(chunk.content)}}}{self.text_end}'
            ).encode()
        events = []
        if chunk.thinking:
            events.append(self._event(index, {"reasoning": chunk.thinking}))
        if chunk.content or (self.logprobs and chunk.logprobs):
            logprobs = chunk.logprobs if self.logprobs else ()
            events.append(self._event(index, {"content": chunk.content}, logprobs=logprobs))
        if chunk.tool_calls:
            first = self.tools[index]
            calls = [
                tool_call_object(call, first + offset)
                for offset, call in enumerate(chunk.tool_calls)
            ]
            self.tools[index] += len(calls)
            events.append(self._event(index, {"tool_calls": calls}))
        return b"".join(events)

    def closing(self, chunk: ChatChunk) -> list[bytes]:
        events = []
        last_piece = self.piece(chunk)
        if last_piece is not None:
            events.append(last_piece)
        reason = finish_reason(chunk.done_reason, tool_calls=self.tools[chunk.index] > 0)
        events.append(self._event(chunk.index, {}, reason))
        events.extend(self._finished(chunk))
        return events


def completion_object(
    results: Sequence[GenerateResult],
    *,
    completion_id: str,
    created: int,
    model: str,
    logprobs: bool = False,
) -> dict[str, Any]:
    """A whole `text_completion` object: one choice per result (OpenAI's `n`)."""
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": index,
                "text": result.text,
                "logprobs": completion_logprobs(result.logprobs) if logprobs else None,
                "finish_reason": finish_reason(result.done_reason, tool_calls=False),
            }
            for index, result in enumerate(results)
        ],
        "usage": _summed_usage(results),
    }


class CompletionEncoder(_ChoicesEncoder):
    """`text_completion` SSE events, the finish reason on each choice's last, then `[DONE]`."""

    __slots__ = ("offsets",)
    kind = "text_completion"
    field = '"text":'

    def __init__(self, *, choices: int = 1, **frame: Any) -> None:
        super().__init__(choices=choices, **frame)
        # Where each choice's next token starts in its generated text.
        self.offsets = [0] * choices

    def _event(self, chunk: GenerateChunk, finish: str | None = None) -> bytes:
        logprobs_json = "null"
        if self.logprobs and chunk.logprobs:
            logprobs = completion_logprobs(chunk.logprobs, self.offsets[chunk.index])
            self.offsets[chunk.index] += sum(len(item.token) for item in chunk.logprobs)
            logprobs_json = compact_json(logprobs)
        return (
            f'{self.prefixes[chunk.index]}{json_string(chunk.text)},"logprobs":{logprobs_json},'
            f'"finish_reason":{compact_json(finish)}}}]{self.end}'
        ).encode()

    def piece(self, chunk: GenerateChunk) -> bytes | None:
        if chunk.text or (self.logprobs and chunk.logprobs):
            return self._event(chunk)
        return None

    def closing(self, chunk: GenerateChunk) -> list[bytes]:
        events = [self._event(chunk, finish_reason(chunk.done_reason, tool_calls=False))]
        events.extend(self._finished(chunk))
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
