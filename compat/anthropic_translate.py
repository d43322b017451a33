"""Anthropic Messages shapes <-> the inference service's typed requests and results.

Pure functions and an encoder, no I/O: `compat.anthropic_views` calls these
and `gateway.service`. Mapping: `system` -> a system message, content blocks
(`text`, base64 `image`, `tool_use`, `tool_result`) -> Ollama-shaped messages,
`max_tokens` / `stop_sequences` / `temperature` / `top_p` / `top_k` ->
`GenerationParams`, `tools[].input_schema` -> function parameters,
`thinking` -> `think`. Tool-use ids travel both ways (`toolu_...` as the
backend's call id when it gives one).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import string
from typing import Any

from gateway.backends import ChatChunk, ChatRequest, ChatResult, GenerationParams, ToolCall
from gateway.errors import APIError, BadRequestError
from gateway.relay import BaseEncoder
from gateway.validation import tool_problem

_ALPHANUM = string.ascii_letters + string.digits

# The error `type` Anthropic's API gives for each status (its SDK picks the
# exception class from the status, and shows the type and message).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def error_object(error: APIError, status: int | None = None) -> dict[str, Any]:
    """Anthropic's error body: `{"type": "error", "error": {"type", "message"}}`.

    `code` and `param` are the gateway's own (extra keys the SDK ignores).
    """
    return {
        "type": "error",
        "error": {
            "type": error_type(status or error.status),
            "message": error.message,
            "code": error.code,
            "param": error.param,
        },
    }


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHANUM) for _ in range(24))


# --- requests -------------------------------------------------------------------


def _image(block: dict[str, Any], param: str) -> str:
    source = block.get("source")
    if not isinstance(source, dict) or source.get("type") != "base64":
        raise BadRequestError(
            "Only base64 image sources are supported (no URLs: nothing is fetched).",
            param=f"{param}.source",
        )
    if "media_type" in source and not isinstance(source["media_type"], str):
        raise BadRequestError("media_type must be a string.", param=f"{param}.source.media_type")
    data = source.get("data")
    try:
        base64.b64decode(data if isinstance(data, str) else "", validate=True)
    except (binascii.Error, ValueError):
        data = None
    if not data:
        raise BadRequestError("The image holds no valid base64 data.", param=f"{param}.source.data")
    return data


def _tool_result_text(content: Any, param: str) -> tuple[str, list[str]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise BadRequestError("tool_result content must be a string or blocks.", param=param)
    texts, images = [], []
    for index, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "image":
            images.append(_image(block, f"{param}.{index}"))
        else:
            raise BadRequestError(
                f"Unsupported tool_result block type {kind!r}: use text or image.",
                param=f"{param}.{index}.type",
            )
    return "\n".join(texts), images


def _system(system: Any) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    if isinstance(system, list):
        texts = []
        for index, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise BadRequestError("system blocks must be text.", param=f"system.{index}")
            if not isinstance(block.get("text"), str):
                raise BadRequestError("A text block needs text.", param=f"system.{index}.text")
            texts.append(block["text"])
        return "\n".join(texts)
    raise BadRequestError("system must be a string or a list of text blocks.", param="system")


def _messages(system: Any, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    converted: list[dict[str, Any]] = []
    system_text = _system(system)
    if system_text:
        converted.append({"role": "system", "content": system_text})
    names_by_id: dict[str, str] = {}
    for index, message in enumerate(messages):
        role, content = message["role"], message.get("content")
        param = f"messages.{index}.content"
        if isinstance(content, str):
            converted.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise BadRequestError("content must be a string or a list of blocks.", param=param)
        texts: list[str] = []
        images: list[str] = []
        calls: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        for block_index, block in enumerate(content):
            block_param = f"{param}.{block_index}"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif kind == "image":
                images.append(_image(block, block_param))
            elif kind == "tool_use" and role == "assistant":
                name, arguments = block.get("name"), block.get("input")
                call_id = block.get("id")
                if (
                    not isinstance(name, str)
                    or not name
                    or not isinstance(arguments, dict)
                    or ("id" in block and not isinstance(call_id, str))
                ):
                    raise BadRequestError(
                        "A tool_use block needs a name, an input object and (if any) a string id.",
                        param=block_param,
                    )
                call: dict[str, Any] = {"function": {"name": name, "arguments": arguments}}
                if isinstance(block.get("id"), str):
                    names_by_id[block["id"]] = name
                    call["id"] = block["id"]
                calls.append(call)
            elif kind == "tool_result" and role == "user":
                text, result_images = _tool_result_text(
                    block.get("content"), f"{block_param}.content"
                )
                if block.get("is_error"):
                    text = f"Error: {text}"
                result: dict[str, Any] = {"role": "tool", "content": text}
                call_id = block.get("tool_use_id")
                if ("tool_use_id" in block and not isinstance(call_id, str)) or not isinstance(
                    block.get("is_error", False), bool
                ):
                    raise BadRequestError(
                        "tool_use_id must be a string and is_error a boolean.", param=block_param
                    )
                if isinstance(call_id, str):
                    result["tool_call_id"] = call_id
                    if call_id in names_by_id:
                        # Ollama links a tool result to its call by the function's name.
                        result["tool_name"] = names_by_id[call_id]
                if result_images:
                    result["images"] = result_images
                results.append(result)
            elif kind in ("thinking", "redacted_thinking") and role == "assistant":
                continue  # earlier reasoning: the model does not need it back
            else:
                raise BadRequestError(
                    f"Unsupported content block type {kind!r} in a {role} message.",
                    param=f"{block_param}.type",
                )
        # Tool results answer the previous assistant turn: they come first.
        converted.extend(results)
        if texts or images or calls or not results:
            native: dict[str, Any] = {"role": role, "content": "\n".join(texts)}
            if images:
                native["images"] = images
            if calls:
                native["tool_calls"] = calls
            converted.append(native)
    return converted


def _tools(tools: list[dict[str, Any]] | None, tool_choice: Any) -> list[dict[str, Any]] | None:
    """Anthropic client tools as Ollama function tools, narrowed by `tool_choice`.

    Ollama has no `tool_choice`: `none` sends no tools, `tool` only the named
    one; `auto` and `any` send them all (the model decides).
    """
    if tool_choice is not None and not isinstance(tool_choice, dict):
        raise BadRequestError("tool_choice must be an object.", param="tool_choice")
    choice = tool_choice.get("type") if tool_choice is not None else "auto"
    if choice not in ("auto", "any", "tool", "none"):
        raise BadRequestError(
            "tool_choice.type must be auto, any, tool or none.", param="tool_choice.type"
        )
    if choice == "tool" and not isinstance(tool_choice.get("name"), str):
        raise BadRequestError("tool_choice of type tool needs a name.", param="tool_choice.name")
    converted: list[dict[str, Any]] = []
    for index, tool in enumerate(tools or ()):
        if tool.get("type") not in (None, "custom"):
            raise BadRequestError(
                f"Server tools ({tool.get('type')}) are not supported: only client tools with "
                "name and input_schema.",
                param=f"tools.{index}.type",
            )
        spec: dict[str, Any] = {"name": tool.get("name")}
        if tool.get("description"):
            spec["description"] = tool["description"]
        spec["parameters"] = tool.get("input_schema")
        function = {"type": "function", "function": spec}
        problem = tool_problem(function)
        if problem or not isinstance(spec["parameters"], dict):
            raise BadRequestError(
                f"Invalid tool: {problem or 'input_schema must be a JSON Schema object'}.",
                param=f"tools.{index}",
            )
        converted.append(function)
    if not converted or choice == "none":
        return None
    if choice == "tool":
        wanted = tool_choice.get("name")
        chosen = [tool for tool in converted if tool["function"]["name"] == wanted]
        if not chosen:
            raise BadRequestError(
                f"tool_choice names {wanted!r}, which is not in tools.", param="tool_choice.name"
            )
        return chosen
    return converted


def _think(thinking: Any) -> bool | None:
    if thinking is None:
        return None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind not in ("enabled", "disabled", "adaptive"):
        raise BadRequestError(
            "thinking.type must be enabled, adaptive or disabled.", param="thinking.type"
        )
    return kind != "disabled"


def _format(output_config: dict[str, Any] | None) -> dict[str, Any] | None:
    """`output_config.format` (a JSON schema) as the backend's `format`."""
    output_format = (output_config or {}).get("format")
    if output_format is None:
        return None
    kind = output_format.get("type") if isinstance(output_format, dict) else None
    schema = output_format.get("schema") if isinstance(output_format, dict) else None
    if kind != "json_schema" or not isinstance(schema, dict):
        raise BadRequestError(
            "output_config.format must be {type: json_schema, schema: {...}}.",
            param="output_config.format",
        )
    return schema


def chat_request_from(data: dict[str, Any]) -> ChatRequest:
    """The backend request for a validated Messages body (400 if it can't be honoured)."""
    return ChatRequest(
        model=data["model"],
        messages=_messages(data.get("system"), data["messages"]),
        params=GenerationParams(
            max_tokens=data.get("max_tokens"),
            temperature=data.get("temperature"),
            top_p=data.get("top_p"),
            top_k=data.get("top_k"),
            stop=data.get("stop_sequences") or None,
        ),
        format=_format(data.get("output_config")),
        tools=_tools(data.get("tools"), data.get("tool_choice")),
        think=_think(data.get("thinking")),
    )


# --- responses ------------------------------------------------------------------


def stop_reason(done_reason: str | None, *, tool_use: bool) -> str:
    if tool_use:
        return "tool_use"
    return "max_tokens" if done_reason == "length" else "end_turn"


def tool_use_id(call: ToolCall) -> str:
    """The backend's call id (so a `tool_result` links back to it), else a new one."""
    return call.id or new_id("toolu_")


def tool_use_block(call: ToolCall) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_use_id(call), "name": call.name, "input": call.arguments}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt_tokens,
        "output_tokens": completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def message_object(
    result: ChatResult, *, message_id: str, model: str, thinking: bool
) -> dict[str, Any]:
    """A whole `message` object."""
    content: list[dict[str, Any]] = []
    if thinking and result.thinking:
        content.append({"type": "thinking", "thinking": result.thinking, "signature": ""})
    if result.content or not result.tool_calls:
        content.append({"type": "text", "text": result.content})
    content.extend(tool_use_block(call) for call in result.tool_calls)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(result.done_reason, tool_use=bool(result.tool_calls)),
        "stop_sequence": None,
        "usage": usage(result.prompt_tokens, result.completion_tokens),
    }


def sse(event: str, payload: dict[str, Any]) -> bytes:
    """One named Server-Sent Event, as Anthropic's API writes them."""
    return f"event: {event}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


class MessageStreamEncoder(BaseEncoder[ChatChunk, bytes]):
    """Anthropic's stream: `message_start`, per block `content_block_start`,
    `content_block_delta`s and `content_block_stop`, then `message_delta`
    (stop reason, usage) and `message_stop`. A failure after the first byte
    ends the stream with an `error` event, which the SDK raises.
    """

    __slots__ = ("block", "index", "message_id", "model", "thinking", "tool_use")

    def __init__(self, *, message_id: str, model: str, thinking: bool) -> None:
        self.message_id, self.model, self.thinking = message_id, model, thinking
        self.index = -1
        self.block: str | None = None  # the kind of the open content block
        self.tool_use = False

    def opening(self) -> tuple[bytes, ...]:
        message = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage(0, 0),
        }
        return (sse("message_start", {"type": "message_start", "message": message}),)

    def _stop_block(self) -> list[bytes]:
        if self.block is None:
            return []
        self.block = None
        return [sse("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def _start_block(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        events = self._stop_block()
        self.index += 1
        self.block = kind
        events.append(
            sse(
                "content_block_start",
                {"type": "content_block_start", "index": self.index, "content_block": block},
            )
        )
        return events

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return sse(
            "content_block_delta",
            {"type": "content_block_delta", "index": self.index, "delta": delta},
        )

    def piece(self, chunk: ChatChunk) -> bytes | None:
        events: list[bytes] = []
        if chunk.thinking and self.thinking:
            if self.block != "thinking":
                events += self._start_block(
                    "thinking", {"type": "thinking", "thinking": "", "signature": ""}
                )
            events.append(self._delta({"type": "thinking_delta", "thinking": chunk.thinking}))
        if chunk.content:
            if self.block != "text":
                events += self._start_block("text", {"type": "text", "text": ""})
            events.append(self._delta({"type": "text_delta", "text": chunk.content}))
        for call in chunk.tool_calls:
            self.tool_use = True
            block = {"type": "tool_use", "id": tool_use_id(call), "name": call.name, "input": {}}
            events += self._start_block("tool_use", block)
            arguments = json.dumps(call.arguments)
            events.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
            events += self._stop_block()
        return b"".join(events) or None

    def closing(self, chunk: ChatChunk) -> list[bytes]:
        events = [self.piece(chunk) or b""]
        if self.index < 0:  # an empty answer still has its (empty) text block
            events += self._start_block("text", {"type": "text", "text": ""})
        events += self._stop_block()
        events.append(
            sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": stop_reason(chunk.done_reason, tool_use=self.tool_use),
                        "stop_sequence": None,
                    },
                    "usage": {
                        "input_tokens": chunk.prompt_tokens,
                        "output_tokens": chunk.completion_tokens,
                    },
                },
            )
        )
        events.append(sse("message_stop", {"type": "message_stop"}))
        return [event for event in events if event]

    def failure(self, error: APIError) -> bytes:
        return sse("error", error_object(error))
